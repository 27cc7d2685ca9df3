-- How an entry's request came: 'web' for the pages, NULL for the API and the CLI.
-- Part of the entry's hash when present.
ALTER TABLE audit_log ADD COLUMN channel TEXT;
