//! The `Principal` extractor: bearer token → verified claims → the user as stored now
//! (role, organisation, places), with the session and token epoch still valid.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{http::header, web, FromRequest, HttpMessage, HttpRequest};
use diesel::prelude::*;

use super::tokens::Claims;
use crate::app::AppState;
use crate::audit::{Actor, RequestMeta};
use crate::error::AppError;
use crate::policy::PrincipalAttrs;
use crate::storage::cache::Caches;
use crate::storage::models::{Organization, Session, User};
use crate::storage::schema::{organizations, sessions, user_places, users};
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
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.user.id.clone(),
            username: self.user.username.clone(),
            organization_id: self.organization.id.clone(),
            role: self.user.role.clone(),
        }
    }
}

/// Longest purpose text kept from the `X-Purpose` header.
const MAX_PURPOSE: usize = 200;

/// Request id, purpose and client address of a request, for its audit entries.
pub fn request_meta(req: &HttpRequest) -> RequestMeta {
    let request_id = req
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|id| id.to_string());
    let purpose = req
        .headers()
        .get("x-purpose")
        // Purposes are often Swedish: accept UTF-8, not just visible ASCII.
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .map(|s| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(MAX_PURPOSE)
                .collect::<String>()
        })
        .filter(|s| !s.trim().is_empty());
    let client = req.peer_addr().map(|a| a.ip().to_string());
    RequestMeta {
        request_id,
        purpose,
        client,
    }
}

/// A session with its user, the user's organisation and assigned places.
pub type SessionUser = (Session, User, Organization, Vec<String>);

/// The user, organisation and places behind a session, if the session is live.
pub fn load_session_user(
    conn: &mut DbConnection,
    session_id: &str,
) -> Result<Option<SessionUser>, AppError> {
    // One query on the hot path: a row per assigned place (or one with none).
    let rows = sessions::table
        .inner_join(
            users::table
                .inner_join(organizations::table)
                .left_join(user_places::table),
        )
        .filter(sessions::id.eq(session_id))
        .select((
            Session::as_select(),
            User::as_select(),
            Organization::as_select(),
            user_places::place_id.nullable(),
        ))
        .load::<(Session, User, Organization, Option<String>)>(conn)?;
    let mut places: Vec<String> = rows.iter().filter_map(|r| r.3.clone()).collect();
    places.sort();
    Ok(rows
        .into_iter()
        .next()
        .map(|(session, user, org, _)| (session, user, org, places)))
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

/// A verified access token whose session is not yet checked: hot read paths resolve it
/// inside their own database job (one hand-off instead of two).
#[derive(Debug, Clone)]
pub struct Bearer {
    claims: Arc<Claims>,
    meta: RequestMeta,
}

impl Bearer {
    /// Whether the session is live, the user enabled and the token of the current epoch.
    fn admits(&self, (session, user, _, _): &SessionUser) -> bool {
        session.revoked_at.is_none()
            && session.expires_at > now_micros()
            && session.user_id == self.claims.sub
            && !user.disabled
            && user.token_epoch == self.claims.epoch
    }

    fn into_principal(self, (session, user, organization, places): &SessionUser) -> Principal {
        Principal {
            attrs: principal_attrs(user, organization, places),
            user: user.clone(),
            organization: organization.clone(),
            places: places.clone(),
            session_id: session.id.clone(),
            meta: self.meta,
        }
    }

    /// The user from memory, when the session is cached for the current generation and
    /// admits this token; `None` sends the caller to the database (which decides).
    pub fn cached(&self, caches: &Caches) -> Option<Principal> {
        let su = caches
            .sessions
            .get(self.claims.sid.as_str(), caches.generation())?;
        self.admits(&su).then(|| self.clone().into_principal(&su))
    }

    /// The user as stored now, if the session is live, the user enabled and the token of
    /// the current epoch; what was read is cached for the next request.
    pub fn resolve(self, conn: &mut DbConnection, caches: &Caches) -> Result<Principal, AppError> {
        let invalid = || AppError::unauthorized("The access token is missing, invalid or expired.");
        let generation = caches.generation();
        let su = load_session_user(conn, &self.claims.sid)?.ok_or_else(invalid)?;
        let su = Arc::new(su);
        caches
            .sessions
            .insert(self.claims.sid.clone(), su.clone(), generation);
        if !self.admits(&su) {
            return Err(invalid());
        }
        Ok(self.into_principal(&su))
    }
}

fn bearer(req: &HttpRequest) -> Result<(web::Data<AppState>, Bearer), AppError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal("app state missing"))?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            AppError::unauthorized("Sign in: send Authorization: Bearer <access_token>.")
        })?;
    let claims = state.tokens.verify_access(token)?;
    Ok((
        state,
        Bearer {
            claims,
            meta: request_meta(req),
        },
    ))
}

impl FromRequest for Bearer {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        std::future::ready(bearer(req).map(|(_, b)| b))
    }
}

impl FromRequest for Principal {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let checked = bearer(req);
        Box::pin(async move {
            let (state, bearer) = checked?;
            if let Some(p) = bearer.cached(&state.caches) {
                return Ok(p);
            }
            let caches = state.caches.clone();
            state.db.run(move |c| bearer.resolve(c, &caches)).await
        })
    }
}
