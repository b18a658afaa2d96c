//! One suite, two backends: the same ConfigStore tests against SQLite and PostgreSQL.
//!
//! PostgreSQL runs when `ASBRU_TEST_POSTGRES_URL` is set (each test gets its own database);
//! with `ASBRU_REQUIRE_POSTGRES=1` a missing or unreachable server fails instead of skipping.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use asbru_config::model::{KeyConfig, ProviderConfig};
use asbru_store::backend::postgres::PostgresStore;
use asbru_store::backend::sqlite::SqliteStore;
use asbru_store::backend::{ConfigStore, StoreError, latest_version};
use asbru_store::secrets::Cipher;
use r2d2_postgres::postgres;
use serde_json::json;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn sqlite_path() -> PathBuf {
    std::env::temp_dir()
        .join(unique("asbru_store"))
        .join("nested")
        .join("config.db")
}

/// A fresh PostgreSQL database URL, or `None` when PostgreSQL tests are not enabled.
fn postgres_url() -> Option<String> {
    let required = std::env::var("ASBRU_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let Ok(base) = std::env::var("ASBRU_TEST_POSTGRES_URL") else {
        assert!(
            !required,
            "ASBRU_REQUIRE_POSTGRES=1 but ASBRU_TEST_POSTGRES_URL is not set"
        );
        eprintln!("PostgreSQL store tests skipped: set ASBRU_TEST_POSTGRES_URL to run them");
        return None;
    };
    match asbru_store::backend::postgres::scratch_database(&base, &unique("asbru_test")) {
        Ok(url) => Some(url),
        Err(e) => {
            assert!(!required, "PostgreSQL at ASBRU_TEST_POSTGRES_URL is unusable: {e}");
            eprintln!("PostgreSQL store tests skipped: {e}");
            None
        }
    }
}

/// Opens a store of one backend, migrated up to the given schema version.
type Opener = Box<dyn Fn(u32) -> Result<Box<dyn ConfigStore>, StoreError>>;

fn backends() -> Vec<(&'static str, Opener)> {
    backends_sealed_with(None)
}

/// The backends, sealing secrets with the cipher derived from `key` (when given).
fn backends_sealed_with(key: Option<&str>) -> Vec<(&'static str, Opener)> {
    let cipher = key.map(|k| Arc::new(Cipher::derive(k).expect("derive")));
    let path = sqlite_path();
    let sqlite_cipher = cipher.clone();
    let mut out: Vec<(&'static str, Opener)> = vec![(
        "sqlite",
        Box::new(move |v| {
            SqliteStore::open_at(&path, v)
                .map(|s| Box::new(s.with_cipher(sqlite_cipher.clone())) as Box<dyn ConfigStore>)
        }),
    )];
    if let Some(url) = postgres_url() {
        out.push((
            "postgres",
            Box::new(move |v| {
                PostgresStore::open_at(&url, 4, 1, v)
                    .map(|s| Box::new(s.with_cipher(cipher.clone())) as Box<dyn ConfigStore>)
            }),
        ));
    }
    out
}

fn provider(keys: &[(&str, &str)]) -> ProviderConfig {
    ProviderConfig {
        keys: keys
            .iter()
            .map(|(name, value)| KeyConfig {
                name: Some(name.to_string()),
                value: value.to_string(),
                models: Some(vec!["*".into()]),
                weight: Some(2.0),
                ..KeyConfig::default()
            })
            .collect(),
        ..ProviderConfig::default()
    }
}

