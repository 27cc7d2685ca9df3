-- Servers cache sessions/users and situation reports in memory. Every change that could
-- make such a cache wrong bumps this counter, whoever makes it (a server, the CLI, an
-- operator's SQL), so every instance notices and drops its caches.
CREATE TABLE cache_generation (
    id INTEGER PRIMARY KEY NOT NULL,
    generation BIGINT NOT NULL
);
INSERT INTO cache_generation (id, generation) VALUES (1, 0);

CREATE FUNCTION bump_cache_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cache_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_changed AFTER UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_generation();
CREATE TRIGGER user_places_changed AFTER INSERT OR UPDATE OR DELETE ON user_places
    FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_generation();
CREATE TRIGGER organizations_changed AFTER UPDATE OR DELETE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_generation();
-- A refresh only moves expires_at on; caches check expiry themselves.
CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at, user_id OR DELETE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_generation();
CREATE TRIGGER situation_reports_changed AFTER UPDATE OR DELETE ON situation_reports
    FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_generation();
CREATE TRIGGER report_sections_changed AFTER INSERT OR UPDATE OR DELETE ON report_sections
    FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_generation();
