-- The audit trail: who changed which entity, when, how, and a hash of the new document (never
-- the document itself, so no secret is kept here). Append-only.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at_unix     BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    entity_id   TEXT,
    action      TEXT NOT NULL,
    doc_sha256  TEXT
);
CREATE INDEX audit_log_entity ON audit_log(kind, entity_id);
