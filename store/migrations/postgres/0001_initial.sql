-- Providers, their keys, singleton settings documents and the config version counter.
CREATE TABLE providers (
    name        TEXT PRIMARY KEY,
    config_json TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE provider_keys (
    provider    TEXT NOT NULL REFERENCES providers(name) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT,
    value       TEXT NOT NULL,
    config_json TEXT NOT NULL,
    PRIMARY KEY (provider, position)
);
CREATE UNIQUE INDEX provider_keys_name ON provider_keys(provider, name) WHERE name IS NOT NULL;

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value_json TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
