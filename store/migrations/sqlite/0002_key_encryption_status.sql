-- Secrets may be stored encrypted; each key row says which.
ALTER TABLE provider_keys ADD COLUMN encryption_status TEXT NOT NULL DEFAULT 'plaintext';
