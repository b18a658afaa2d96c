-- Hourly aggregates of the logs, kept by triggers in the same transaction as the rows, so
-- stats and charts over millions of rows read a few thousand aggregates instead. Queries filtering
-- on anything else (keys, latency, content, ...) read the logs themselves.
CREATE TABLE logs_rollup (
    hour INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    object_type TEXT NOT NULL,
    requests INTEGER NOT NULL,
    latency_sum REAL NOT NULL,
    latency_n INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cached_read_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    PRIMARY KEY (hour, provider, model, status, object_type)
);
INSERT INTO logs_rollup
SELECT timestamp / 3600000, provider, model, status, object_type, COUNT(*), COALESCE(SUM(latency), 0),
       COUNT(latency), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens),
       SUM(cached_read_tokens), COALESCE(SUM(cost), 0)
FROM logs GROUP BY 1, 2, 3, 4, 5;
CREATE TRIGGER logs_rollup_insert AFTER INSERT ON logs BEGIN
    INSERT INTO logs_rollup VALUES (new.timestamp / 3600000, new.provider, new.model, new.status, new.object_type, 1,
        COALESCE(new.latency, 0), new.latency IS NOT NULL, new.prompt_tokens, new.completion_tokens,
        new.total_tokens, new.cached_read_tokens, COALESCE(new.cost, 0))
    ON CONFLICT (hour, provider, model, status, object_type) DO UPDATE SET
        requests = requests + 1,
        latency_sum = latency_sum + excluded.latency_sum,
        latency_n = latency_n + excluded.latency_n,
        prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens,
        total_tokens = total_tokens + excluded.total_tokens,
        cached_read_tokens = cached_read_tokens + excluded.cached_read_tokens,
        cost = cost + excluded.cost;
END;
CREATE TRIGGER logs_rollup_delete AFTER DELETE ON logs BEGIN
    UPDATE logs_rollup SET
        requests = requests - 1,
        latency_sum = latency_sum - COALESCE(old.latency, 0),
        latency_n = latency_n - (old.latency IS NOT NULL),
        prompt_tokens = prompt_tokens - old.prompt_tokens,
        completion_tokens = completion_tokens - old.completion_tokens,
        total_tokens = total_tokens - old.total_tokens,
        cached_read_tokens = cached_read_tokens - old.cached_read_tokens,
        cost = cost - COALESCE(old.cost, 0)
    WHERE hour = old.timestamp / 3600000 AND provider = old.provider AND model = old.model
      AND status = old.status AND object_type = old.object_type;
END;
CREATE TRIGGER logs_rollup_update AFTER UPDATE OF timestamp, provider, model, status, object_type, latency,
    prompt_tokens, completion_tokens, total_tokens, cached_read_tokens, cost ON logs BEGIN
    UPDATE logs_rollup SET
        requests = requests - 1,
        latency_sum = latency_sum - COALESCE(old.latency, 0),
        latency_n = latency_n - (old.latency IS NOT NULL),
        prompt_tokens = prompt_tokens - old.prompt_tokens,
        completion_tokens = completion_tokens - old.completion_tokens,
        total_tokens = total_tokens - old.total_tokens,
        cached_read_tokens = cached_read_tokens - old.cached_read_tokens,
        cost = cost - COALESCE(old.cost, 0)
    WHERE hour = old.timestamp / 3600000 AND provider = old.provider AND model = old.model
      AND status = old.status AND object_type = old.object_type;
    INSERT INTO logs_rollup VALUES (new.timestamp / 3600000, new.provider, new.model, new.status, new.object_type, 1,
        COALESCE(new.latency, 0), new.latency IS NOT NULL, new.prompt_tokens, new.completion_tokens,
        new.total_tokens, new.cached_read_tokens, COALESCE(new.cost, 0))
    ON CONFLICT (hour, provider, model, status, object_type) DO UPDATE SET
        requests = requests + 1,
        latency_sum = latency_sum + excluded.latency_sum,
        latency_n = latency_n + excluded.latency_n,
        prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens,
        total_tokens = total_tokens + excluded.total_tokens,
        cached_read_tokens = cached_read_tokens + excluded.cached_read_tokens,
        cost = cost + excluded.cost;
END;
