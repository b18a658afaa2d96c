-- Request logs: one row per request, written in batches by the log writer.
CREATE TABLE logs (
    id TEXT PRIMARY KEY,
    parent_request_id TEXT,
    timestamp BIGINT NOT NULL,
    object_type TEXT NOT NULL,
    provider TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    requested_model TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    status_code BIGINT NOT NULL DEFAULT 0,
    stream BIGINT NOT NULL DEFAULT 0,
    latency DOUBLE PRECISION,
    time_to_first_token DOUBLE PRECISION,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    total_tokens BIGINT NOT NULL DEFAULT 0,
    cached_read_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    cost DOUBLE PRECISION,
    number_of_retries BIGINT NOT NULL DEFAULT 0,
    fallback_index BIGINT NOT NULL DEFAULT 0,
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
    content_truncated BIGINT NOT NULL DEFAULT 0,
    metadata TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX logs_timestamp ON logs (timestamp);
-- The list's common filter (provider, status), newest first.
CREATE INDEX logs_provider_status ON logs (provider, status, timestamp);
CREATE INDEX logs_model ON logs (model, timestamp);
CREATE INDEX logs_virtual_key ON logs (virtual_key_id, timestamp);
CREATE INDEX logs_selected_key ON logs (selected_key_id, timestamp);
CREATE INDEX logs_status ON logs (status, timestamp);
-- Content search: a trigram index when the pg_trgm extension can be created; without it,
-- content search scans.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX logs_content_trgm ON logs USING gin (content_summary gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available: content search will scan';
END
$$;
