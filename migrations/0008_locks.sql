-- Locks: the kill switch. A lock is persisted before sessions are ended, so a
-- restart or another node keeps refusing what it covers. `lock_epoch` is bumped
-- on every change so nodes and the CLI need only poll one small row.

CREATE TABLE locks (
    id TEXT PRIMARY KEY,
    -- user | target | source | session | all
    scope_kind TEXT NOT NULL,
    -- the user or target name, the CIDR network, the session id; '' for all
    scope_value TEXT NOT NULL,
    reason TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NULL,
    lifted_at BIGINT NULL,
    lifted_by TEXT NULL
);
CREATE INDEX locks_open ON locks (lifted_at, expires_at);

CREATE TABLE lock_epoch (
    id BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL
);
INSERT INTO lock_epoch (id, epoch) VALUES (1, 0);
