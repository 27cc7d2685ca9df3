//! The steps every record endpoint shares: resolve the caller, run the visibility
//! pipeline, put what was disclosed (or the refusal) on record, answer. A record with no
//! visible part is a 404 with the same body as an id that never existed, and the
//! refusal is audited.

use actix_web::http::header::ContentType;
use actix_web::HttpResponse;

use crate::api::state::AppState;
use crate::audit::{AuditAction, AuditEntry, Outcome};
use crate::auth::{Bearer, Principal};
use crate::error::AppError;
use crate::fields::record_id;
use crate::records::visibility::{self, Answer, RecordCache, RecordKind};
use crate::records::{Decider, ListQuery, Page};
use crate::storage::{now_micros, DbConnection};

pub fn decider(state: &AppState, principal: &Principal) -> Decider {
    Decider::new(state.policy.current(), principal.attrs.clone())
}

/// The audit entry of a refusal: 404s are `not_found`, everything else `denied`.
pub fn refusal(
    principal: &Principal,
    action: AuditAction,
    kind: &str,
    id: Option<&str>,
    err: &AppError,
) -> AuditEntry {
    let outcome = match err {
        AppError::NotFound => Outcome::NotFound,
        _ => Outcome::Denied,
    };
    let mut entry = AuditEntry::by(principal, action, outcome);
    entry.record_kind = Some(kind.to_owned());
    entry.record_id = id.map(str::to_owned);
    entry
}