#[test]
fn crud_round_trips() {
    for (backend, open) in backends() {
        let store = open(latest_version()).expect("open");
        assert_eq!(store.schema_version().expect("schema"), latest_version(), "{backend}");
        store.ping().expect("ping");
        let mut openai = provider(&[("primary", "env.OPENAI_API_KEY"), ("backup", "sk-literal")]);
        openai.network_config.base_url = Some("http://127.0.0.1:9000".into());
        openai.network_config.max_retries = Some(2);
        store.put_provider("openai", &openai).expect("put");
        store.put_provider("groq", &provider(&[("g", "sk-g")])).expect("put");
        let got = store.provider("openai").expect("get").expect("present");
        assert_eq!(got.keys.len(), 2, "{backend}");
        assert_eq!(
            got.keys[0].value, "env.OPENAI_API_KEY",
            "env references are stored as references"
        );
        assert_eq!(got.keys[1].name.as_deref(), Some("backup"));
        assert_eq!(got.keys[1].weight, Some(2.0));
        assert_eq!(got.network_config.max_retries, Some(2));
        assert_eq!(
            store.providers().expect("list").keys().collect::<Vec<_>>(),
            ["groq", "openai"]
        );

        // Replace: keys are replaced, not appended.
        store
            .put_provider("openai", &provider(&[("only", "sk-new")]))
            .expect("replace");
        assert_eq!(store.provider("openai").expect("get").expect("present").keys.len(), 1);

        assert!(store.delete_provider("groq").expect("delete"));
        assert!(!store.delete_provider("groq").expect("delete again"));
        assert!(store.provider("groq").expect("get").is_none());

        store
            .put_setting("client", &json!({"enable_logging": true}))
            .expect("setting");
        assert_eq!(
            store.setting("client").expect("get"),
            Some(json!({"enable_logging": true}))
        );
        assert_eq!(store.setting("absent").expect("get"), None);
    }
}

#[test]
fn duplicate_key_names_are_a_conflict() {
    for (backend, open) in backends() {
        let store = open(latest_version()).expect("open");
        let err = store
            .put_provider("openai", &provider(&[("same", "a"), ("same", "b")]))
            .expect_err("duplicate key name");
        assert!(matches!(err, StoreError::Conflict(_)), "{backend}: {err:?}");
        assert!(
            store.provider("openai").expect("get").is_none(),
            "{backend}: nothing half-written"
        );
    }
}

#[test]
fn transactions_commit_or_roll_back_whole() {
    for (backend, open) in backends() {
        let store = open(latest_version()).expect("open");
        let v0 = store.config_version().expect("version");
        store
            .transaction(&mut |tx| {
                tx.put_provider("a", &provider(&[("k", "1")]))?;
                tx.put_provider("b", &provider(&[("k", "2")]))?;
                tx.put_setting("client", &json!({"x": 1}))
            })
            .expect("commit");
        assert_eq!(
            store.config_version().expect("version"),
            v0 + 1,
            "{backend}: one bump per transaction"
        );

        let err = store
            .transaction(&mut |tx| {
                tx.put_provider("c", &provider(&[("k", "3")]))?;
                tx.delete_provider("a")?;
                Err(StoreError::Conflict("stop".into()))
            })
            .expect_err("error rolls back");
        assert!(matches!(err, StoreError::Conflict(_)));
        let err = store
            .transaction(&mut |tx| {
                tx.put_provider("d", &provider(&[("k", "4")]))?;
                tx.delete_provider("b")?;
                panic!("boom in the middle");
            })
            .expect_err("panic rolls back");
        assert!(
            matches!(err, StoreError::Panicked(ref m) if m.contains("boom")),
            "{backend}: {err:?}"
        );
        let names: Vec<String> = store.providers().expect("list").into_keys().collect();
        assert_eq!(names, ["a", "b"], "{backend}: neither failed transaction left a trace");
        assert_eq!(
            store.config_version().expect("version"),
            v0 + 1,
            "{backend}: failed transactions do not bump"
        );

        // Reads do not bump the version either.
        store.providers().expect("read");
        assert_eq!(store.config_version().expect("version"), v0 + 1);
    }
}

/// Rows as the version-1 schema holds them, written the way a version-1 binary would.
const V1_ROWS: [&str; 2] = [
    "INSERT INTO providers (name, config_json) VALUES ('openai', '{\"keys\":[]}')",
    "INSERT INTO provider_keys (provider, position, name, value, config_json) VALUES ('openai', 0, 'kept', 'sk-kept', '{\"name\":\"kept\",\"value\":\"\"}')",
];

