-- The audit trail becomes a keyed hash chain (ARCHITECTURE.md, "Audit log").
-- Rows written before this migration move to audit_legacy; the first process
-- holding the chain key appends them to the chain, in time order, and empties
-- that table. UPDATE and DELETE on audit_events are refused by triggers the
-- store installs after migrations (their syntax differs between dialects).

DROP INDEX audit_events_ts;
ALTER TABLE audit_events RENAME TO audit_legacy;

CREATE TABLE audit_events (
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    subject TEXT NOT NULL,
    session_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    -- Named: PostgreSQL kept "audit_events_pkey" for the renamed table.
    CONSTRAINT audit_chain_pkey PRIMARY KEY (seq)
);
CREATE INDEX audit_chain_ts ON audit_events (ts);
CREATE INDEX audit_chain_session ON audit_events (session_id);

-- The chain's head; its row lock serialises appends across processes and
-- nodes, and verify compares it with the last row (a cut-off tail shows).
CREATE TABLE audit_head (
    id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    CONSTRAINT audit_head_pkey PRIMARY KEY (id)
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
