-- Signed-in web console sessions, shared by every node and kept across
-- restarts. Only a SHA-256 hash of the cookie value is stored: a row alone
-- (a database reader, a backup) cannot be turned back into a cookie, and
-- the CSRF token is derived from the cookie value, so it is not here either.
-- A row ends at sign-out or once idle past the timeout (deleted).
-- Portable SQL (SQLite and PostgreSQL).

CREATE TABLE console_sessions (
    id_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL
);

CREATE INDEX console_sessions_last_used ON console_sessions (last_used_at);
