-- The record indexes without the generation id (docs/usage.md#indexes): it was 35 of each entry's
-- bytes, in seven B-trees written per record (the writer's largest cost, bench/notes.md). Each
-- index is still ordered newest first by `created_at`, so a filter walks only its own value's
-- records in time order and stops after a page; records of the same millisecond are put in
-- generation id order by an incremental sort of just that millisecond's few, never of the whole
-- filter. The generation id keeps its own unique index (the primary key), which finds a record by
-- id and keeps a retried insert from duplicating it.
DROP INDEX usage_records_newest;
CREATE INDEX usage_records_newest ON usage_records (created_at DESC);
DROP INDEX usage_records_key_newest;
CREATE INDEX usage_records_key_newest ON usage_records (key_id, created_at DESC, status);
DROP INDEX usage_records_model_newest;
CREATE INDEX usage_records_model_newest ON usage_records ((COALESCE(served_model, model)), created_at DESC, status);
DROP INDEX usage_records_team_newest;
CREATE INDEX usage_records_team_newest ON usage_records ((COALESCE(team, '')), created_at DESC, status);
DROP INDEX usage_records_provider_newest;
CREATE INDEX usage_records_provider_newest ON usage_records ((COALESCE(provider, '')), created_at DESC, status);
DROP INDEX usage_records_status_newest;
CREATE INDEX usage_records_status_newest ON usage_records (status, created_at DESC);
