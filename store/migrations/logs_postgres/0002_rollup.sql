-- Hourly aggregates of the logs, kept by a trigger in the same transaction as the rows, so
-- stats and charts over millions of rows read a few thousand aggregates instead. Queries filtering
-- on anything else (keys, latency, content, ...) read the logs themselves.
CREATE TABLE logs_rollup (
    hour BIGINT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    object_type TEXT NOT NULL,
    requests BIGINT NOT NULL,
    latency_sum DOUBLE PRECISION NOT NULL,
    latency_n BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    cached_read_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hour, provider, model, status, object_type)
);
INSERT INTO logs_rollup
SELECT timestamp / 3600000, provider, model, status, object_type, COUNT(*), COALESCE(SUM(latency), 0),
       COUNT(latency), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens),
       SUM(cached_read_tokens), COALESCE(SUM(cost), 0)
FROM logs GROUP BY 1, 2, 3, 4, 5;
CREATE FUNCTION logs_rollup_apply() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE logs_rollup SET
            requests = requests - 1,
            latency_sum = latency_sum - COALESCE(OLD.latency, 0),
            latency_n = latency_n - (CASE WHEN OLD.latency IS NULL THEN 0 ELSE 1 END),
            prompt_tokens = prompt_tokens - OLD.prompt_tokens,
            completion_tokens = completion_tokens - OLD.completion_tokens,
            total_tokens = total_tokens - OLD.total_tokens,
            cached_read_tokens = cached_read_tokens - OLD.cached_read_tokens,
            cost = cost - COALESCE(OLD.cost, 0)
        WHERE hour = OLD.timestamp / 3600000 AND provider = OLD.provider AND model = OLD.model
          AND status = OLD.status AND object_type = OLD.object_type;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO logs_rollup AS r VALUES (NEW.timestamp / 3600000, NEW.provider, NEW.model, NEW.status,
            NEW.object_type, 1, COALESCE(NEW.latency, 0), CASE WHEN NEW.latency IS NULL THEN 0 ELSE 1 END,
            NEW.prompt_tokens, NEW.completion_tokens, NEW.total_tokens, NEW.cached_read_tokens,
            COALESCE(NEW.cost, 0))
        ON CONFLICT (hour, provider, model, status, object_type) DO UPDATE SET
            requests = r.requests + 1,
            latency_sum = r.latency_sum + EXCLUDED.latency_sum,
            latency_n = r.latency_n + EXCLUDED.latency_n,
            prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,
            completion_tokens = r.completion_tokens + EXCLUDED.completion_tokens,
            total_tokens = r.total_tokens + EXCLUDED.total_tokens,
            cached_read_tokens = r.cached_read_tokens + EXCLUDED.cached_read_tokens,
            cost = r.cost + EXCLUDED.cost;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER logs_rollup_apply AFTER INSERT OR DELETE OR UPDATE OF timestamp, provider, model, status,
    object_type, latency, prompt_tokens, completion_tokens, total_tokens, cached_read_tokens, cost
    ON logs FOR EACH ROW EXECUTE FUNCTION logs_rollup_apply();