fn check_upgraded(backend: &str, upgraded: &dyn ConfigStore) {
    assert_eq!(
        upgraded.schema_version().expect("schema"),
        latest_version(),
        "{backend}"
    );
    let kept = upgraded.provider("openai").expect("get").expect("data kept");
    assert_eq!(kept.keys[0].value, "sk-kept", "{backend}");
    assert_eq!(kept.keys[0].name.as_deref(), Some("kept"), "{backend}");
    // The new columns exist and writes work.
    upgraded
        .put_provider("groq", &provider(&[("g", "1")]))
        .expect("write at latest");
}

#[test]
fn an_existing_database_is_upgraded_with_its_data() {
    let path = sqlite_path();
    {
        let old = SqliteStore::open_at(&path, 1).expect("open at version 1");
        assert_eq!((&old as &dyn ConfigStore).schema_version().expect("schema"), 1);
        let conn = r2d2_sqlite::rusqlite::Connection::open(&path).expect("raw open");
        for sql in V1_ROWS {
            conn.execute(sql, []).expect("v1 row");
        }
    }
    check_upgraded("sqlite", &SqliteStore::open(&path).expect("upgrade"));
    if let Some(url) = postgres_url() {
        PostgresStore::open_at(&url, 2, 1, 1).expect("open at version 1");
        let mut raw = postgres::Client::connect(&url, postgres::NoTls).expect("raw connect");
        for sql in V1_ROWS {
            raw.execute(sql, &[]).expect("v1 row");
        }
        check_upgraded("postgres", &PostgresStore::open(&url, 2, 1).expect("upgrade"));
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let path = sqlite_path();
    SqliteStore::open(&path).expect("create");
    {
        let conn = r2d2_sqlite::rusqlite::Connection::open(&path).expect("raw open");
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')",
            [],
        )
        .expect("insert");
    }
    match SqliteStore::open(&path) {
        Err(StoreError::SchemaTooNew { found: 999, known }) => assert_eq!(known, latest_version()),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
    if let Some(url) = postgres_url() {
        PostgresStore::open(&url, 2, 1).expect("create");
        let mut raw = postgres::Client::connect(&url, postgres::NoTls).expect("raw connect");
        raw.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')",
            &[],
        )
        .expect("insert");
        assert!(matches!(
            PostgresStore::open(&url, 2, 1),
            Err(StoreError::SchemaTooNew { found: 999, .. })
        ));
    }
}

#[test]
fn concurrent_writers_lose_nothing() {
    for (backend, open) in backends() {
        let store: Arc<dyn ConfigStore> = Arc::from(open(latest_version()).expect("open"));
        let v0 = store.config_version().expect("version");
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        store
                            .put_provider(&format!("p{w}-{i}"), &provider(&[("k", "v")]))
                            .expect("write");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer");
        }
        assert_eq!(store.providers().expect("list").len(), 100, "{backend}");
        assert_eq!(store.config_version().expect("version"), v0 + 100, "{backend}");
    }
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let path = sqlite_path();
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(
        &path,
        b"this is not a sqlite database, it is plain text padded to be long enough....",
    )
    .expect("write");
    let err = SqliteStore::open(&path).err().expect("refused");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("not a usable SQLite database"), "{err}");
}

fn round_trip<T>(store: &dyn ConfigStore, backend: &str, entity: T, id: &str)
where
    T: asbru_store::backend::entities::Entity + PartialEq + std::fmt::Debug + Clone,
{
    store.put(&entity).expect("put");
    assert_eq!(
        store.get::<T>(id).expect("get"),
        Some(entity.clone()),
        "{backend}: {id}"
    );
    assert_eq!(store.list::<T>().expect("list"), vec![entity], "{backend}: {id}");
    assert!(store.delete::<T>(id).expect("delete"), "{backend}: {id}");
    assert_eq!(store.get::<T>(id).expect("get"), None, "{backend}: {id}");
    assert!(!store.delete::<T>(id).expect("delete again"));
}

