//! The account use cases: sign in, refresh, sign out, change one's password. Sessions,
//! refresh tokens and throttling state live in the database so every instance sees a
//! revocation at once; every step is audited.

use diesel::dsl::{count_star, min};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::writer::{Tx, Writer};
use crate::audit::{Actor, AuditAction, AuditEntry, Outcome, RequestMeta};
use crate::auth::password::{check_new_password, Hasher, MAX_PASSWORD_LEN};
use crate::auth::second_factor::{self, SecondFactor, MAX_CODE_LEN};
use crate::auth::tokens::{hash_refresh_token, new_refresh_token, TokenService};
use crate::auth::Principal;
use crate::config::LoginSettings;
use crate::error::AppError;
use crate::storage::models::{LoginFailure, RefreshToken, Session, User};
use crate::storage::schema::{login_failures, organizations, refresh_tokens, sessions, users};
use crate::storage::{self, new_id, now_micros, Db, DbConnection};

/// What the account use cases work with.
pub struct Accounts<'a> {
    pub db: &'a Db,
    pub writer: &'a Writer,
    pub hasher: &'a Hasher,
    pub tokens: &'a TokenService,
    pub login: &'a LoginSettings,
    pub second_factor: &'a SecondFactor,
}

const MAX_USERNAME_LEN: usize = 64;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The six-digit code from the authenticator app, or an unused recovery code: needed
    /// once the account has a confirmed second factor.
    #[serde(default)]
    pub totp: Option<String>,
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
    /// `enrolment_required`: the role requires a second factor and the account has none;
    /// the access token is good for enrolling one and nothing else. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_factor: Option<&'static str>,
}

