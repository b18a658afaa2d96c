-- Governance entities (budgets, rate limits, customers, teams, virtual keys, model configs,
-- provider governance, routing rules, pricing overrides, plugins) as typed JSON documents.
-- `lookup_hash` holds SHA-256 of a virtual key's value, so keys are found without decrypting.
CREATE TABLE governance_entities (
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    doc_json    TEXT NOT NULL,
    lookup_hash TEXT,
    updated_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (kind, id)
);
CREATE UNIQUE INDEX governance_entities_lookup ON governance_entities(kind, lookup_hash) WHERE lookup_hash IS NOT NULL;
