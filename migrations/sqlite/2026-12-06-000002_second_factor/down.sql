ALTER TABLE organizations DROP COLUMN password_login;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
