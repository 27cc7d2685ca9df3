//! The signed-in user of a request: bearer token → verified claims → the user as stored
//! now (role, organisation, places), with the session and token epoch still valid.

use std::sync::Arc;

use diesel::prelude::*;

use super::tokens::Claims;
use crate::error::AppError;
use crate::policy::PrincipalAttrs;
use crate::request::RequestMeta;
use crate::storage::cache::GenCache;
use crate::storage::models::{Organization, Session, User};
use crate::storage::schema::{cache_generation, organizations, sessions, user_places, users};
use crate::storage::{now_micros, DbConnection};

/// The signed-in user of this request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub organization: Organization,
    pub places: Vec<String>,
    pub session_id: String,
    pub meta: RequestMeta,
    pub attrs: PrincipalAttrs,
    /// The database's change counter (`cache_generation`) read just before the session:
    /// while it has not moved, nothing about the session or the user has changed since
    /// (the group commit re-checks the session only when it has).
    pub read_at_generation: i64,
}

/// A session with its user, the user's organisation and assigned places, and the change
/// counter read just before them.
pub type SessionUser = (Session, User, Organization, Vec<String>, i64);

/// Signed-in users by session id, valid for one cache generation.
pub type SessionCache = GenCache<String, Arc<SessionUser>>;

/// The user, organisation and places behind a session, if the session is live.
pub fn load_session_user(
    conn: &mut DbConnection,
    session_id: &str,
) -> Result<Option<SessionUser>, AppError> {
    // One query on the hot path: a row per assigned place (or one with none), each with
    // the change counter as of the same snapshot.
    let rows = sessions::table
        .inner_join(
            users::table
                .inner_join(organizations::table)
                .left_join(user_places::table),
        )
        .inner_join(cache_generation::table.on(cache_generation::id.eq(1)))
        .filter(sessions::id.eq(session_id))
        .select((
            Session::as_select(),
            User::as_select(),
            Organization::as_select(),
            user_places::place_id.nullable(),
            cache_generation::generation,
        ))
        .load::<(Session, User, Organization, Option<String>, i64)>(conn)?;
    let mut places: Vec<String> = rows.iter().filter_map(|r| r.3.clone()).collect();
    places.sort();
    Ok(rows
        .into_iter()
        .next()
        .map(|(session, user, org, _, generation)| (session, user, org, places, generation)))
}

pub fn principal_attrs(user: &User, org: &Organization, places: &[String]) -> PrincipalAttrs {
    PrincipalAttrs {
        user_id: user.id.clone(),
        role: user.role.clone(),
        organization_id: org.id.clone(),
        organization_kind: org.kind.clone(),
        mandated_reporter: org.mandated_reporter,
        places: places.to_vec(),
    }
}

/// The token is well signed but its session is gone (signed out, refreshed away,
/// disabled, password changed).
fn invalid_token() -> AppError {
    AppError::invalid_token("The session has ended: sign in again.")
}

/// A verified access token whose session is not yet checked: hot read paths resolve it
/// inside their own database job (one hand-off instead of two).
#[derive(Debug, Clone)]
pub struct Bearer {
    claims: Arc<Claims>,
    meta: RequestMeta,
}

impl Bearer {
    pub fn new(claims: Arc<Claims>, meta: RequestMeta) -> Self {
        Bearer { claims, meta }
    }

    /// Whether the token itself has expired (a long-lived stream outlives its token).
    pub fn expired(&self) -> bool {
        self.claims.exp <= now_micros() / 1_000_000
    }

    /// Whether the session is live, the user enabled and the token of the current epoch.
    fn admits(&self, (session, user, _, _, _): &SessionUser) -> bool {
        session.revoked_at.is_none()
            && session.expires_at > now_micros()
            && session.user_id == self.claims.sub
            && !user.disabled
            && user.token_epoch == self.claims.epoch
    }

    fn into_principal(
        self,
        (session, user, organization, places, generation): &SessionUser,
    ) -> Principal {
        Principal {
            attrs: principal_attrs(user, organization, places),
            user: user.clone(),
            organization: organization.clone(),
            places: places.clone(),
            session_id: session.id.clone(),
            meta: self.meta,
            read_at_generation: *generation,
        }
    }

    /// The user from memory, when the session is cached for the current generation and
    /// admits this token; `None` sends the caller to the database (which decides).
    pub fn cached(&self, sessions: &SessionCache) -> Option<Principal> {
        let su = sessions.get(self.claims.sid.as_str())?;
        self.admits(&su).then(|| self.clone().into_principal(&su))
    }

    /// The user as stored now, if the session is live, the user enabled and the token of
    /// the current epoch; what was read is cached for the next request.
    pub fn resolve(
        self,
        conn: &mut DbConnection,
        sessions: &SessionCache,
    ) -> Result<Principal, AppError> {
        let generation = sessions.generation();
        let su = load_session_user(conn, &self.claims.sid)?.ok_or_else(invalid_token)?;
        let su = Arc::new(su);
        sessions.insert(self.claims.sid.clone(), su.clone(), generation);
        if !self.admits(&su) {
            return Err(invalid_token());
        }
        Ok(self.into_principal(&su))
    }
}
