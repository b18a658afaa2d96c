-- Request logs: one row per request, written in batches by the log writer.
CREATE TABLE logs (
    id TEXT PRIMARY KEY,
    parent_request_id TEXT,
    timestamp INTEGER NOT NULL,
    object_type TEXT NOT NULL,
    provider TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    requested_model TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    status_code INTEGER NOT NULL DEFAULT 0,
    stream INTEGER NOT NULL DEFAULT 0,
    latency REAL,
    time_to_first_token REAL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    cached_read_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL,
    number_of_retries INTEGER NOT NULL DEFAULT 0,
    fallback_index INTEGER NOT NULL DEFAULT 0,
    selected_key_id TEXT,
    selected_key_name TEXT,
    virtual_key_id TEXT,
    virtual_key_name TEXT,
    team_id TEXT,
    team_name TEXT,
    customer_id TEXT,
    customer_name TEXT,
    routing_rule_id TEXT,
    routing_rule_name TEXT,
    stop_reason TEXT,
    error_details TEXT,
    input_history TEXT,
    output_message TEXT,
    tools TEXT,
    params TEXT,
    content_summary TEXT,
    content_truncated INTEGER NOT NULL DEFAULT 0,
    metadata TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX logs_timestamp ON logs (timestamp);
-- The list's common filter (provider, status), newest first.
CREATE INDEX logs_provider_status ON logs (provider, status, timestamp);
CREATE INDEX logs_model ON logs (model, timestamp);
CREATE INDEX logs_virtual_key ON logs (virtual_key_id, timestamp);
CREATE INDEX logs_selected_key ON logs (selected_key_id, timestamp);
CREATE INDEX logs_status ON logs (status, timestamp);
-- Content search: a trigram index, so `LIKE '%term%'` on any substring of three characters or
-- more is found without scanning. `detail = none` keeps only which rows hold a trigram, which is
-- all a LIKE needs, at a third less write cost than positions would take.
CREATE VIRTUAL TABLE logs_fts USING fts5 (content_summary, content = 'logs', content_rowid = 'rowid', tokenize = 'trigram', detail = none);
CREATE TRIGGER logs_fts_insert AFTER INSERT ON logs BEGIN
    INSERT INTO logs_fts (rowid, content_summary) VALUES (new.rowid, new.content_summary);
END;
CREATE TRIGGER logs_fts_delete AFTER DELETE ON logs BEGIN
    INSERT INTO logs_fts (logs_fts, rowid, content_summary) VALUES ('delete', old.rowid, old.content_summary);
END;
CREATE TRIGGER logs_fts_update AFTER UPDATE OF content_summary ON logs BEGIN
    INSERT INTO logs_fts (logs_fts, rowid, content_summary) VALUES ('delete', old.rowid, old.content_summary);
    INSERT INTO logs_fts (rowid, content_summary) VALUES (new.rowid, new.content_summary);
END;
