-- Runs once, when the PostgreSQL volume is created (docker-entrypoint-initdb.d).
-- The flexchain database (POSTGRES_DB) holds the services' snapshots; the registry gets its own.
CREATE DATABASE registry OWNER flexchain;
