-- Live alerts: what happened to which record, written in the transaction of the write
-- itself. No content and no recipient: each stream decides per user, by the policy,
-- whether the record is theirs to hear of. Kept SAMVERKAN_EVENTS_RETAIN_MINUTES for
-- resuming a dropped stream.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    record_kind TEXT NOT NULL,
    record_id TEXT NOT NULL
);
CREATE INDEX events_at ON events(at);
