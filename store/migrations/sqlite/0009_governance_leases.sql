-- Cluster metering leases. Cluster mode needs PostgreSQL; the table exists here so both
-- backends share one schema version.
CREATE TABLE governance_leases (
    counter_id    TEXT NOT NULL,
    node_id       TEXT NOT NULL,
    window_start  INTEGER NOT NULL,
    amount        INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (counter_id, node_id)
);
