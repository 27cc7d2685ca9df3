//! Login, refresh, logout and password change. Sessions, refresh tokens and throttling
//! state live in the database so every instance sees a revocation at once.

use diesel::dsl::{count_star, min};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::password::MAX_PASSWORD_LEN;
use super::tokens::{hash_refresh_token, new_refresh_token};
use crate::app::AppState;
use crate::audit::{Actor, AuditEntry, RequestMeta};
use crate::error::AppError;
use crate::storage::models::{LoginFailure, RefreshToken, Session, User};
use crate::storage::schema::{login_failures, refresh_tokens, sessions, users};
use crate::storage::writer::Tx;
use crate::storage::{new_id, now_micros, DbConnection};

const MAX_USERNAME_LEN: usize = 64;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    pub refresh_token: Option<String>,
}

/// A token pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque, single use: each refresh returns a new one.
    pub refresh_token: String,
}

fn actor_of(user: &User) -> Actor {
    Actor {
        id: user.id.clone(),
        username: user.username.clone(),
        organization_id: user.organization_id.clone(),
        role: user.role.clone(),
    }
}

fn invalid_credentials() -> AppError {
    AppError::Unauthorized {
        code: "invalid_credentials",
        message: "Wrong username or password.".into(),
    }
}

/// (failures in window, oldest failure in window) for one throttle key.
fn failures(
    conn: &mut DbConnection,
    key: &str,
    since: i64,
) -> Result<(i64, Option<i64>), AppError> {
    Ok(login_failures::table
        .filter(login_failures::throttle_key.eq(key))
        .filter(login_failures::failed_at.gt(since))
        .select((count_star(), min(login_failures::failed_at)))
        .first::<(i64, Option<i64>)>(conn)?)
}

fn record_failure(tx: &mut Tx<'_>, key: &str, now: i64, window_start: i64) -> Result<(), AppError> {
    diesel::delete(
        login_failures::table
            .filter(login_failures::throttle_key.eq(key))
            .filter(login_failures::failed_at.le(window_start)),
    )
    .execute(tx.conn)?;
    diesel::insert_into(login_failures::table)
        .values(LoginFailure {
            id: new_id(),
            throttle_key: key.to_owned(),
            failed_at: now,
        })
        .execute(tx.conn)?;
    Ok(())
}

