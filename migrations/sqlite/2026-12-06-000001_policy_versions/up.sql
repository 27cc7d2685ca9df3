-- The policy sets that have been in force, in the order they became current: the last
-- row is the one every instance decides with (each polls it). The files are kept whole,
-- so any audit entry's `policy_hash` can be looked up and read as the jurist wrote it.
CREATE TABLE policy_versions (
    position BIGINT PRIMARY KEY NOT NULL,
    hash TEXT NOT NULL,
    loaded_at BIGINT NOT NULL,
    loaded_by TEXT NOT NULL,
    -- JSON object: file name -> text (schema, *.cedar, decisions.csv)
    files TEXT NOT NULL
);
CREATE INDEX policy_versions_hash ON policy_versions(hash);
-- The hash of the policy set that decided (NULL for entries from before this column).
ALTER TABLE audit_log ADD COLUMN policy_hash TEXT;
