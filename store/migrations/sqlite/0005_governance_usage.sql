-- Live governance usage (budget spend, rate-limit counters and their window starts), one row per
-- counter. Written by the gateway's usage flush every second; not part of the config, so writes
-- here do not bump config_version.
CREATE TABLE governance_usage (
    counter_id  TEXT PRIMARY KEY,
    doc_json    TEXT NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
