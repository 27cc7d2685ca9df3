-- The chain position becomes the table's own row id (INTEGER PRIMARY KEY): SQLite then
-- keeps one B-tree for the entries instead of two (the rows by hidden row id, plus an
-- index on seq), so every audit entry writes one index less and every group commit
-- rewrites fewer pages. Same columns, same order, same chain: only the storage changes.
CREATE TABLE audit_log_by_seq (
    seq INTEGER PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    actor_id TEXT,
    actor_username TEXT,
    actor_org_id TEXT,
    actor_role TEXT,
    action TEXT NOT NULL,
    record_kind TEXT,
    record_id TEXT,
    parts TEXT NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT,
    purpose TEXT,
    client TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_log_by_seq (seq, at, actor_id, actor_username, actor_org_id, actor_role, action, record_kind, record_id, parts, outcome, request_id, purpose, client, prev_hash, hash)
    SELECT seq, at, actor_id, actor_username, actor_org_id, actor_role, action, record_kind, record_id, parts, outcome, request_id, purpose, client, prev_hash, hash FROM audit_log ORDER BY seq;
DROP TABLE audit_log;
ALTER TABLE audit_log_by_seq RENAME TO audit_log;
CREATE INDEX audit_log_actor ON audit_log(actor_username, seq);
CREATE INDEX audit_log_record ON audit_log(record_id, seq);
CREATE INDEX audit_log_at ON audit_log(at);
