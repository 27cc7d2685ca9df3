-- Consents name who may read what they release (released_to: 'reporter', the default,
-- or 'reporter_organization'), and can be withdrawn: from then on the details are
-- hidden. Checked by the policy (ReferralPart.released_to, consent_valid).
ALTER TABLE referral_consents ADD COLUMN released_to TEXT NOT NULL DEFAULT 'reporter';
ALTER TABLE referral_consents ADD COLUMN withdrawn_at BIGINT;
ALTER TABLE referral_consents ADD COLUMN withdrawn_by TEXT;

-- Administrative changes record the changed fields before and after (JSON); NULL for
-- every other entry. Part of the entry's hash when present.
ALTER TABLE audit_log ADD COLUMN changes TEXT;

-- Lists read only the rows a user may see, through these indexes (records::visibility):
-- what a user filed, newest first.
CREATE INDEX observations_reporter_time ON observations(reporter_id, observed_at, id);
CREATE INDEX situation_reports_author_time ON situation_reports(author_id, created_at, id);
CREATE INDEX report_sections_audience ON report_sections(report_id, audience);