#[test]
fn every_governance_entity_round_trips() {
    use asbru_config::governance::*;
    use asbru_store::backend::entities::Plugin;
    for (backend, open) in backends() {
        let store = open(latest_version()).expect("open");
        let store = store.as_ref();
        let budget = Budget {
            id: Some("b1".into()),
            max_limit: 50.0,
            reset_duration: "1M".into(),
            current_usage: Some(12.5),
            ..Budget::default()
        };
        round_trip(store, backend, budget.clone(), "b1");
        round_trip(
            store,
            backend,
            RateLimit {
                id: Some("rl".into()),
                token_max_limit: Some(1000),
                token_reset_duration: Some("1h".into()),
                token_current_usage: Some(10),
                ..RateLimit::default()
            },
            "rl",
        );
        round_trip(
            store,
            backend,
            Customer {
                id: "c".into(),
                name: "Acme".into(),
                budgets: vec![budget.clone()],
                ..Customer::default()
            },
            "c",
        );
        // The database refuses references to missing rows: the team's customer must exist.
        store
            .put(&Customer {
                id: "c".into(),
                name: "Acme".into(),
                ..Customer::default()
            })
            .expect("customer");
        round_trip(
            store,
            backend,
            Team {
                id: "t".into(),
                name: "ML".into(),
                customer_id: Some("c".into()),
                ..Team::default()
            },
            "t",
        );
        round_trip(
            store,
            backend,
            ModelConfig {
                id: "m".into(),
                model_name: "gpt-4o".into(),
                ..ModelConfig::default()
            },
            "m",
        );
        store.put(&budget).expect("the budget it names");
        round_trip(
            store,
            backend,
            ProviderGovernance {
                name: "openai".into(),
                budget_id: Some("b1".into()),
                ..ProviderGovernance::default()
            },
            "openai",
        );
        round_trip(
            store,
            backend,
            RoutingRule {
                id: "r".into(),
                name: "R".into(),
                cel_expression: "true".into(),
                targets: vec![RoutingTarget {
                    provider: Some("groq".into()),
                    weight: Some(1.0),
                    ..RoutingTarget::default()
                }],
                ..RoutingRule::default()
            },
            "r",
        );
        round_trip(
            store,
            backend,
            PricingOverride {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                input_cost_per_token: Some(2.5e-6),
                ..PricingOverride::default()
            },
            "openai/gpt-4o",
        );
        round_trip(
            store,
            backend,
            Plugin {
                name: "semantic_cache".into(),
                enabled: true,
                config: json!({"ttl": "5m"}),
                ..Plugin::default()
            },
            "semantic_cache",
        );
        round_trip(
            store,
            backend,
            ModelPrice {
                provider: "anthropic".into(),
                model: "claude-sonnet-4".into(),
                input_cost_per_token: Some(3e-6),
                output_cost_per_token: Some(1.5e-5),
                cache_read_input_token_cost: Some(3e-7),
                cache_creation_input_token_cost: Some(3.75e-6),
                ..ModelPrice::default()
            },
            "anthropic/claude-sonnet-4",
        );
        let vk = VirtualKey {
            id: "vk1".into(),
            name: "Prod".into(),
            value: "sk-bf-secret-1".into(),
            provider_configs: vec![VirtualKeyProvider {
                provider: "openai".into(),
                weight: None,
                allowed_models: Some(vec!["*".into()]),
                ..VirtualKeyProvider::default()
            }],
            ..VirtualKey::default()
        };
        round_trip(store, backend, vk.clone(), "vk1");
    }
}

