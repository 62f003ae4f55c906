-- The usage store (docs/usage.md), SQLite: the same tables as Postgres; rollups are clustered
-- by their key (WITHOUT ROWID). Integers only for times and money: created_at in Unix
-- milliseconds, day in days since 1970-01-01 (UTC), cost in nano-dollars. Absent dimensions in
-- rollups are '' (never NULL), so a unique key covers them.

CREATE TABLE usage_records (
    generation_id      TEXT PRIMARY KEY,
    created_at         BIGINT NOT NULL,
    endpoint           TEXT NOT NULL,
    key_id             TEXT NOT NULL,
    team               TEXT,
    end_user           TEXT,
    tags               TEXT,
    app                TEXT,
    model              TEXT NOT NULL,
    served_model       TEXT,
    provider           TEXT,
    upstream_model     TEXT,
    attempts           TEXT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost_nanos         BIGINT NOT NULL,
    status             BIGINT NOT NULL,
    error_code         TEXT,
    finish_reason      TEXT,
    streamed           BIGINT NOT NULL,
    latency_ms         BIGINT NOT NULL,
    ttft_ms            BIGINT
);
CREATE INDEX usage_records_newest ON usage_records (created_at DESC, generation_id DESC);
CREATE INDEX usage_records_key_newest ON usage_records (key_id, created_at DESC, generation_id DESC);

CREATE TABLE usage_daily (
    day                BIGINT NOT NULL,
    key_id             TEXT NOT NULL,
    team               TEXT NOT NULL,
    model              TEXT NOT NULL,
    provider           TEXT NOT NULL,
    app                TEXT NOT NULL,
    requests           BIGINT NOT NULL,
    failed             BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost_nanos         BIGINT NOT NULL,
    latency_ms         BIGINT NOT NULL,
    PRIMARY KEY (day, key_id, team, model, provider, app)
) WITHOUT ROWID;
CREATE INDEX usage_daily_key ON usage_daily (key_id, day);

CREATE TABLE usage_daily_tags (
    day                BIGINT NOT NULL,
    tag                TEXT NOT NULL,
    key_id             TEXT NOT NULL,
    team               TEXT NOT NULL,
    model              TEXT NOT NULL,
    provider           TEXT NOT NULL,
    app                TEXT NOT NULL,
    requests           BIGINT NOT NULL,
    failed             BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost_nanos         BIGINT NOT NULL,
    latency_ms         BIGINT NOT NULL,
    PRIMARY KEY (day, tag, key_id, team, model, provider, app)
) WITHOUT ROWID;
CREATE INDEX usage_daily_tags_tag ON usage_daily_tags (tag, day);

CREATE TABLE usage_daily_users (
    day                BIGINT NOT NULL,
    end_user           TEXT NOT NULL,
    key_id             TEXT NOT NULL,
    team               TEXT NOT NULL,
    model              TEXT NOT NULL,
    provider           TEXT NOT NULL,
    app                TEXT NOT NULL,
    requests           BIGINT NOT NULL,
    failed             BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost_nanos         BIGINT NOT NULL,
    latency_ms         BIGINT NOT NULL,
    PRIMARY KEY (day, end_user, key_id, team, model, provider, app)
) WITHOUT ROWID;
CREATE INDEX usage_daily_users_user ON usage_daily_users (end_user, day);
CREATE INDEX usage_daily_users_key ON usage_daily_users (key_id, day);
