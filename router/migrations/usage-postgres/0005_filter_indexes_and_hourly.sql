-- The generation explorer's filters (docs/usage.md#indexes): one index per filter column, each
-- ordered newest first like the explorer's pages, so a filter walks only its own value's records
-- in time order and stops after a page. Each but the status index ends with the status, so a
-- filter by a value and a status (a model's 502s) is checked in the index, never reading a
-- record that does not match. The key's index gains the status too (rebuilt once, here).
DROP INDEX usage_records_key_newest;
CREATE INDEX usage_records_key_newest ON usage_records (key_id, created_at DESC, generation_id DESC, status);
CREATE INDEX usage_records_model_newest ON usage_records ((COALESCE(served_model, model)), created_at DESC, generation_id DESC, status);
CREATE INDEX usage_records_team_newest ON usage_records ((COALESCE(team, '')), created_at DESC, generation_id DESC, status);
CREATE INDEX usage_records_provider_newest ON usage_records ((COALESCE(provider, '')), created_at DESC, generation_id DESC, status);
CREATE INDEX usage_records_status_newest ON usage_records (status, created_at DESC, generation_id DESC);

-- Hourly rollups for the console's last hours (docs/console.md): hour × model × team × provider,
-- and a latency histogram per hour (buckets of two significant digits, their lower bound in
-- milliseconds), kept as long as the records. Hours are counted from 1970-01-01 00:00 UTC.
CREATE TABLE usage_hourly (
    hour               BIGINT NOT NULL,
    model              TEXT NOT NULL,
    team               TEXT NOT NULL,
    provider           TEXT NOT NULL,
    requests           BIGINT NOT NULL,
    failed             BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost_nanos         BIGINT NOT NULL,
    latency_ms         BIGINT NOT NULL,
    PRIMARY KEY (hour, model, team, provider)
);

CREATE TABLE usage_hourly_latency (
    hour               BIGINT NOT NULL,
    latency_bucket_ms  BIGINT NOT NULL,
    requests           BIGINT NOT NULL,
    PRIMARY KEY (hour, latency_bucket_ms)
);

-- A store that existed before: the last two days of its records rolled up now (what the console
-- reads); older hours are not, and nothing reads them.
INSERT INTO usage_hourly
SELECT created_at / 3600000, COALESCE(served_model, model), COALESCE(team, ''), COALESCE(provider, ''),
       COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens),
       SUM(completion_tokens), SUM(cached_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens),
       SUM(cost_nanos), SUM(latency_ms)
FROM usage_records
WHERE created_at >= CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT) - 2 * 86400000
GROUP BY 1, 2, 3, 4;

INSERT INTO usage_hourly_latency
SELECT created_at / 3600000,
       CASE WHEN latency_ms < 100 THEN latency_ms
            WHEN latency_ms < 1000 THEN latency_ms / 10 * 10
            WHEN latency_ms < 10000 THEN latency_ms / 100 * 100
            WHEN latency_ms < 100000 THEN latency_ms / 1000 * 1000
            WHEN latency_ms < 1000000 THEN latency_ms / 10000 * 10000
            ELSE latency_ms / 100000 * 100000 END,
       COUNT(*)
FROM usage_records
WHERE created_at >= CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT) - 2 * 86400000
GROUP BY 1, 2;
