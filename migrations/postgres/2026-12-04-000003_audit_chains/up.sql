-- One hash chain per writer (issue 20): each instance claims a chain (a row of
-- audit_head, under a session advisory lock) and appends only to it, so instances never
-- wait for each other's audit head. seq stays the one global key of an entry, now drawn
-- from a sequence; within a chain it only grows, and prev_hash links the chain.
ALTER TABLE audit_log ADD COLUMN chain BIGINT NOT NULL DEFAULT 1;
CREATE INDEX audit_log_chain ON audit_log(chain, seq);
CREATE SEQUENCE audit_seq;
SELECT setval('audit_seq', (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log), false);