#[test]
fn virtual_keys_are_found_by_value_hash_and_values_are_unique() {
    use asbru_config::governance::VirtualKey;
    for (backend, open) in backends() {
        let store = open(latest_version()).expect("open");
        let store = store.as_ref();
        let vk = |id: &str, value: &str| VirtualKey {
            id: id.into(),
            name: id.into(),
            value: value.into(),
            ..VirtualKey::default()
        };
        store.put(&vk("a", "sk-bf-aaa")).expect("put");
        store.put(&vk("b", "sk-bf-bbb")).expect("put");
        assert_eq!(
            store.virtual_key_by_value("sk-bf-bbb").expect("lookup").map(|v| v.id),
            Some("b".into())
        );
        assert_eq!(
            store.virtual_key_by_value("sk-bf-zzz").expect("lookup"),
            None,
            "{backend}"
        );
        let err = store.put(&vk("c", "sk-bf-aaa")).expect_err("duplicate value");
        assert!(matches!(err, StoreError::Conflict(_)), "{backend}: {err:?}");
        // Changing a key's value moves its lookup.
        store.put(&vk("a", "sk-bf-new")).expect("update");
        assert_eq!(store.virtual_key_by_value("sk-bf-aaa").expect("lookup"), None);
        assert_eq!(
            store.virtual_key_by_value("sk-bf-new").expect("lookup").map(|v| v.id),
            Some("a".into())
        );
        let budgetless = asbru_config::governance::Budget::default();
        assert!(
            matches!(store.put(&budgetless), Err(StoreError::Conflict(_))),
            "an entity needs an id"
        );
    }
}

/// Raw column values, read around the store, to prove what is on disk.
fn raw_sqlite_values(path: &std::path::Path) -> Vec<String> {
    let conn = r2d2_sqlite::rusqlite::Connection::open(path).expect("raw open");
    let mut stmt = conn
        .prepare(
            "SELECT value FROM provider_keys UNION ALL SELECT doc_json FROM virtual_keys \
             UNION ALL SELECT doc_json FROM governance_entities",
        )
        .expect("prepare");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn literal_secrets_are_encrypted_at_rest() {
    use asbru_config::governance::VirtualKey;
    let path = sqlite_path();
    let sealed = |key: Option<&str>| {
        let cipher = key.map(|k| Arc::new(Cipher::derive(k).expect("derive")));
        SqliteStore::open(&path).expect("open").with_cipher(cipher)
    };
    {
        let store: Box<dyn ConfigStore> = Box::new(sealed(Some("master-key")));
        store
            .put_provider(
                "openai",
                &provider(&[("lit", "sk-literal-secret"), ("ref", "env.OPENAI_API_KEY")]),
            )
            .expect("put");
        store
            .put(&VirtualKey {
                id: "vk".into(),
                name: "vk".into(),
                value: "sk-bf-virtual-secret".into(),
                ..VirtualKey::default()
            })
            .expect("put vk");
    }
    let raw = raw_sqlite_values(&path).join("\n");
    assert!(
        !raw.contains("sk-literal-secret"),
        "provider key stored in clear: {raw}"
    );
    assert!(
        !raw.contains("sk-bf-virtual-secret"),
        "virtual key stored in clear: {raw}"
    );
    assert!(raw.contains("env.OPENAI_API_KEY"), "references stay readable");

    let store: Box<dyn ConfigStore> = Box::new(sealed(Some("master-key")));
    let keys = store.provider("openai").expect("get").expect("present").keys;
    assert_eq!(keys[0].value, "sk-literal-secret");
    assert_eq!(keys[1].value, "env.OPENAI_API_KEY");
    let vk = store
        .virtual_key_by_value("sk-bf-virtual-secret")
        .expect("lookup")
        .expect("found");
    assert_eq!(vk.value, "sk-bf-virtual-secret");

    let wrong: Box<dyn ConfigStore> = Box::new(sealed(Some("another-key")));
    assert!(
        matches!(wrong.provider("openai"), Err(StoreError::Corrupt(_))),
        "wrong key is refused"
    );
    let none: Box<dyn ConfigStore> = Box::new(sealed(None));
    let err = none.provider("openai").expect_err("no key");
    assert!(err.to_string().contains("no encryption_key"), "{err}");

    // The same behaviour on PostgreSQL.
    for (backend, open) in backends_sealed_with(Some("master-key")) {
        let store = open(latest_version()).expect("open");
        store
            .put_provider("p", &provider(&[("k", "sk-pg-secret")]))
            .expect("put");
        assert_eq!(
            store.provider("p").expect("get").expect("present").keys[0].value,
            "sk-pg-secret",
            "{backend}"
        );
    }
}

#[test]
fn a_second_writer_moves_the_version_the_first_sees() {
    for (backend, open) in backends() {
        let reader = open(latest_version()).expect("open reader");
        let writer = open(latest_version()).expect("open writer");
        let before = reader.config_version().expect("version");
        writer.put_provider("x", &provider(&[("k", "v")])).expect("write");
        assert_eq!(reader.config_version().expect("version"), before + 1, "{backend}");
        assert!(
            reader.provider("x").expect("read").is_some(),
            "{backend}: the write is visible"
        );
    }
}

#[test]
fn an_unreachable_postgres_is_a_clear_error() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let url = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=2",
        dead.port()
    );
    let started = std::time::Instant::now();
    let err = PostgresStore::open(&url, 2, 1).err().expect("refused");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("cannot connect to PostgreSQL"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "bounded");
}

