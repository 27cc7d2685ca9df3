-- A second factor for local accounts (TOTP). The secret is sealed with
-- SAMVERKAN_TOTP_KEY; `last_step` is the last accepted time step, so a code is spent once.
CREATE TABLE totp_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id),
    secret_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT NOT NULL DEFAULT 0
);
-- Single-use recovery codes, as keyed hashes.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id),
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
-- Whether the organisation's people may sign in with a local password (false: single
-- sign-on only).
ALTER TABLE organizations ADD COLUMN password_login BOOLEAN NOT NULL DEFAULT TRUE;