/// What the sign-in transaction decided once the password was right.
enum SignIn {
    /// A session; `enrol_only` when the role requires a second factor the user lacks.
    Started {
        session_id: String,
        refresh_token: String,
        enrol_only: bool,
    },
    /// The account has a second factor and no code, or a wrong or spent one, came.
    CodeRefused { missing: bool },
    /// The organisation signs in through single sign-on only.
    PasswordsOff,
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

/// Counts one attempt against `key` (dropping that key's attempts from before the
/// window); returns the row's id, so a right password can take it back.
fn reserve(
    conn: &mut DbConnection,
    key: &str,
    now: i64,
    window_start: i64,
) -> Result<String, AppError> {
    diesel::delete(
        login_failures::table
            .filter(login_failures::throttle_key.eq(key))
            .filter(login_failures::failed_at.le(window_start)),
    )
    .execute(conn)?;
    let id = new_id();
    diesel::insert_into(login_failures::table)
        .values(LoginFailure {
            id: id.clone(),
            throttle_key: key.to_owned(),
            failed_at: now,
        })
        .execute(conn)?;
    Ok(id)
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

/// The outcome of reserving a login attempt.
enum Reserved {
    /// Counted against the username and the client: the password may be checked.
    Attempt {
        user_row: String,
        client_row: String,
    },
    /// Too many attempts in the window: wait this many seconds.
    Throttled(u64),
}

enum RefreshOutcome {
    Rotated {
        user: Box<User>,
        session_id: String,
        token: String,
        enrol_only: bool,
    },
    Reused,
    Invalid,
}

impl Accounts<'_> {
    /// Signs in. An attempt is counted against the username and the client address
    /// *before* the password is checked, under a lock on both keys (on PostgreSQL an
    /// advisory lock every instance takes), so at most
    /// `SAMVERKAN_LOGIN_MAX_FAILURES` passwords are ever checked per username and window,
    /// however many arrive at once; a right password takes its attempt back.
    pub async fn login(
        &self,
        req: LoginRequest,
        meta: RequestMeta,
    ) -> Result<TokenResponse, AppError> {
        let username = req.username.trim().to_owned();
        if username.is_empty()
            || username.len() > MAX_USERNAME_LEN
            || req.password.len() > MAX_PASSWORD_LEN
            || req.totp.as_ref().is_some_and(|c| c.len() > MAX_CODE_LEN)
        {
            return Err(AppError::bad_request(
                "invalid_login",
                format!("username (1–{MAX_USERNAME_LEN} characters) and password (at most {MAX_PASSWORD_LEN} bytes) are required"),
            ));
        }
        let cfg = self.login.clone();
        let now = now_micros();
        let window = cfg.window_secs * 1_000_000;
        let window_start = now - window;
        // Neither key holds the typed text: it may be a password typed into the wrong
        // field. A fingerprint throttles the same name the same way, account or not.
        let user_key = format!("user:{}", self.tokens.fingerprint(&username.to_lowercase()));
        let client_key = format!("client:{}", meta.client.clone().unwrap_or_default());

        let user = {
            let uname = username.clone();
            self.db
                .run(move |c| {
                    Ok(users::table
                        .filter(users::username.eq(&uname))
                        .select(User::as_select())
                        .first::<User>(c)
                        .optional()?)
                })
                .await?
        };
        // The audit trail names an account by its username, and a name that is no
        // account by its fingerprint only.
        let named = match &user {
            Some(u) => u.username.clone(),
            None => format!(
                "unknown:{}",
                self.tokens.fingerprint(&username.to_lowercase())
            ),
        };
        let mut entry = AuditEntry::new(AuditAction::Login, Outcome::Throttled, &meta)
            .record("username", &named);
        if let Some(u) = &user {
            entry = entry.actor(Actor::user(u));
        }

        let reserved = {
            let (uk, ck, throttled_entry) = (user_key.clone(), client_key.clone(), entry.clone());
            self.writer
                .write(move |tx| {
                    // Count and reserve as one step across instances (each appends to its
                    // own audit chain, so nothing else serialises them).
                    let (first, second) = if uk < ck { (&uk, &ck) } else { (&ck, &uk) };
                    storage::lock_key(tx.conn, first)?;
                    storage::lock_key(tx.conn, second)?;
                    let limited = |(count, oldest): (i64, Option<i64>), max: i64| -> Option<u64> {
                        (count >= max).then(|| {
                            let until = oldest.unwrap_or(now) + window;
                            ((until - now) / 1_000_000).max(1) as u64
                        })
                    };
                    let wait = limited(
                        failures(tx.conn, &uk, window_start)?,
                        cfg.max_failures_per_user,
                    )
                    .into_iter()
                    .chain(limited(
                        failures(tx.conn, &ck, window_start)?,
                        cfg.max_failures_per_client,
                    ))
                    .max();
                    if let Some(wait) = wait {
                        tx.audit(&throttled_entry)?;
                        return Ok(Reserved::Throttled(wait));
                    }
                    let user_row = reserve(tx.conn, &uk, now, window_start)?;
                    let client_row = reserve(tx.conn, &ck, now, window_start)?;
                    Ok(Reserved::Attempt {
                        user_row,
                        client_row,
                    })
                })
                .await?
        };
        let (user_row, client_row) = match reserved {
            Reserved::Throttled(retry_after_secs) => {
                return Err(AppError::TooManyRequests { retry_after_secs })
            }
            Reserved::Attempt {
                user_row,
                client_row,
            } => (user_row, client_row),
        };

        let ok = self
            .hasher
            .verify(user.as_ref().map(|u| u.password_hash.clone()), req.password)
            .await?;
        let user = match user {
            Some(u) if ok && !u.disabled => u,
            _ => {
                // The attempt stays counted.
                let entry = entry.outcome(Outcome::Failed);
                self.writer.write(move |tx| tx.audit(&entry)).await?;
                return Err(invalid_credentials());
            }
        };

        let refresh_ttl = self.tokens.refresh_ttl_secs;
        let (uid, uname, org_id) = (
            user.id.clone(),
            user.username.clone(),
            user.organization_id.clone(),
        );
        let factor = self.second_factor.clone();
        let required = factor.required_for(&user.role);
        let code = req.totp;
        let signed_in = self
            .writer
            .write(move |tx| {
                // The second factor is checked (and a right code spent) in the same
                // transaction that starts the session: a code is good for one sign-in.
                // An organisation that signs in through single sign-on only.
                let passwords_allowed: bool = organizations::table
                    .find(&org_id)
                    .select(organizations::password_login)
                    .first(tx.conn)?;
                if !passwords_allowed {
                    tx.audit(
                        &entry
                            .clone()
                            .outcome(Outcome::Failed)
                            .parts(&["password_login_off"]),
                    )?;
                    return Ok(SignIn::PasswordsOff);
                }
                let has_factor = second_factor::is_confirmed(tx.conn, &uid)?;
                if has_factor {
                    let key = factor.key()?;
                    let right = match &code {
                        Some(c) => second_factor::verify_at_login(tx.conn, key, &uid, &uname, c)?,
                        None => false,
                    };
                    if !right {
                        // The attempt stays counted: a code guess is throttled like a
                        // password guess.
                        tx.audit(&entry.clone().outcome(Outcome::Failed).parts(&[
                            if code.is_some() {
                                "totp_refused"
                            } else {
                                "totp_missing"
                            },
                        ]))?;
                        return Ok(SignIn::CodeRefused {
                            missing: code.is_none(),
                        });
                    }
                }
                // Only this attempt is taken back: the window's other attempts stay
                // counted, so however many arrive at once, at most the limit are checked
                // (the right password freeing one place at most).
                diesel::delete(
                    login_failures::table
                        .filter(login_failures::id.eq_any([&user_row, &client_row])),
                )
                .execute(tx.conn)?;
                let (session_id, refresh_token) = start_session(tx, &uid, refresh_ttl)?;
                let enrol_only = required && !has_factor;
                let factor_part: &[&str] = match (has_factor, enrol_only) {
                    (true, _) => &["totp"],
                    (false, true) => &["enrolment_only"],
                    (false, false) => &[],
                };
                tx.audit(&entry.clone().outcome(Outcome::Success).parts(factor_part))?;
                Ok(SignIn::Started {
                    session_id,
                    refresh_token,
                    enrol_only,
                })
            })
            .await?;
        match signed_in {
            SignIn::PasswordsOff => Err(AppError::Unauthorized {
                code: "password_login_disabled",
                message: "Your organisation signs in through single sign-on only: use \"Log in with …\" or your agency's token.".into(),
            }),
            SignIn::CodeRefused { missing } => Err(AppError::Unauthorized {
                code: if missing {
                    "second_factor_required"
                } else {
                    "invalid_second_factor"
                },
                message: if missing {
                    "This account has a second factor: send the code from the authenticator app as \"totp\" (or a recovery code).".into()
                } else {
                    "Wrong, expired or already used code.".into()
                },
            }),
            SignIn::Started {
                session_id,
                refresh_token,
                enrol_only,
            } => self.token_pair(&user, &session_id, refresh_token, enrol_only),
        }
    }

    /// The tokens of a session: a full access token, or one good only for enrolling a
    /// second factor.
    fn token_pair(
        &self,
        user: &User,
        session_id: &str,
        refresh_token: String,
        enrol_only: bool,
    ) -> Result<TokenResponse, AppError> {
        let access_token = if enrol_only {
            self.tokens
                .issue_enrolment(&user.id, session_id, user.token_epoch)?
        } else {
            self.tokens
                .issue_access(&user.id, session_id, user.token_epoch)?
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: self.tokens.access_ttl_secs,
            refresh_token,
            second_factor: enrol_only.then_some("enrolment_required"),
        })
    }

