CREATE INDEX audit_log_actor ON audit_log(actor_username, seq);
CREATE INDEX audit_log_record ON audit_log(record_id, seq);
CREATE INDEX audit_log_at ON audit_log(at);
DROP TABLE audit_keys;
ALTER TABLE audit_head DROP COLUMN indexed_seq;
