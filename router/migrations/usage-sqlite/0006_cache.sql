-- Answered from the response cache (docs/caching.md): how (exact or semantic), and what the
-- answer cost when it was made (cost_nanos is 0 on a hit).
ALTER TABLE usage_records ADD COLUMN cache_hit TEXT;
ALTER TABLE usage_records ADD COLUMN cache_saved_nanos BIGINT NOT NULL DEFAULT 0;
