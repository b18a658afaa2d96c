-- Cluster metering (governance.cluster): the share of a meter's window each node holds. A
-- lease counts against the limit until the node hands it back or its spend is added to
-- governance_usage (the same transaction takes it off the lease), so the sum of usage and
-- leases never passes the limit. A lease not renewed within its TTL stays counted (stranded).
CREATE TABLE governance_leases (
    counter_id    TEXT NOT NULL,
    node_id       TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    amount        BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (counter_id, node_id)
);
CREATE INDEX governance_leases_node ON governance_leases (node_id);
