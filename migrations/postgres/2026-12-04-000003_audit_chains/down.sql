DROP SEQUENCE audit_seq;
DROP INDEX audit_log_chain;
ALTER TABLE audit_log DROP COLUMN chain;
DELETE FROM audit_head WHERE id <> 1;
