-- Bearer tokens of the HTTPS admin API. Only a SHA-256 hash of the secret is
-- kept; the token is shown once when created. Portable SQL (SQLite and PostgreSQL).

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at BIGINT NULL,
    revoked_at BIGINT NULL
);