    pub async fn refresh(
        &self,
        req: RefreshRequest,
        meta: RequestMeta,
    ) -> Result<TokenResponse, AppError> {
        let invalid =
            || AppError::unauthorized("The refresh token is invalid, expired or already used.");
        if req.refresh_token.is_empty() || req.refresh_token.len() > 256 {
            return Err(invalid());
        }
        let hash = hash_refresh_token(&req.refresh_token);
        let refresh_ttl = self.tokens.refresh_ttl_secs;
        let factor = self.second_factor.clone();
        let required = move |role: &str| factor.required_for(role);
        let outcome = self
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
                    tx.audit(&AuditEntry::new(
                        AuditAction::TokenRefresh,
                        Outcome::Failed,
                        &meta,
                    ))?;
                    return Ok(RefreshOutcome::Invalid);
                };
                let entry = AuditEntry::new(AuditAction::TokenRefresh, Outcome::Failed, &meta)
                    .actor(Actor::user(&user));
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
                    tx.audit(&entry.outcome(Outcome::ReuseDetected))?;
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
                tx.audit(&entry.outcome(Outcome::Success))?;
                let enrol_only =
                    required(&user.role) && !second_factor::is_confirmed(tx.conn, &user.id)?;
                Ok(RefreshOutcome::Rotated {
                    user: Box::new(user),
                    session_id: session.id,
                    token: new_token,
                    enrol_only,
                })
            })
            .await?;
        match outcome {
            RefreshOutcome::Rotated {
                user,
                session_id,
                token,
                enrol_only,
            } => self.token_pair(&user, &session_id, token, enrol_only),
            RefreshOutcome::Reused | RefreshOutcome::Invalid => Err(invalid()),
        }
    }

    /// Ends the caller's session (access and refresh token) and, if given, the session of
    /// the refresh token sent along, when it is the same user's.
    pub async fn logout(&self, principal: &Principal, req: LogoutRequest) -> Result<(), AppError> {
        let sid = principal.session_id.clone();
        let uid = principal.user.id.clone();
        let entry = AuditEntry::by(principal, AuditAction::Logout, Outcome::Success);
        let extra_hash = req
            .refresh_token
            .filter(|t| t.len() <= 256)
            .map(|t| hash_refresh_token(&t));
        self.writer
            .write_as(principal, move |tx| {
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

    /// Changes the caller's password (the current one must be right) and ends all of
    /// the caller's sessions.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: String,
        new: String,
    ) -> Result<(), AppError> {
        check_new_password(&new)?;
        if current.len() > MAX_PASSWORD_LEN {
            return Err(AppError::bad_request(
                "invalid_password",
                "current_password is too long",
            ));
        }
        let ok = self
            .hasher
            .verify(Some(principal.user.password_hash.clone()), current)
            .await?;
        if !ok {
            return Err(AppError::bad_request(
                "wrong_password",
                "current_password is not right",
            ));
        }
        let hash = self.hasher.hash(new).await?;
        let uid = principal.user.id.clone();
        let entry = AuditEntry::by(principal, AuditAction::PasswordChange, Outcome::Success)
            .record("user", &principal.user.username);
        self.writer
            .write_as(principal, move |tx| {
                diesel::update(users::table.filter(users::id.eq(&uid)))
                    .set(users::password_hash.eq(&hash))
                    .execute(tx.conn)?;
                revoke_all_sessions(tx, &uid)?;
                tx.audit(&entry)
            })
            .await
    }
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

impl Accounts<'_> {
    /// Starts enrolling a second factor, audited. With `resume` (the pages), the
    /// enrolment in progress is shown again rather than replaced, and `Ok(None)` means
    /// the account already has a confirmed factor; without (the API), that is a 409.
    pub async fn enrol_second_factor(
        &self,
        p: &Principal,
        resume: bool,
    ) -> Result<Option<second_factor::Enrolment>, AppError> {
        let key = self.second_factor.key()?.clone();
        let who = p.clone();
        self.writer
            .write_as(p, move |tx| {
                let (id, name) = (&who.user.id, &who.user.username);
                let enrolment = if !resume {
                    second_factor::enrol(tx.conn, &key, id, name)?
                } else if second_factor::is_confirmed(tx.conn, id)? {
                    return Ok(None);
                } else {
                    second_factor::enrol_or_resume(tx.conn, &key, id, name)?
                };
                tx.audit(&AuditEntry::by(
                    &who,
                    AuditAction::TotpEnroll,
                    Outcome::Success,
                ))?;
                Ok(Some(enrolment))
            })
            .await
    }

    /// Confirms the enrolment with a code from the app: the ten recovery codes, once.
    /// `Ok(None)`: a wrong code, or nothing to confirm (audited as failed).
    pub async fn confirm_second_factor(
        &self,
        p: &Principal,
        code: String,
    ) -> Result<Option<Vec<String>>, AppError> {
        let key = self.second_factor.key()?.clone();
        let who = p.clone();
        self.writer
            .write_as(p, move |tx| {
                let codes =
                    second_factor::confirm(tx.conn, &key, &who.user.id, &who.user.username, &code)?;
                let outcome = if codes.is_some() {
                    Outcome::Success
                } else {
                    Outcome::Failed
                };
                tx.audit(&AuditEntry::by(&who, AuditAction::TotpConfirm, outcome))?;
                Ok(codes)
            })
            .await
    }
}

/// An agency provider's access token, as the session of the local account it names (see
/// `auth::oidc`). The session's id is derived from the token, so every instance finds
/// the same session, and signing out with the token ends it everywhere. The local account
/// holds role, organisation and places; a name with no account, or a disabled one, is a
/// 403 that says so, audited. The provider is responsible for the second factor.
pub async fn provider_bearer(
    accounts: Accounts<'_>,
    oidc: Option<&crate::auth::oidc::Oidc>,
    token: &str,
    meta: RequestMeta,
) -> Result<crate::auth::Bearer, AppError> {
    let invalid = || AppError::invalid_token("The access token is not valid: sign in again.");
    let oidc = oidc.ok_or_else(invalid)?;
    if let Some(claims) = oidc.accepted(token) {
        return Ok(crate::auth::Bearer::new(claims, meta));
    }
    let verified = oidc.verify(token).await.map_err(|e| {
        tracing::info!(reason = %e, "an OpenID Provider token was refused");
        invalid()
    })?;
    let sid = format!("oidc-{}", &hash_refresh_token(token)[..32]);
    // Two instances seeing a new token at once both insert its session: the second
    // fails on the key and, tried again, finds it.
    let mut tries = 0;
    let settled = loop {
        tries += 1;
        match record_provider_session(&accounts, &verified, &sid, oidc, &meta).await {
            Err(e) if tries < 3 && matches!(e, AppError::Internal(_)) => continue,
            other => break other??,
        }
    };
    let claims = std::sync::Arc::new(settled);
    oidc.accept(token, claims.clone());
    Ok(crate::auth::Bearer::new(claims, meta))
}

/// The session of a verified provider token, created (and its sign-in audited) the first
/// time; a refusal is audited and returned inside `Ok`, so that its entry is kept.
pub async fn record_provider_session(
    accounts: &Accounts<'_>,
    verified: &crate::auth::oidc::Verified,
    sid: &str,
    oidc: &crate::auth::oidc::Oidc,
    meta: &RequestMeta,
) -> Result<Result<crate::auth::tokens::Claims, AppError>, AppError> {
    let (m, name, sid, verified) = (
        meta.clone(),
        verified.username.clone(),
        sid.to_owned(),
        verified.clone(),
    );
    let issuer = oidc.settings().issuer.clone();
    accounts
        .writer
        .write(move |tx| {
            let now = now_micros();
            let user = users::table
                .filter(users::username.eq(&name))
                .select(User::as_select())
                .first::<User>(tx.conn)
                .optional()?;
            let entry = AuditEntry::new(AuditAction::Login, Outcome::Denied, &m)
                .record("username", &name);
            let refused = |code: &'static str, message: String| AppError::Refused { code, message };
            let user = match user {
                None => {
                    tx.audit(&entry.parts(&["oidc", "no_local_account"]))?;
                    return Ok(Err(refused(
                        "no_local_account",
                        format!("{issuer} says you are {name:?}, but samverkan has no account by that name: ask your organisation's administrator to create it."),
                    )));
                }
                Some(u) if u.disabled => {
                    tx.audit(&entry.actor(Actor::user(&u)).parts(&["oidc", "account_disabled"]))?;
                    return Ok(Err(refused(
                        "account_disabled",
                        format!("The samverkan account {name:?} is disabled: ask your organisation's administrator."),
                    )));
                }
                Some(u) => u,
            };
            let existing = sessions::table
                .find(&sid)
                .select(Session::as_select())
                .first::<Session>(tx.conn)
                .optional()?;
            match existing {
                Some(s) if s.revoked_at.is_some() || s.user_id != user.id => {
                    return Ok(Err(AppError::invalid_token(
                        "The session of this token has ended: sign in again.",
                    )))
                }
                Some(_) => {}
                None => {
                    diesel::insert_into(sessions::table)
                        .values(&Session {
                            id: sid.clone(),
                            user_id: user.id.clone(),
                            created_at: now,
                            expires_at: verified.exp.saturating_mul(1_000_000),
                            revoked_at: None,
                        })
                        .execute(tx.conn)?;
                    tx.audit(
                        &entry
                            .actor(Actor::user(&user))
                            .outcome(Outcome::Success)
                            .parts(&["oidc"]),
                    )?;
                }
            }
            let secs = now / 1_000_000;
            Ok(Ok(crate::auth::tokens::Claims {
                sub: user.id,
                sid: sid.clone(),
                epoch: user.token_epoch,
                iss: issuer.clone(),
                aud: String::new(),
                iat: secs,
                nbf: secs,
                exp: verified.exp,
                jti: sid,
                enrol: false,
            }))
        })
        .await
}
