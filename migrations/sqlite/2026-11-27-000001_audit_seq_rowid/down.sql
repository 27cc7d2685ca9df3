CREATE TABLE audit_log_by_rowid (
    seq BIGINT PRIMARY KEY NOT NULL,
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
INSERT INTO audit_log_by_rowid (seq, at, actor_id, actor_username, actor_org_id, actor_role, action, record_kind, record_id, parts, outcome, request_id, purpose, client, prev_hash, hash)
    SELECT seq, at, actor_id, actor_username, actor_org_id, actor_role, action, record_kind, record_id, parts, outcome, request_id, purpose, client, prev_hash, hash FROM audit_log ORDER BY seq;
DROP TABLE audit_log;
ALTER TABLE audit_log_by_rowid RENAME TO audit_log;
CREATE INDEX audit_log_actor ON audit_log(actor_username, seq);
CREATE INDEX audit_log_record ON audit_log(record_id, seq);
CREATE INDEX audit_log_at ON audit_log(at);
