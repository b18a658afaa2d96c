-- Virtual key values inside documents may be stored encrypted; each row says which.
ALTER TABLE governance_entities ADD COLUMN encryption_status TEXT NOT NULL DEFAULT 'plaintext';
