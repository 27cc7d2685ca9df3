-- Servers cache sessions/users and situation reports in memory. Every change that could
-- make such a cache wrong bumps this counter, whoever makes it (a server, the CLI, an
-- operator's SQL), so every instance notices and drops its caches.
CREATE TABLE cache_generation (
    id INTEGER PRIMARY KEY NOT NULL,
    generation BIGINT NOT NULL
);
INSERT INTO cache_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER users_changed AFTER UPDATE ON users
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER user_places_added AFTER INSERT ON user_places
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER user_places_changed AFTER UPDATE ON user_places
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER user_places_deleted AFTER DELETE ON user_places
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER organizations_changed AFTER UPDATE ON organizations
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER organizations_deleted AFTER DELETE ON organizations
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
-- A refresh only moves expires_at on; caches check expiry themselves.
CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at, user_id ON sessions
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER situation_reports_changed AFTER UPDATE ON situation_reports
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER situation_reports_deleted AFTER DELETE ON situation_reports
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER report_sections_added AFTER INSERT ON report_sections
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER report_sections_changed AFTER UPDATE ON report_sections
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER report_sections_deleted AFTER DELETE ON report_sections
BEGIN UPDATE cache_generation SET generation = generation + 1 WHERE id = 1; END;
