-- Run once by the postgres image when the database is first created (docker-compose.yml).
-- The application's own role: migration 0006 grants it what the registry writes and nothing more.
CREATE ROLE registry_app LOGIN PASSWORD 'change-me-too';
