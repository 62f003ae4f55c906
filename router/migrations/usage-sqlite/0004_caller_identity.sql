-- Who called with a token (docs/identity.md): the token's issuer and subject, never the token.
ALTER TABLE usage_records ADD COLUMN caller_issuer TEXT;
ALTER TABLE usage_records ADD COLUMN caller_subject TEXT;
