-- Times are microseconds since the Unix epoch (UTC) in BIGINT, ids are text (UUIDv7 or slugs):
-- the same column types on both backends keep one schema.rs and one code path.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    mandated_reporter BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE places (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    basomrade TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled BOOLEAN NOT NULL,
    token_epoch BIGINT NOT NULL,
    pseudonym TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE user_places (
    user_id TEXT NOT NULL REFERENCES users(id),
    place_id TEXT NOT NULL REFERENCES places(id),
    PRIMARY KEY (user_id, place_id)
);

-- One login session = one refresh-token family. Revoking it ends the access token too.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);

-- Failed logins per key ("user:NAME" or "client:ADDR"); kept in the database so that
-- throttling holds across instances.
CREATE TABLE login_failures (
    id TEXT PRIMARY KEY NOT NULL,
    throttle_key TEXT NOT NULL,
    failed_at BIGINT NOT NULL
);
CREATE INDEX login_failures_key ON login_failures(throttle_key, failed_at);

-- Observation (a guard's report from the scene).
CREATE TABLE observations (
    id TEXT PRIMARY KEY NOT NULL,
    place_id TEXT NOT NULL REFERENCES places(id),
    observed_at BIGINT NOT NULL,
    category TEXT NOT NULL,
    description TEXT,
    reporter_id TEXT NOT NULL REFERENCES users(id),
    reporter_org_id TEXT NOT NULL REFERENCES organizations(id),
    created_at BIGINT NOT NULL,
    legal_hold BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX observations_place_time ON observations(place_id, observed_at, id);
CREATE INDEX observations_time ON observations(observed_at, id);

CREATE TABLE observation_persons (
    id TEXT PRIMARY KEY NOT NULL,
    observation_id TEXT NOT NULL REFERENCES observations(id),
    position INTEGER NOT NULL,
    description TEXT NOT NULL,
    estimated_birth_year INTEGER,
    age_uncertain BOOLEAN NOT NULL
);
CREATE INDEX observation_persons_obs ON observation_persons(observation_id);

-- Situation report (lägesbild).
CREATE TABLE situation_reports (
    id TEXT PRIMARY KEY NOT NULL,
    place_id TEXT NOT NULL REFERENCES places(id),
    title TEXT NOT NULL,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT,
    author_id TEXT NOT NULL REFERENCES users(id),
    author_org_id TEXT NOT NULL REFERENCES organizations(id),
    created_at BIGINT NOT NULL,
    legal_hold BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX situation_reports_place_time ON situation_reports(place_id, created_at, id);
CREATE INDEX situation_reports_time ON situation_reports(created_at, id);

CREATE TABLE report_sections (
    id TEXT PRIMARY KEY NOT NULL,
    report_id TEXT NOT NULL REFERENCES situation_reports(id),
    position INTEGER NOT NULL,
    audience TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX report_sections_report ON report_sections(report_id);

-- Referral (orosanmälan) and what social services return on it.
CREATE TABLE referrals (
    id TEXT PRIMARY KEY NOT NULL,
    receiving_org_id TEXT NOT NULL REFERENCES organizations(id),
    place_id TEXT REFERENCES places(id),
    reporter_id TEXT NOT NULL REFERENCES users(id),
    reporter_org_id TEXT NOT NULL REFERENCES organizations(id),
    child_name TEXT,
    child_personal_identity_number TEXT,
    child_alias TEXT,
    child_estimated_birth_year INTEGER,
    child_age_uncertain BOOLEAN NOT NULL,
    child_description TEXT,
    concern TEXT,
    status TEXT NOT NULL,
    status_changed_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    legal_hold BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX referrals_time ON referrals(created_at, id);
CREATE INDEX referrals_receiving ON referrals(receiving_org_id, created_at);
CREATE INDEX referrals_reporter ON referrals(reporter_id, created_at);

-- Every feedback decision is kept: the current one is copied to referrals.status.
CREATE TABLE referral_feedback (
    id TEXT PRIMARY KEY NOT NULL,
    referral_id TEXT NOT NULL REFERENCES referrals(id),
    status TEXT NOT NULL,
    note TEXT,
    author_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX referral_feedback_referral ON referral_feedback(referral_id);

CREATE TABLE referral_consents (
    id TEXT PRIMARY KEY NOT NULL,
    referral_id TEXT NOT NULL REFERENCES referrals(id),
    given_by TEXT NOT NULL,
    scope TEXT NOT NULL,
    valid_until BIGINT NOT NULL,
    released_details TEXT,
    recorded_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX referral_consents_referral ON referral_consents(referral_id);

-- Append-only, hash-chained audit trail. seq is the chain position, assigned by the
-- writer under the lock on audit_head, so two instances cannot fork the chain.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    actor_id TEXT,
    actor_username TEXT,
    actor_org_id TEXT,
    actor_role TEXT,
    action TEXT NOT NULL,
    record_kind TEXT,
    record_id TEXT,
    parts TEXT NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT,
    purpose TEXT,
    client TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log(actor_username, seq);
CREATE INDEX audit_log_record ON audit_log(record_id, seq);
CREATE INDEX audit_log_at ON audit_log(at);

CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
