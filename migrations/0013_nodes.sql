-- Several `serve` nodes on one database (issue 19). One row per run of a
-- node (a start): its heartbeat says it is alive; a run whose heartbeat
-- expired is claimed by exactly one other node (state 'up' -> 'dead', with
-- claimed_by), which closes its sessions and seals its recordings.
-- state: 'up' (running or crashed), 'stopped' (stopped cleanly with nothing
-- left open), 'dead' (claimed).
CREATE TABLE nodes (
    run_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    -- The data directory's node-id: a run of the same node and directory
    -- is gone once its successor holds the directory's lock.
    dir_id TEXT NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'up',
    claimed_by TEXT NULL,
    claimed_at BIGINT NULL,
    -- Set once the claimer has closed everything the run left open.
    cleaned_at BIGINT NULL
);
CREATE INDEX nodes_state ON nodes (state);
CREATE INDEX nodes_node ON nodes (node);
-- The run that holds a live session or writes a recording. NULL: written
-- before this migration (recovered only when no other node is alive).
ALTER TABLE sessions ADD COLUMN node_run TEXT NULL;
ALTER TABLE recordings ADD COLUMN node_run TEXT NULL;
CREATE INDEX sessions_node_run ON sessions (node_run);
CREATE INDEX recordings_node_run ON recordings (node_run);
-- What every node must share, by a public fingerprint or a MAC made with
-- the key (never the key): a node with other keys refuses to start.
CREATE TABLE cluster_keys (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    node TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
