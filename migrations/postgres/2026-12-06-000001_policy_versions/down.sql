ALTER TABLE audit_log DROP COLUMN policy_hash;
DROP TABLE policy_versions;
