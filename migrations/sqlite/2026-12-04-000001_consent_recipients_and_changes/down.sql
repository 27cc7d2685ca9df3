DROP INDEX report_sections_audience;
DROP INDEX situation_reports_author_time;
DROP INDEX observations_reporter_time;
ALTER TABLE audit_log DROP COLUMN changes;
ALTER TABLE referral_consents DROP COLUMN withdrawn_by;
ALTER TABLE referral_consents DROP COLUMN withdrawn_at;
ALTER TABLE referral_consents DROP COLUMN released_to;