/// Creates a session (a refresh-token family) and its first refresh token.
fn start_session(
    tx: &mut Tx<'_>,
    user_id: &str,
    refresh_ttl_secs: i64,
) -> Result<(String, String), AppError> {
    let now = now_micros();
    let expires_at = now + refresh_ttl_secs * 1_000_000;
    let session = Session {
        id: new_id(),
        user_id: user_id.to_owned(),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    diesel::insert_into(sessions::table)
        .values(&session)
        .execute(tx.conn)?;
    let (token, hash) = new_refresh_token();
    diesel::insert_into(refresh_tokens::table)
        .values(RefreshToken {
            token_hash: hash,
            session_id: session.id.clone(),
            created_at: now,
            expires_at,
            used_at: None,
        })
        .execute(tx.conn)?;
    Ok((session.id, token))
}

pub async fn login(
    state: &AppState,
    req: LoginRequest,
    meta: RequestMeta,
) -> Result<TokenResponse, AppError> {
    let username = req.username.trim().to_owned();
    if username.is_empty()
        || username.len() > MAX_USERNAME_LEN
        || req.password.len() > MAX_PASSWORD_LEN
    {
        return Err(AppError::bad_request(
            "invalid_login",
            format!("username (1–{MAX_USERNAME_LEN} characters) and password (at most {MAX_PASSWORD_LEN} bytes) are required"),
        ));
    }
    let login_cfg = state.settings.login.clone();
    let now = now_micros();
    let window = login_cfg.window_secs * 1_000_000;
    let window_start = now - window;
    let user_key = format!("user:{}", username.to_lowercase());
    let client_key = format!("client:{}", meta.client.clone().unwrap_or_default());

    let (user, user_fail, client_fail) = {
        let (uname, uk, ck) = (username.clone(), user_key.clone(), client_key.clone());
        state
            .db
            .run(move |c| {
                let user = users::table
                    .filter(users::username.eq(&uname))
                    .select(User::as_select())
                    .first::<User>(c)
                    .optional()?;
                Ok((
                    user,
                    failures(c, &uk, window_start)?,
                    failures(c, &ck, window_start)?,
                ))
            })
            .await?
    };

    let throttled = |(count, oldest): (i64, Option<i64>), max: i64| -> Option<u64> {
        (count >= max).then(|| {
            let until = oldest.unwrap_or(now) + window;
            ((until - now) / 1_000_000).max(1) as u64
        })
    };
    let wait = throttled(user_fail, login_cfg.max_failures_per_user)
        .into_iter()
        .chain(throttled(client_fail, login_cfg.max_failures_per_client))
        .max();
    let mut entry = AuditEntry::new("login", "throttled", &meta).record("username", &username);
    if let Some(u) = &user {
        entry = entry.actor(actor_of(u));
    }
    if let Some(retry_after_secs) = wait {
        state.writer.write(move |tx| tx.audit(&entry)).await?;
        return Err(AppError::TooManyRequests { retry_after_secs });
    }

    let ok = state
        .hasher
        .verify(user.as_ref().map(|u| u.password_hash.clone()), req.password)
        .await?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            let mut entry = entry;
            entry.outcome = "failed".into();
            state
                .writer
                .write(move |tx| {
                    record_failure(tx, &user_key, now, window_start)?;
                    record_failure(tx, &client_key, now, window_start)?;
                    tx.audit(&entry)
                })
                .await?;
            return Err(invalid_credentials());
        }
    };

    let refresh_ttl = state.tokens.refresh_ttl_secs;
    entry.outcome = "success".into();
    let uid = user.id.clone();
    let (session_id, refresh_token) = state
        .writer
        .write(move |tx| {
            diesel::delete(
                login_failures::table.filter(login_failures::throttle_key.eq(&user_key)),
            )
            .execute(tx.conn)?;
            let out = start_session(tx, &uid, refresh_ttl)?;
            tx.audit(&entry)?;
            Ok(out)
        })
        .await?;
    Ok(TokenResponse {
        access_token: state
            .tokens
            .issue_access(&user.id, &session_id, user.token_epoch)?,
        token_type: "Bearer".into(),
        expires_in: state.tokens.access_ttl_secs,
        refresh_token,
    })
}

enum RefreshOutcome {
    Rotated {
        user: Box<User>,
        session_id: String,
        token: String,
    },
    Reused,
    Invalid,
}

