//! The two config layers across restarts: bootstrap, store wins, `--reseed`, live updates from
//! the store, and file-only mode.

use std::path::PathBuf;
use std::time::Duration;

use asbru::server::{self, StartOptions};
use asbru_store::backend::ConfigStore;
use asbru_store::backend::sqlite::SqliteStore;

use crate::support::*;

fn data_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("asbru-modes-{tag}-{}", std::process::id()))
}

fn config(dir: &std::path::Path, base_url: &str) -> asbru_config::Config {
    let yaml = format!(
        "server: {{data_dir: \"{}\"}}\nproviders:\n  openai:\n    keys: [{{name: k, value: sk-file}}]\n    network_config: {{base_url: \"{base_url}\"}}\n",
        dir.display()
    );
    asbru_config::load_str(&yaml, "modes.yaml").expect("valid").config
}

async fn ask(gw: &server::RunningGateway) -> u16 {
    post(gw, "/v1/chat/completions", r#"{"model":"openai/gpt-4o","messages":[]}"#)
        .await
        .status()
}

#[tokio::test]
async fn bootstrap_then_store_wins_then_reseed() {
    let first = default_mock();
    let second = default_mock();
    let dir = data_dir("restart");
    let _ = std::fs::remove_dir_all(&dir);

    // First start: the empty store is seeded from the file.
    let gw = server::spawn(&config(&dir, &first.base_url())).expect("start");
    assert_eq!(ask(&gw).await, 200);
    drop(gw);
    assert!(dir.join("config.db").exists());
    assert_eq!(first.state.request_count(), 1);

    // Restart with a changed file: the store's data wins.
    let gw = server::spawn(&config(&dir, &second.base_url())).expect("restart");
    assert_eq!(ask(&gw).await, 200);
    drop(gw);
    assert_eq!(first.state.request_count(), 2, "the stored provider was used");
    assert_eq!(second.state.request_count(), 0);

    // --reseed: the file wins.
    let gw = server::spawn_with(
        &config(&dir, &second.base_url()),
        StartOptions {
            reseed: true,
            upgrade: false,
        },
    )
    .expect("reseed");
    assert_eq!(ask(&gw).await, 200);
    drop(gw);
    assert_eq!(
        second.state.request_count(),
        1,
        "the file's provider was used after --reseed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_store_write_reaches_the_running_gateway() {
    let first = default_mock();
    let second = default_mock();
    let dir = data_dir("live");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = server::spawn(&config(&dir, &first.base_url())).expect("start");
    assert_eq!(ask(&gw).await, 200);

    // Another process writes to the same store.
    let store: Box<dyn ConfigStore> = Box::new(SqliteStore::open(&dir.join("config.db")).expect("open"));
    let mut openai = store.provider("openai").expect("read").expect("seeded");
    openai.network_config.base_url = Some(second.base_url());
    store.put_provider("openai", &openai).expect("write");

    let mut switched = false;
    for _ in 0..40 {
        ask(&gw).await;
        if second.state.request_count() > 0 {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        switched,
        "the running gateway did not pick up the store change within 4 s"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn file_only_mode_persists_nothing() {
    let upstream = default_mock();
    let dir = data_dir("fileonly");
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = config(&dir, &upstream.base_url());
    cfg.config_store = Some(asbru_config::model::ConfigStoreConfig::disabled());
    let gw = server::spawn(&cfg).expect("start");
    assert_eq!(ask(&gw).await, 200);
    drop(gw);
    assert!(!dir.join("config.db").exists(), "file-only mode wrote a database");
}

#[test]
fn an_unusable_store_stops_the_start_with_a_clear_error() {
    let dir = data_dir("broken");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("config.db"), vec![b'x'; 4096]).expect("corrupt");
    let err = server::spawn(&config(&dir, "http://127.0.0.1:9"))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not a usable SQLite database"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn writes_in_file_only_mode_are_refused_clearly() {
    let dir = data_dir("refuse");
    let mut cfg = config(&dir, "http://127.0.0.1:9");
    cfg.config_store = Some(asbru_config::model::ConfigStoreConfig::disabled());
    let layers = asbru::layers::settle(&cfg, false).expect("settle");
    let err = layers.writable().err().expect("no store to write to");
    assert!(err.to_string().starts_with("config store disabled"), "{err}");
    assert!(!dir.exists());
}

#[tokio::test]
async fn the_store_as_source_of_truth_with_a_minimal_file() {
    let upstream = default_mock();
    let dir = data_dir("truth");
    let _ = std::fs::remove_dir_all(&dir);
    {
        // An operator (or another node) put the providers in the store.
        let store: Box<dyn ConfigStore> = Box::new(SqliteStore::open(&dir.join("config.db")).expect("open"));
        let provider: asbru_config::model::ProviderConfig = serde_json::from_value(serde_json::json!({
            "keys": [{"name": "k", "value": "sk-from-store"}],
            "network_config": {"base_url": upstream.base_url()}
        }))
        .expect("provider");
        store.put_provider("openai", &provider).expect("write");
    }
    let minimal = format!(
        "server: {{data_dir: \"{}\"}}\nconfig_store: {{enabled: true, type: sqlite}}\n",
        dir.display()
    );
    let cfg = asbru_config::load_str(&minimal, "minimal.yaml").expect("valid").config;
    let gw = server::spawn(&cfg).expect("start");
    assert_eq!(ask(&gw).await, 200);
    assert_eq!(
        upstream.state.recorded()[0].header("authorization"),
        Some("Bearer sk-from-store")
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_store_holding_only_pricing_overrides_is_not_reseeded() {
    let upstream = default_mock();
    let dir = data_dir("pricing-only");
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store: Box<dyn ConfigStore> = Box::new(SqliteStore::open(&dir.join("config.db")).expect("open"));
        let row = asbru_config::governance::PricingOverride {
            provider: "openai".into(),
            model: "house".into(),
            input_cost_per_token: Some(1e-6),
            ..Default::default()
        };
        store.put(&row).expect("write");
    }
    // The file names a provider, but the store already holds data: it is kept, not replaced.
    let gw = server::spawn(&config(&dir, &upstream.base_url())).expect("start");
    assert_eq!(ask(&gw).await, 400, "the file's provider was not seeded");
    drop(gw);
    let store: Box<dyn ConfigStore> = Box::new(SqliteStore::open(&dir.join("config.db")).expect("open"));
    assert!(store.providers().expect("read").is_empty());
    let overrides = store.list::<asbru_config::governance::PricingOverride>().expect("read");
    assert_eq!(overrides.len(), 1, "the override survived");
    assert!(store.setting("seeded_from_file").expect("read").is_some());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_store_emptied_on_purpose_stays_empty() {
    let upstream = default_mock();
    let dir = data_dir("emptied");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = server::spawn(&config(&dir, &upstream.base_url())).expect("seed");
    assert_eq!(ask(&gw).await, 200);
    drop(gw);
    {
        // The operator deletes every provider.
        let store: Box<dyn ConfigStore> = Box::new(SqliteStore::open(&dir.join("config.db")).expect("open"));
        store.delete_provider("openai").expect("delete");
    }
    let gw = server::spawn(&config(&dir, &upstream.base_url())).expect("restart");
    assert_eq!(ask(&gw).await, 400, "the deleted provider came back from the file");
    drop(gw);
    let store: Box<dyn ConfigStore> = Box::new(SqliteStore::open(&dir.join("config.db")).expect("open"));
    assert!(store.providers().expect("read").is_empty());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_store_holding_only_synced_price_rows_is_still_seeded() {
    let upstream = default_mock();
    let dir = data_dir("prices-only");
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store: Box<dyn ConfigStore> = Box::new(SqliteStore::open(&dir.join("config.db")).expect("open"));
        let row = asbru_config::governance::ModelPrice {
            provider: "openai".into(),
            model: "house".into(),
            input_cost_per_token: Some(1e-6),
            ..Default::default()
        };
        store.put(&row).expect("write");
    }
    // Price rows are a synced datasheet, not configuration: the file's providers are seeded.
    let gw = server::spawn(&config(&dir, &upstream.base_url())).expect("start");
    assert_eq!(ask(&gw).await, 200);
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

fn with_source_of_truth(dir: &std::path::Path, base_url: &str, mode: &str) -> asbru_config::Config {
    let mut config = config(dir, base_url);
    config.source_of_truth = Some(mode.to_string());
    config
}

/// Points the stored `openai` provider at `base_url`, as an edit through the API would.
fn edit_stored_provider(dir: &std::path::Path, base_url: &str) {
    let opened = SqliteStore::open(&dir.join("config.db")).expect("store");
    let store: &dyn ConfigStore = &opened;
    let mut provider = store.providers().expect("providers")["openai"].clone();
    provider.network_config.base_url = Some(base_url.to_string());
    store
        .transaction(&mut |tx| tx.put_provider("openai", &provider))
        .expect("edit");
}

/// `source_of_truth: split`: a store edit to a file entity survives a restart with an unchanged
/// file; a changed file entity is applied on the next start. `config.json`: the file's
/// providers replace the store's at every start.
#[tokio::test]
async fn source_of_truth_split_and_config_json() {
    let (first, edited, second) = (default_mock(), default_mock(), default_mock());
    let dir = data_dir("split");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = server::spawn(&with_source_of_truth(&dir, &first.base_url(), "split")).expect("start");
    assert_eq!(ask(&gw).await, 200);
    drop(gw);
    assert_eq!(first.state.request_count(), 1);

    // An edit in the store, then a restart with the same file: the edit survives.
    edit_stored_provider(&dir, &edited.base_url());
    let gw = server::spawn(&with_source_of_truth(&dir, &first.base_url(), "split")).expect("restart");
    assert_eq!(ask(&gw).await, 200);
    drop(gw);
    assert_eq!(edited.state.request_count(), 1, "the store's edit was kept");

    // The file's provider changes: it is applied.
    let gw = server::spawn(&with_source_of_truth(&dir, &second.base_url(), "split")).expect("changed file");
    assert_eq!(ask(&gw).await, 200);
    drop(gw);
    assert_eq!(second.state.request_count(), 1, "the changed file entity was applied");

    // config.json: the file wins over a store edit at every start.
    edit_stored_provider(&dir, &edited.base_url());
    let gw = server::spawn(&with_source_of_truth(&dir, &second.base_url(), "config.json")).expect("config.json");
    assert_eq!(ask(&gw).await, 200);
    drop(gw);
    assert_eq!(
        second.state.request_count(),
        2,
        "the file's provider replaced the store's"
    );
    assert_eq!(edited.state.request_count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
