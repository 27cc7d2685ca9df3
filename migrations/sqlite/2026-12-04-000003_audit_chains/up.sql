-- One hash chain per writer (issue 20). SQLite has one writer at a time (its write
-- lock), so it keeps appending to chain 1; the column keeps one schema for both backends.
ALTER TABLE audit_log ADD COLUMN chain BIGINT NOT NULL DEFAULT 1;
CREATE INDEX audit_log_chain ON audit_log(chain, seq);
