-- A request's content, kept only when its ApiKey or ModelRoute sets `recordContent`
-- (docs/usage.md#privacy): the messages as JSON, and the answer.
ALTER TABLE usage_records ADD COLUMN input_content TEXT;
ALTER TABLE usage_records ADD COLUMN output_content TEXT;
