//! `GET /api/v1/events`: live alerts as Server-Sent Events. Each event names a record's
//! kind and id only; the client GETs the record, so the normal part decision and audit
//! apply. An event's `id` is sealed for its user (no global sequence whose gaps would
//! count hidden events) and is what `Last-Event-ID` resumes from. Heartbeats come at a
//! fixed interval whatever happens; a session that ends (logout, disable, password or
//! access change, on any instance) ends its stream within a second.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{get, http::header, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Interval;

use crate::api::state::AppState;
use crate::audit::{AuditAction, AuditEntry, Outcome};
use crate::auth::{Bearer, Principal};
use crate::error::{AppError, ErrorBody};
use crate::events::{self, Event, StreamSlot};
use crate::records::cursor::{Binding, Cursor};

/// How often a stream checks that its session still holds.
const RECHECK: Duration = Duration::from_millis(400);
/// At most this many kept events are replayed on resume (the rest by the next resume).
const REPLAY_LIMIT: i64 = 5000;
/// Delivered event ids remembered per stream, to send none twice.
const REMEMBERED: usize = 10_000;

fn binding(p: &Principal) -> Binding {
    Binding::new(&p.user.id, "events", &[])
}

/// One open stream.
struct Stream {
    state: web::Data<AppState>,
    bearer: Bearer,
    principal: Principal,
    rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    backlog: VecDeque<Arc<Event>>,
    delivered: BTreeSet<i64>,
    /// The newest event delivered (where a replay after falling behind starts).
    last: i64,
    heartbeat: Interval,
    recheck: Interval,
    _slot: StreamSlot,
}

impl Stream {
    fn frame(&mut self, e: &Event) -> Bytes {
        self.delivered.insert(e.seq);
        while self.delivered.len() > REMEMBERED {
            self.delivered.pop_first();
        }
        self.last = self.last.max(e.seq);
        let id = self.state.cursor_seal.seal(
            &Cursor {
                time: e.seq,
                id: e.record_id.clone(),
            },
            &binding(&self.principal),
        );
        let data = serde_json::json!({"kind": e.record_kind(), "id": e.record_id});
        Bytes::from(format!(
            "id: {id}\nevent: {}\ndata: {data}\n\n",
            e.kind.as_str()
        ))
    }

    fn wanted(&self, e: &Event) -> bool {
        !self.delivered.contains(&e.seq)
            && e.for_user(&self.state.policy.current(), &self.principal.attrs)
    }

    /// The kept events after `after` that this user hears of.
    async fn replay(&mut self, after: i64) -> Result<(), AppError> {
        let (_, found) = self
            .state
            .db
            .run(move |c| events::load_after(c, after, REPLAY_LIMIT, &|_| false))
            .await?;
        for e in found {
            if self.wanted(&e) {
                self.backlog.push_back(Arc::new(e));
            }
        }
        Ok(())
    }

    /// Whether the session still holds and the token has not expired (the client then
    /// reconnects with a fresh one and `Last-Event-ID`); refreshes what the user may see.
    async fn holds(&mut self) -> bool {
        if self.bearer.expired() {
            return false;
        }
        if let Some(p) = self.bearer.cached(&self.state.sessions) {
            self.principal = p;
            return true;
        }
        let bearer = self.bearer.clone();
        let sessions = self.state.sessions.clone();
        match self
            .state
            .db
            .run(move |c| bearer.resolve(c, &sessions))
            .await
        {
            Ok(p) => {
                self.principal = p;
                true
            }
            Err(_) => false,
        }
    }

    /// The next bytes to send, or `None` when the stream ends.
    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Stream)> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if self.delivered.contains(&e.seq) {
                    continue;
                }
                let frame = self.frame(&e);
                return Some((Ok(frame), self));
            }
            tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(e) => {
                        if self.wanted(&e) {
                            let frame = self.frame(&e);
                            return Some((Ok(frame), self));
                        }
                    }
                    // Fell behind the bus: read what was missed from the table.
                    Err(RecvError::Lagged(_)) => {
                        let after = self.last;
                        if self.replay(after).await.is_err() {
                            return None;
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.heartbeat.tick() => {
                    return Some((Ok(Bytes::from_static(b": heartbeat\n\n")), self));
                }
                _ = self.recheck.tick() => {
                    if !self.holds().await {
                        return None;
                    }
                }
            }
        }
    }
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received, to resume after a dropped connection")),
    responses((status = 200, description = "Server-Sent Events: `event: observation.filed | situation_report.published | referral.received | referral.feedback`, `data: {\"kind\": …, \"id\": …}`, an opaque per-user `id`; a `: heartbeat` comment at a fixed interval", content_type = "text/event-stream", body = String),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[get("/events")]
pub async fn stream(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    open(state, bearer, &req).await
}

/// Opens a stream for the bearer (the API's token or the pages' session).
pub async fn open(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: &HttpRequest,
) -> Result<HttpResponse, AppError> {
    let resolving = bearer.clone();
    let sessions = state.sessions.clone();
    let principal = state
        .db
        .run(move |c| resolving.resolve(c, &sessions))
        .await?;
    let last = match req.headers().get("last-event-id") {
        None => None,
        Some(v) => {
            let raw = v.to_str().map_err(|_| invalid_last_event_id())?;
            let cursor = state
                .cursor_seal
                .open(raw, &binding(&principal))
                .map_err(|_| invalid_last_event_id())?;
            Some(cursor.time)
        }
    };
    let slot = state.events.open_stream().ok_or(AppError::Unavailable)?;
    state
        .writer
        .audit_as(
            &principal,
            vec![AuditEntry::by(
                &principal,
                AuditAction::EventsOpen,
                Outcome::Success,
            )],
        )
        .await?;
    let every = |d: Duration| {
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    };
    let heartbeat = every(Duration::from_secs(state.events.settings.heartbeat_secs));
    let mut s = Stream {
        rx: state.events.subscribe(),
        state: state.clone(),
        bearer,
        principal,
        backlog: VecDeque::new(),
        delivered: BTreeSet::new(),
        last: 0,
        heartbeat,
        recheck: every(RECHECK),
        _slot: slot,
    };
    // Subscribed first, then the kept events read: nothing falls between the two, and
    // what comes both ways is sent once.
    if let Some(after) = last {
        s.last = after;
        s.replay(after).await?;
    }
    let body = futures_util::stream::unfold(s, Stream::next);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // A buffering proxy (nginx) would hold the events back.
        .insert_header(("X-Accel-Buffering", "no"))
        // Tells the client first: the stream is open (and carries nothing yet).
        .streaming(
            futures_util::stream::once(std::future::ready(Ok::<_, actix_web::Error>(
                Bytes::from_static(b": open\n\n"),
            )))
            .chain(body),
        ))
}

fn invalid_last_event_id() -> AppError {
    AppError::bad_request(
        "invalid_last_event_id",
        "Last-Event-ID must be the id of an event this user received on this stream",
    )
}