pub async fn refresh(
    state: &AppState,
    req: RefreshRequest,
    meta: RequestMeta,
) -> Result<TokenResponse, AppError> {
    let invalid =
        || AppError::unauthorized("The refresh token is invalid, expired or already used.");
    if req.refresh_token.is_empty() || req.refresh_token.len() > 256 {
        return Err(invalid());
    }
    let hash = hash_refresh_token(&req.refresh_token);
    let refresh_ttl = state.tokens.refresh_ttl_secs;
    let outcome = state
        .writer
        .write(move |tx| {
            let now = now_micros();
            let found = refresh_tokens::table
                .inner_join(sessions::table.inner_join(users::table))
                .filter(refresh_tokens::token_hash.eq(&hash))
                .select((
                    RefreshToken::as_select(),
                    Session::as_select(),
                    User::as_select(),
                ))
                .first::<(RefreshToken, Session, User)>(tx.conn)
                .optional()?;
            let Some((token, session, user)) = found else {
                tx.audit(&AuditEntry::new("token_refresh", "failed", &meta))?;
                return Ok(RefreshOutcome::Invalid);
            };
            let entry = AuditEntry::new("token_refresh", "failed", &meta).actor(actor_of(&user));
            // Only the first use may rotate: the conditional update decides a race.
            let claimed = if token.used_at.is_none() {
                diesel::update(
                    refresh_tokens::table
                        .filter(refresh_tokens::token_hash.eq(&token.token_hash))
                        .filter(refresh_tokens::used_at.is_null()),
                )
                .set(refresh_tokens::used_at.eq(now))
                .execute(tx.conn)?
                    == 1
            } else {
                false
            };
            if !claimed {
                // A spent token came back: it may be stolen. End the whole family.
                diesel::update(sessions::table.filter(sessions::id.eq(&session.id)))
                    .set(sessions::revoked_at.eq(now))
                    .execute(tx.conn)?;
                let mut e = entry;
                e.outcome = "reuse_detected".into();
                tx.audit(&e)?;
                return Ok(RefreshOutcome::Reused);
            }
            if session.revoked_at.is_some() || token.expires_at <= now || user.disabled {
                tx.audit(&entry)?;
                return Ok(RefreshOutcome::Invalid);
            }
            let (new_token, new_hash) = new_refresh_token();
            let expires_at = now + refresh_ttl * 1_000_000;
            diesel::insert_into(refresh_tokens::table)
                .values(RefreshToken {
                    token_hash: new_hash,
                    session_id: session.id.clone(),
                    created_at: now,
                    expires_at,
                    used_at: None,
                })
                .execute(tx.conn)?;
            diesel::update(sessions::table.filter(sessions::id.eq(&session.id)))
                .set(sessions::expires_at.eq(expires_at))
                .execute(tx.conn)?;
            let mut e = entry;
            e.outcome = "success".into();
            tx.audit(&e)?;
            Ok(RefreshOutcome::Rotated {
                user: Box::new(user),
                session_id: session.id,
                token: new_token,
            })
        })
        .await?;
    match outcome {
        RefreshOutcome::Rotated {
            user,
            session_id,
            token,
        } => Ok(TokenResponse {
            access_token: state
                .tokens
                .issue_access(&user.id, &session_id, user.token_epoch)?,
            token_type: "Bearer".into(),
            expires_in: state.tokens.access_ttl_secs,
            refresh_token: token,
        }),
        RefreshOutcome::Reused | RefreshOutcome::Invalid => Err(invalid()),
    }
}

/// Ends the caller's session (access and refresh token) and, if given, the session of
/// the refresh token sent along, when it is the same user's.
pub async fn logout(
    state: &AppState,
    principal: &super::Principal,
    req: LogoutRequest,
) -> Result<(), AppError> {
    let sid = principal.session_id.clone();
    let uid = principal.user.id.clone();
    let entry = AuditEntry::new("logout", "success", &principal.meta).actor(principal.actor());
    let extra_hash = req
        .refresh_token
        .filter(|t| t.len() <= 256)
        .map(|t| hash_refresh_token(&t));
    state
        .writer
        .write(move |tx| {
            let now = now_micros();
            let mut ids = vec![sid];
            if let Some(h) = extra_hash {
                let other = refresh_tokens::table
                    .inner_join(sessions::table)
                    .filter(refresh_tokens::token_hash.eq(&h))
                    .filter(sessions::user_id.eq(&uid))
                    .select(sessions::id)
                    .first::<String>(tx.conn)
                    .optional()?;
                ids.extend(other);
            }
            diesel::update(sessions::table.filter(sessions::id.eq_any(&ids)))
                .filter(sessions::revoked_at.is_null())
                .set(sessions::revoked_at.eq(now))
                .execute(tx.conn)?;
            tx.audit(&entry)
        })
        .await
}

/// Ends every session of a user and bumps the token epoch: for password changes and
/// disabling. Runs inside the caller's write.
pub fn revoke_all_sessions(tx: &mut Tx<'_>, user_id: &str) -> Result<(), AppError> {
    let now = now_micros();
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(tx.conn)?;
    diesel::update(users::table.filter(users::id.eq(user_id)))
        .set((
            users::token_epoch.eq(users::token_epoch + 1),
            users::updated_at.eq(now),
        ))
        .execute(tx.conn)?;
    Ok(())
}