/// Records a refusal and returns the error to answer with.
pub async fn refuse(
    state: &AppState,
    principal: &Principal,
    action: AuditAction,
    kind: &str,
    id: Option<&str>,
    err: AppError,
) -> AppError {
    let entry = refusal(principal, action, kind, id, &err);
    match state
        .writer
        .write_as(principal, move |tx| tx.audit(&entry))
        .await
    {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// Resolves the caller and runs `f` for them in the same database job: one hand-off on
/// the hot read paths.
pub async fn read_as<T, F>(
    state: &AppState,
    bearer: Bearer,
    f: F,
) -> Result<(Principal, T), AppError>
where
    F: FnOnce(&mut DbConnection, &Decider) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    let policy = state.policy.current();
    let sessions = state.sessions.clone();
    let cached = bearer.cached(&sessions);
    state
        .db
        .run(move |c| {
            let principal = match cached {
                Some(p) => p,
                None => bearer.resolve(c, &sessions)?,
            };
            let d = Decider::new(policy, principal.attrs.clone());
            let out = f(c, &d)?;
            Ok((principal, out))
        })
        .await
}

/// One page of the records the caller may see, each read audited (under `action`:
/// `list` for a list) with the parts it disclosed before the page leaves.
pub async fn list_page<K: RecordKind>(
    state: &AppState,
    bearer: Bearer,
    query: ListQuery,
) -> Result<(Principal, Page<K::View>), AppError> {
    let seal = state.cursor_seal.clone();
    let (principal, (shown, next_cursor, policy_hash)) = read_as(state, bearer, move |c, d| {
        let f = query.validate(&seal, &d.principal().user_id, K::KIND)?;
        let page = visibility::list::<K>(c, d, &f, now_micros())?;
        Ok((
            page.shown,
            page.next.map(|key| seal.seal(&key, &f.binding)),
            d.engine().hash().clone(),
        ))
    })
    .await?;
    let entries: Vec<AuditEntry> = shown
        .iter()
        .map(|s| {
            let mut e = AuditEntry::by(&principal, AuditAction::List, Outcome::Success)
                .record(K::KIND.as_str(), s.id())
                .parts(&s.parts);
            e.policy_hash = Some(policy_hash.clone());
            e
        })
        .collect();
    // Even an empty page: the group checks that the session still holds.
    state.writer.audit_as(&principal, entries).await?;
    let page = Page {
        items: shown.into_iter().map(|s| s.view).collect(),
        next_cursor,
    };
    Ok((principal, page))
}

/// `GET /…/{kind}`: [`list_page`] as JSON.
pub async fn list<K: RecordKind>(
    state: &AppState,
    bearer: Bearer,
    query: ListQuery,
) -> Result<HttpResponse, AppError> {
    let (_, page) = list_page::<K>(state, bearer, query).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /…/{kind}/{id}`: [`read_answer`] as JSON.
pub async fn read<K: RecordKind>(
    state: &AppState,
    bearer: Bearer,
    raw_id: &str,
    cache: Option<std::sync::Arc<RecordCache<K>>>,
) -> Result<HttpResponse, AppError> {
    let (_, answer) = read_answer::<K>(state, bearer, raw_id, cache).await?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(answer.body))
}

/// The record as the caller may see it, from memory when the kind is kept there
/// (`cache`), its read audited; nothing visible is a 404 (and an audited refusal).
pub async fn read_answer<K: RecordKind>(
    state: &AppState,
    bearer: Bearer,
    raw_id: &str,
    cache: Option<std::sync::Arc<RecordCache<K>>>,
) -> Result<(Principal, Answer), AppError> {
    // The session is checked before the id's shape: a revoked token is a 401 whatever it asks.
    let id = record_id(raw_id).ok();
    if let (Some(principal), Some(id), Some(cache)) = (
        bearer.cached(&state.sessions),
        id.as_deref(),
        cache.as_deref(),
    ) {
        if let Some(cached) = cache.get(id) {
            let d = decider(state, &principal);
            let answer = visibility::read_cached(&d, &cached, now_micros());
            let decided = d.engine().hash().clone();
            let answer = answer_read::<K>(state, &principal, Some(id), answer, decided).await?;
            return Ok((principal, answer));
        }
    }
    let lookup = id.clone();
    let (principal, (answer, decided)) = read_as(state, bearer, move |c, d| {
        let answer = match lookup {
            Some(id) => visibility::read::<K>(c, d, &id, now_micros(), cache.as_deref())?,
            None => None,
        };
        Ok((answer, d.engine().hash().clone()))
    })
    .await?;
    let answer = answer_read::<K>(state, &principal, id.as_deref(), answer, decided).await?;
    Ok((principal, answer))
}

/// The answer to a read of one record: audited with the parts disclosed, or a 404 (and
/// its refusal on record) when nothing is visible.
async fn answer_read<K: RecordKind>(
    state: &AppState,
    principal: &Principal,
    id: Option<&str>,
    answer: Option<Answer>,
    decided: std::sync::Arc<str>,
) -> Result<Answer, AppError> {
    let kind = K::KIND.as_str();
    match (answer, id) {
        (Some(a), Some(id)) => {
            let mut entry = AuditEntry::by(principal, AuditAction::Read, Outcome::Success)
                .record(kind, id)
                .parts(&a.parts);
            entry.policy_hash = Some(decided);
            state.writer.audit_as(principal, vec![entry]).await?;
            Ok(a)
        }
        _ => Err(refuse(
            state,
            principal,
            AuditAction::Read,
            kind,
            id,
            AppError::NotFound,
        )
        .await),
    }
}

/// 201 with the record as its creator may see it, or just its id when the creator may
/// see none of it.
pub fn created(id: String, answer: Option<Answer>) -> HttpResponse {
    match answer {
        Some(a) => HttpResponse::Created()
            .content_type(ContentType::json())
            .body(a.body),
        None => HttpResponse::Created().json(serde_json::json!({ "id": id })),
    }
}

/// How a write that is decided inside its own transaction ended.
pub enum Written<T> {
    Done(T),
    /// Refused, and the refusal is on record in the same transaction.
    Refused(AppError),
}

impl<T> Written<T> {
    pub fn into_result(self) -> Result<T, AppError> {
        match self {
            Written::Done(t) => Ok(t),
            Written::Refused(e) => Err(e),
        }
    }
}

/// Files a new record: every part it stores must be allowed (`resources`); then
/// `insert` stores it and hands back the record as stored, the filing is audited with
/// those parts, and the record is answered as its creator may see it — all in one
/// transaction. Returns the id and that answer (`None`: the creator may see none of it).
/// An insert that has the whole record in hand returns it without reading it back: each
/// statement less is a round trip less inside the writer's group commit.
pub async fn create<K, F>(
    state: &AppState,
    principal: &Principal,
    resources: Vec<crate::policy::Resource>,
    parts: Vec<&'static str>,
    insert: F,
) -> Result<(String, Option<Answer>), AppError>
where
    K: RecordKind,
    F: FnOnce(
            &mut DbConnection,
            &crate::storage::models::User,
            &crate::storage::models::Organization,
        ) -> Result<K::Stored, AppError>
        + Send
        + 'static,
{
    let d = decider(state, principal);
    let create = crate::policy::Action::Create;
    if let Some(denied) = resources.iter().find(|r| !d.allows(create, r)) {
        let why = d.engine().refusal(d.principal(), create, denied);
        let err = AppError::Refused {
            code: why.code(),
            message: why.message(&K::KIND.as_str().replace('_', " ")),
        };
        return Err(refuse(
            state,
            principal,
            AuditAction::Create,
            K::KIND.as_str(),
            None,
            err,
        )
        .await);
    }
    let user = principal.user.clone();
    let org = principal.organization.clone();
    let entry =
        AuditEntry::by(principal, AuditAction::Create, Outcome::Success).decided_by(d.engine());
    let (id, answer) = state
        .writer
        .write_as(principal, move |tx| {
            let stored = insert(tx.conn, &user, &org)?;
            let id = K::key(K::row(&stored)).id;
            crate::events::record(tx.conn, crate::events::EventKind::created(K::KIND), &id)?;
            tx.audit(&entry.record(K::KIND.as_str(), &id).parts(&parts))?;
            let answer = visibility::answer_of::<K>(&d, &stored, now_micros());
            Ok((id, answer))
        })
        .await?;
    Ok((id, answer))
}

/// A place named in a new record must exist (a 400 that says where to look).
pub async fn known_place(state: &AppState, place: Option<String>) -> Result<(), AppError> {
    let Some(place) = place else { return Ok(()) };
    if state
        .db
        .run(move |c| crate::records::observations::place_exists(c, &place))
        .await?
    {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "unknown_place",
            "place is not a known place (see GET /api/v1/places)",
        ))
    }
}
