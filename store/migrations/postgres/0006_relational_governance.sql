-- One table per governance entity, with foreign keys, unique constraints and indexes for the
-- management API's filters. Each row keeps its whole document (`doc_json`) as the source the
-- gateway reads, and the columns and child rows other tables and SQL queries need are taken
-- from it on every write. Foreign keys are deferred to commit, so a transaction may write
-- entities in any order. Expand only: `governance_entities` stays, so nodes still on the
-- previous version keep running during a rolling upgrade; a later migration drops it.

CREATE TABLE budgets (
    id                TEXT PRIMARY KEY,
    max_limit         DOUBLE PRECISION,
    reset_duration    TEXT,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE rate_limits (
    id                TEXT PRIMARY KEY,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE customers (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    budget_id         TEXT REFERENCES budgets(id) DEFERRABLE INITIALLY DEFERRED,
    rate_limit_id     TEXT REFERENCES rate_limits(id) DEFERRABLE INITIALLY DEFERRED,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX customers_name ON customers(name);

CREATE TABLE teams (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    customer_id       TEXT REFERENCES customers(id) DEFERRABLE INITIALLY DEFERRED,
    budget_id         TEXT REFERENCES budgets(id) DEFERRABLE INITIALLY DEFERRED,
    rate_limit_id     TEXT REFERENCES rate_limits(id) DEFERRABLE INITIALLY DEFERRED,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX teams_customer ON teams(customer_id);
CREATE INDEX teams_name ON teams(name);

CREATE TABLE virtual_keys (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    team_id           TEXT REFERENCES teams(id) DEFERRABLE INITIALLY DEFERRED,
    customer_id       TEXT REFERENCES customers(id) DEFERRABLE INITIALLY DEFERRED,
    budget_id         TEXT REFERENCES budgets(id) DEFERRABLE INITIALLY DEFERRED,
    rate_limit_id     TEXT REFERENCES rate_limits(id) DEFERRABLE INITIALLY DEFERRED,
    lookup_hash       TEXT,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (team_id IS NULL OR customer_id IS NULL)
);
CREATE UNIQUE INDEX virtual_keys_lookup ON virtual_keys(lookup_hash) WHERE lookup_hash IS NOT NULL;
CREATE INDEX virtual_keys_team ON virtual_keys(team_id);
CREATE INDEX virtual_keys_customer ON virtual_keys(customer_id);
CREATE INDEX virtual_keys_name ON virtual_keys(name);

CREATE TABLE virtual_key_budgets (
    virtual_key_id   TEXT NOT NULL REFERENCES virtual_keys(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    position         INTEGER NOT NULL,
    max_limit        DOUBLE PRECISION,
    reset_duration   TEXT,
    calendar_aligned BOOLEAN,
    PRIMARY KEY (virtual_key_id, position)
);

CREATE TABLE virtual_key_provider_configs (
    virtual_key_id TEXT NOT NULL REFERENCES virtual_keys(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    position       INTEGER NOT NULL,
    provider       TEXT NOT NULL,
    weight         DOUBLE PRECISION,
    budget_id      TEXT REFERENCES budgets(id) DEFERRABLE INITIALLY DEFERRED,
    rate_limit_id  TEXT REFERENCES rate_limits(id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (virtual_key_id, position)
);
CREATE INDEX virtual_key_provider_configs_provider ON virtual_key_provider_configs(provider);

CREATE TABLE virtual_key_key_pins (
    virtual_key_id TEXT NOT NULL REFERENCES virtual_keys(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    provider       TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    PRIMARY KEY (virtual_key_id, provider, key_id)
);

CREATE TABLE model_configs (
    id                TEXT PRIMARY KEY,
    model_name        TEXT NOT NULL,
    provider          TEXT,
    budget_id         TEXT REFERENCES budgets(id) DEFERRABLE INITIALLY DEFERRED,
    rate_limit_id     TEXT REFERENCES rate_limits(id) DEFERRABLE INITIALLY DEFERRED,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX model_configs_model ON model_configs(model_name);

CREATE TABLE provider_governance (
    id                TEXT PRIMARY KEY,
    budget_id         TEXT REFERENCES budgets(id) DEFERRABLE INITIALLY DEFERRED,
    rate_limit_id     TEXT REFERENCES rate_limits(id) DEFERRABLE INITIALLY DEFERRED,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE routing_rules (
    id                TEXT PRIMARY KEY,
    name              TEXT,
    scope             TEXT,
    scope_id          TEXT,
    priority          BIGINT,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX routing_rules_scope ON routing_rules(scope, scope_id);

CREATE TABLE routing_rule_targets (
    rule_id  TEXT NOT NULL REFERENCES routing_rules(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    position INTEGER NOT NULL,
    provider TEXT,
    model    TEXT,
    key_id   TEXT,
    weight   DOUBLE PRECISION,
    PRIMARY KEY (rule_id, position)
);

CREATE TABLE pricing_overrides (
    id                TEXT PRIMARY KEY,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE model_prices (
    id                TEXT PRIMARY KEY,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE plugins (
    id                TEXT PRIMARY KEY,
    doc_json          TEXT NOT NULL,
    encryption_status TEXT NOT NULL DEFAULT 'plaintext',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Copy every document row into its table, and derive the child rows.
INSERT INTO budgets (id, max_limit, reset_duration, doc_json, encryption_status)
    SELECT id, (doc_json::jsonb ->> 'max_limit')::double precision, doc_json::jsonb ->> 'reset_duration', doc_json, encryption_status
    FROM governance_entities WHERE kind = 'budget';
INSERT INTO rate_limits (id, doc_json, encryption_status)
    SELECT id, doc_json, encryption_status FROM governance_entities WHERE kind = 'rate_limit';
INSERT INTO customers (id, name, budget_id, rate_limit_id, doc_json, encryption_status)
    SELECT id, coalesce(doc_json::jsonb ->> 'name', id), doc_json::jsonb ->> 'budget_id',
           doc_json::jsonb ->> 'rate_limit_id', doc_json, encryption_status
    FROM governance_entities WHERE kind = 'customer';
INSERT INTO teams (id, name, customer_id, budget_id, rate_limit_id, doc_json, encryption_status)
    SELECT id, coalesce(doc_json::jsonb ->> 'name', id), doc_json::jsonb ->> 'customer_id',
           doc_json::jsonb ->> 'budget_id', doc_json::jsonb ->> 'rate_limit_id', doc_json, encryption_status
    FROM governance_entities WHERE kind = 'team';
INSERT INTO virtual_keys (id, name, team_id, customer_id, budget_id, rate_limit_id, lookup_hash, doc_json, encryption_status)
    SELECT id, coalesce(doc_json::jsonb ->> 'name', id), doc_json::jsonb ->> 'team_id',
           doc_json::jsonb ->> 'customer_id', doc_json::jsonb ->> 'budget_id',
           doc_json::jsonb ->> 'rate_limit_id', lookup_hash, doc_json, encryption_status
    FROM governance_entities WHERE kind = 'virtual_key';
INSERT INTO virtual_key_budgets (virtual_key_id, position, max_limit, reset_duration, calendar_aligned)
    SELECT e.id, (b.ord - 1)::integer, (b.value ->> 'max_limit')::double precision, b.value ->> 'reset_duration',
           (b.value ->> 'calendar_aligned')::boolean
    FROM governance_entities e,
         jsonb_array_elements(coalesce(e.doc_json::jsonb -> 'budgets', '[]'::jsonb)) WITH ORDINALITY AS b(value, ord)
    WHERE e.kind = 'virtual_key';
INSERT INTO virtual_key_provider_configs (virtual_key_id, position, provider, weight, budget_id, rate_limit_id)
    SELECT e.id, (p.ord - 1)::integer, p.value ->> 'provider', (p.value ->> 'weight')::double precision,
           p.value ->> 'budget_id', p.value ->> 'rate_limit_id'
    FROM governance_entities e,
         jsonb_array_elements(coalesce(e.doc_json::jsonb -> 'provider_configs', '[]'::jsonb)) WITH ORDINALITY AS p(value, ord)
    WHERE e.kind = 'virtual_key';
INSERT INTO virtual_key_key_pins (virtual_key_id, provider, key_id)
    SELECT e.id, p.value ->> 'provider', k.value
    FROM governance_entities e,
         jsonb_array_elements(coalesce(e.doc_json::jsonb -> 'provider_configs', '[]'::jsonb)) AS p(value),
         jsonb_array_elements_text(coalesce(p.value -> 'key_ids', '[]'::jsonb)) AS k(value)
    WHERE e.kind = 'virtual_key'
    ON CONFLICT DO NOTHING;
INSERT INTO model_configs (id, model_name, provider, budget_id, rate_limit_id, doc_json, encryption_status)
    SELECT id, coalesce(doc_json::jsonb ->> 'model_name', ''), doc_json::jsonb ->> 'provider',
           doc_json::jsonb ->> 'budget_id', doc_json::jsonb ->> 'rate_limit_id', doc_json, encryption_status
    FROM governance_entities WHERE kind = 'model_config';
INSERT INTO provider_governance (id, budget_id, rate_limit_id, doc_json, encryption_status)
    SELECT id, doc_json::jsonb ->> 'budget_id', doc_json::jsonb ->> 'rate_limit_id', doc_json, encryption_status
    FROM governance_entities WHERE kind = 'provider_governance';
INSERT INTO routing_rules (id, name, scope, scope_id, priority, doc_json, encryption_status)
    SELECT id, doc_json::jsonb ->> 'name', doc_json::jsonb ->> 'scope', doc_json::jsonb ->> 'scope_id',
           (doc_json::jsonb ->> 'priority')::bigint, doc_json, encryption_status
    FROM governance_entities WHERE kind = 'routing_rule';
INSERT INTO routing_rule_targets (rule_id, position, provider, model, key_id, weight)
    SELECT e.id, (t.ord - 1)::integer, t.value ->> 'provider', t.value ->> 'model', t.value ->> 'key_id',
           (t.value ->> 'weight')::double precision
    FROM governance_entities e,
         jsonb_array_elements(coalesce(e.doc_json::jsonb -> 'targets', '[]'::jsonb)) WITH ORDINALITY AS t(value, ord)
    WHERE e.kind = 'routing_rule';
INSERT INTO pricing_overrides (id, provider, model, doc_json, encryption_status)
    SELECT id, coalesce(doc_json::jsonb ->> 'provider', ''), coalesce(doc_json::jsonb ->> 'model', ''), doc_json, encryption_status
    FROM governance_entities WHERE kind = 'pricing_override';
INSERT INTO model_prices (id, provider, model, doc_json, encryption_status)
    SELECT id, coalesce(doc_json::jsonb ->> 'provider', ''), coalesce(doc_json::jsonb ->> 'model', ''), doc_json, encryption_status
    FROM governance_entities WHERE kind = 'model_price';
INSERT INTO plugins (id, doc_json, encryption_status)
    SELECT id, doc_json, encryption_status FROM governance_entities WHERE kind = 'plugin';