#[test]
fn postgres_notifies_other_nodes_of_a_write() {
    let Some(url) = postgres_url() else {
        return;
    };
    let listener: Arc<dyn ConfigStore> = Arc::new(PostgresStore::open(&url, 2, 1).expect("open"));
    let writer = PostgresStore::open(&url, 2, 1).expect("open");
    // The first wait opens the LISTEN connection; nothing has been written, so it times out.
    listener.wait_for_change(std::time::Duration::from_millis(50));
    let waiting = {
        let listener = listener.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            listener.wait_for_change(std::time::Duration::from_secs(20));
            started.elapsed()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    (&writer as &dyn ConfigStore)
        .put_provider("p", &provider(&[("k", "v")]))
        .expect("write");
    let waited = waiting.join().expect("waiter");
    assert!(
        waited < std::time::Duration::from_secs(10),
        "the NOTIFY did not wake the listener ({waited:?})"
    );
}

#[test]
fn postgres_connections_lost_under_the_store_are_replaced() {
    let Some(url) = postgres_url() else {
        return;
    };
    let store: Box<dyn ConfigStore> = Box::new(PostgresStore::open(&url, 3, 2).expect("open"));
    store.put_provider("before", &provider(&[("k", "v")])).expect("write");
    // Kill every connection the store holds, as a server restart or a network cut would.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("admin");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .expect("terminate");
    // The pool validates connections on checkout, drops the dead ones and opens new ones.
    let mut recovered = false;
    for _ in 0..3 {
        if store.put_provider("after", &provider(&[("k", "v")])).is_ok() {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the store did not reconnect");
    assert_eq!(store.providers().expect("read").len(), 2);
}

#[test]
fn governance_usage_round_trips_without_touching_the_config_version() {
    use asbru_config::usage::UsageRecord;
    for (backend, open) in backends() {
        let store = open(latest_version()).expect("open");
        assert!(store.load_usage().expect("empty").is_empty(), "{backend}");
        let version = store.config_version().expect("version");
        let record = |id: &str, value: i64| UsageRecord {
            counter_id: id.to_string(),
            unit: "usd_micros".to_string(),
            value,
            window_start: 1_800_000_000,
            window_end: 0,
        };
        store
            .save_usage(&[record("budget:a", 10), record("vk:v:budget:0", 20)])
            .expect("save");
        store.save_usage(&[record("budget:a", 15)]).expect("update");
        let loaded = store.load_usage().expect("load");
        assert_eq!(
            loaded,
            vec![record("budget:a", 15), record("vk:v:budget:0", 20)],
            "{backend}"
        );
        assert_eq!(
            store.config_version().expect("version"),
            version,
            "{backend}: usage is not config"
        );
    }
}

#[test]
fn spend_segments_add_once_and_add_up_across_writers() {
    use asbru_config::usage::{SpendEntry, SpendKind};
    for (backend, open) in backends() {
        let store = open(latest_version()).expect("open");
        let entry = |id: &str, window_start: i64, kind: SpendKind| SpendEntry {
            counter_id: id.to_string(),
            unit: "usd_micros".to_string(),
            window_start,
            window_end: window_start + 100,
            kind,
        };
        let a = [
            entry("budget:a", 100, SpendKind::Add(10)),
            entry("budget:a", 100, SpendKind::Add(5)),
            entry("rate:r", 100, SpendKind::Add(1)),
        ];
        assert!(store.apply_spend("p1-t-000000000000", &a).expect("apply"), "{backend}");
        assert!(
            !store.apply_spend("p1-t-000000000000", &a).expect("again"),
            "{backend}: a segment applied twice counts once"
        );
        // Another process's segment adds to the same meter.
        let b = [entry("budget:a", 100, SpendKind::Add(7))];
        assert!(store.apply_spend("p2-t-000000000000", &b).expect("apply b"));
        let value = |store: &dyn ConfigStore, id: &str| {
            store
                .load_usage()
                .expect("load")
                .into_iter()
                .find(|r| r.counter_id == id)
                .map(|r| (r.value, r.window_start))
        };
        assert_eq!(value(store.as_ref(), "budget:a"), Some((22, 100)), "{backend}");
        assert_eq!(value(store.as_ref(), "rate:r"), Some((1, 100)));
        // A reset, then spend in the same segment; a late entry for the ended window is ignored.
        let c = [
            entry("budget:a", 100, SpendKind::Set(0)),
            entry("budget:a", 100, SpendKind::Add(3)),
            entry("budget:a", 200, SpendKind::Add(4)),
            entry("budget:a", 100, SpendKind::Add(1000)),
        ];
        assert!(store.apply_spend("p1-t-000000000001", &c).expect("apply c"));
        assert_eq!(value(store.as_ref(), "budget:a"), Some((4, 200)), "{backend}");
    }
}

const V5_ROWS: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "budget",
        "b",
        r#"{"id":"b","max_limit":100.0,"reset_duration":"1M"}"#,
        None,
    ),
    ("customer", "c", r#"{"id":"c","name":"Acme","budgets":[]}"#, None),
    (
        "team",
        "t",
        r#"{"id":"t","name":"ML","customer_id":"c","budget_id":"b"}"#,
        None,
    ),
    (
        "virtual_key",
        "v",
        r#"{"id":"v","name":"app","value":"sk-bf-migrated","team_id":"t","budgets":[{"max_limit":10.0,"reset_duration":"1d"},{"max_limit":50.0,"reset_duration":"1w","calendar_aligned":true}],"provider_configs":[{"provider":"openai","weight":1.0,"key_ids":["k1","k1","k2"]}]}"#,
        Some("hash-of-sk-bf-migrated"),
    ),
    (
        "routing_rule",
        "r",
        r#"{"id":"r","name":"cheap","cel_expression":"true","targets":[{"provider":"groq","model":"llama","weight":1.0}],"priority":3}"#,
        None,
    ),
    ("plugin", "p", r#"{"name":"p","enabled":true,"config":null}"#, None),
];

/// What the relational tables must show after migration 6, on either backend.
fn check_migrated(store: &dyn ConfigStore, join: &mut dyn FnMut(&str) -> Vec<(String, f64)>, backend: &str) {
    use asbru_config::governance::{RoutingRule, Team, VirtualKey};
    let keys = store.list::<VirtualKey>().expect("list");
    assert_eq!(keys.len(), 1, "{backend}");
    assert_eq!(keys[0].team_id.as_deref(), Some("t"));
    assert_eq!(keys[0].provider_configs[0].key_ids, vec!["k1", "k1", "k2"]);
    assert_eq!(
        store.list::<Team>().expect("teams")[0].customer_id.as_deref(),
        Some("c")
    );
    assert_eq!(
        store.get::<RoutingRule>("r").expect("rule").map(|r| r.priority),
        Some(Some(3))
    );
    // One join answers "which virtual keys belong to team ML, and what are their budgets".
    let rows = join(
        "SELECT vk.name, b.max_limit FROM teams t JOIN virtual_keys vk ON vk.team_id = t.id \
         JOIN virtual_key_budgets b ON b.virtual_key_id = vk.id WHERE t.name = 'ML' ORDER BY b.position",
    );
    assert_eq!(
        rows,
        vec![("app".to_string(), 10.0), ("app".to_string(), 50.0)],
        "{backend}"
    );
    // The database itself refuses a virtual key whose team does not exist.
    let dangling = VirtualKey {
        id: "w".into(),
        name: "w".into(),
        value: "sk-bf-dangling".into(),
        team_id: Some("ghost".into()),
        ..VirtualKey::default()
    };
    assert!(
        matches!(store.put(&dangling), Err(StoreError::Conflict(_))),
        "{backend}: a dangling team_id was accepted"
    );
    // Rewriting a key rewrites its child rows; deleting it removes them.
    let mut key = keys[0].clone();
    key.budgets.truncate(1);
    store.put(&key).expect("rewrite");
    assert_eq!(
        join("SELECT vk.name, b.max_limit FROM virtual_keys vk JOIN virtual_key_budgets b ON b.virtual_key_id = vk.id")
            .len(),
        1
    );
    assert!(store.delete::<VirtualKey>("v").expect("delete"));
    assert!(
        join("SELECT virtual_key_id, position * 1.0 FROM virtual_key_budgets").is_empty(),
        "{backend}"
    );
}

#[test]
fn migration_6_moves_documents_into_relational_tables() {
    use r2d2_sqlite::rusqlite;
    let path = sqlite_path();
    drop(SqliteStore::open_at(&path, 5).expect("a version-5 database"));
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        for (kind, id, doc, hash) in V5_ROWS {
            conn.execute(
                "INSERT INTO governance_entities (kind, id, doc_json, lookup_hash) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![kind, id, doc, hash],
            )
            .expect("v5 row");
        }
    }
    let store = SqliteStore::open(&path).expect("migrates to the latest version");
    assert_eq!(store.schema_version().expect("version"), latest_version());
    let raw = rusqlite::Connection::open(&path).expect("raw open");
    raw.execute_batch("PRAGMA foreign_keys = ON;").expect("pragma");
    let mut join = |sql: &str| -> Vec<(String, f64)> {
        let mut stmt = raw.prepare(sql).expect("prepare");
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    check_migrated(&store, &mut join, "sqlite");
    let pins: i64 = raw
        .query_row("SELECT count(*) FROM governance_entities", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        pins,
        V5_ROWS.len() as i64,
        "expand only: the document table stays for older nodes"
    );

    if let Some(url) = postgres_url() {
        drop(PostgresStore::open_at(&url, 2, 1, 5).expect("a version-5 database"));
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("raw connect");
        for (kind, id, doc, hash) in V5_ROWS {
            client
                .execute(
                    "INSERT INTO governance_entities (kind, id, doc_json, lookup_hash) VALUES ($1, $2, $3, $4)",
                    &[kind, id, doc, hash],
                )
                .expect("v5 row");
        }
        let store = PostgresStore::open(&url, 2, 1).expect("migrates");
        let mut join = |sql: &str| -> Vec<(String, f64)> {
            client
                .query(sql, &[])
                .expect("query")
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, f64>(1)))
                .collect()
        };
        check_migrated(&store, &mut join, "postgres");
    }
}
