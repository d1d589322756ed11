-- MFA, source blocks and the audit trail (chained in a later migration).

ALTER TABLE users ADD COLUMN mfa_exempt BIGINT NOT NULL DEFAULT 0;

CREATE TABLE totp (
    user_name TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
    sealed TEXT NOT NULL,
    -- The last accepted RFC 6238 time step; a code is accepted only for a later one.
    last_step BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE source_blocks (
    cidr TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NULL
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    ts BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_ts ON audit_events (ts);
