-- Why an upstream's usage report was not billed as reported (`<field> <kind>`, docs/budgets.md),
-- when it was not; shown by the generation API like the in-memory record.
ALTER TABLE usage_records ADD COLUMN usage_anomaly TEXT;
