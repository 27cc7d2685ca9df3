DROP TRIGGER users_changed ON users;
DROP TRIGGER user_places_changed ON user_places;
DROP TRIGGER organizations_changed ON organizations;
DROP TRIGGER sessions_revoked ON sessions;
DROP TRIGGER situation_reports_changed ON situation_reports;
DROP TRIGGER report_sections_changed ON report_sections;
DROP FUNCTION bump_cache_generation();
DROP TABLE cache_generation;
