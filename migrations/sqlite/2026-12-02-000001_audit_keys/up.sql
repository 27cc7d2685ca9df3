-- The auditor's look-ups (by actor, by record, by time) move off the hot path. Every
-- group commit used to update three indexes on audit_log, more than half of the log
-- pages it wrote. Now audit_log has none; the writer copies the looked-up columns of
-- new entries into audit_keys, which carries the indexes, a couple of thousand entries
-- at a time (and whenever an auditor asks), in the same serialised transactions.
-- audit_head.indexed_seq says how far audit_keys goes.
CREATE TABLE audit_keys (
    seq INTEGER PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    actor_username TEXT,
    record_id TEXT
);
INSERT INTO audit_keys (seq, at, actor_username, record_id)
    SELECT seq, at, actor_username, record_id FROM audit_log ORDER BY seq;
CREATE INDEX audit_keys_actor ON audit_keys(actor_username, seq);
CREATE INDEX audit_keys_record ON audit_keys(record_id, seq);
CREATE INDEX audit_keys_at ON audit_keys(at);
DROP INDEX audit_log_actor;
DROP INDEX audit_log_record;
DROP INDEX audit_log_at;
ALTER TABLE audit_head ADD COLUMN indexed_seq BIGINT NOT NULL DEFAULT 0;
UPDATE audit_head SET indexed_seq = (SELECT COALESCE(MAX(seq), 0) FROM audit_keys);
