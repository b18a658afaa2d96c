//! Bifrost drop-in: configs shaped like Bifrost's own published ones (`tests/bifrost-configs/`)
//! load, each warning names its field, and a gateway starts on each.

use std::path::PathBuf;

use asbru::server;

use crate::support::*;

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bifrost-configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml"))
        .collect();
    files.sort();
    files
}

/// A fixture asbru refuses on purpose: PostgreSQL with `ssl_mode: require` needs TLS to the
/// database, which this version does not have, and ignoring it would send the password in the
/// clear. The refusal must say exactly that.
fn refused_on_purpose(file: &std::path::Path) -> Option<&'static str> {
    let text = std::fs::read_to_string(file).ok()?;
    text.contains("\"ssl_mode\": \"require\"")
        .then_some("needs TLS to PostgreSQL")
}

/// Every fixture loads (but for the refusals above, which must be precise): no problem, and
/// every warning starts with the field or section it is about (`client.enable_governance: ...`,
/// ``section `mcp` ...``, `Helm values: ...`).
#[test]
fn bifrost_configs_load_and_each_warning_names_its_field() {
    let files = fixtures();
    let mut loaded_count = 0;
    for file in &files {
        let loaded = match (asbru_config::load_file(file), refused_on_purpose(file)) {
            (Ok(loaded), None) => loaded,
            (Err(asbru_config::ConfigError::Invalid(problems)), Some(why)) => {
                assert!(
                    problems.iter().all(|p| p.reason.contains(why)),
                    "{}: {problems:?}",
                    file.display()
                );
                continue;
            }
            (Ok(_), Some(why)) => panic!("{}: loaded, but should be refused ({why})", file.display()),
            (Err(e), _) => panic!("{}: {e}", file.display()),
        };
        loaded_count += 1;
        for warning in &loaded.warnings {
            let names_field = warning
                .split_once(':')
                .is_some_and(|(head, _)| !head.contains(' ') || head.contains('`'))
                || warning.starts_with("section `")
                || warning.starts_with("Helm values:")
                || warning.starts_with("provider \"")
                || warning.starts_with("virtual key \"")
                || warning.starts_with("plugins:");
            assert!(
                names_field,
                "{}: warning does not name its field: {warning}",
                file.display()
            );
        }
    }
    assert!(loaded_count >= 11, "{loaded_count} of {} fixtures loaded", files.len());
}

/// A gateway starts on each fixture and answers. Stores are swapped for none (the PostgreSQL
/// ones need a server), and the listener for a free loopback port.
#[tokio::test]
async fn a_gateway_starts_on_each_bifrost_config() {
    for file in fixtures().into_iter().filter(|f| refused_on_purpose(f).is_none()) {
        let mut config = asbru_config::load_file(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .config;
        config.config_store = Some(asbru_config::model::ConfigStoreConfig::disabled());
        config.logs_store = Some(asbru_config::model::LogsStoreConfig {
            enabled: false,
            ..Default::default()
        });
        config.server.admin_listen = None;
        config.server.data_dir = temp_dir("dropin").display().to_string();
        let gw = server::spawn(&config).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let reply = send(gw.addr, "GET", "/health", &[], b"").await;
        assert_eq!(reply.status(), 200, "{}: {}", file.display(), reply.text());
    }
}

/// The Helm values example: `bifrost.appDir` is the data dir, `host`/`port` the listener,
/// camelCase client keys are read, and a virtual key's `keys: [{name}]` names its keys.
#[test]
fn a_helm_values_file_is_read_through_its_bifrost_subtree() {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bifrost-configs/16-helm-values-providers-and-virtual-keys.yaml");
    let loaded = asbru_config::load_file(&file).expect("loads");
    let config = &loaded.config;
    assert_eq!(config.server.data_dir, "/app/data");
    assert_eq!(config.server.listen, "0.0.0.0:8080");
    assert_eq!(config.client.drop_excess_requests, Some(false));
    assert!(config.providers.contains_key("openai"));
    let governance = config.governance.as_ref().expect("governance");
    assert!(!governance.virtual_keys.is_empty());
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.starts_with("Helm values:") && w.contains("`image`")),
        "{:?}",
        loaded.warnings
    );
}

/// `client.allow_direct_keys`: with `x-bf-direct-key: true`, the request's own bearer goes
/// upstream instead of a configured key; without the setting, or without the header, the
/// configured key is used. `x-bf-send-back-raw-response: true` adds the provider's reply.
#[tokio::test]
async fn direct_keys_and_the_raw_response_header() {
    let upstream = default_mock();
    let providers = provider_yaml("openai", &upstream.base_url(), "");
    let allowed = gateway(&format!("client: {{allow_direct_keys: true}}\nproviders:\n{providers}"));
    let refused = gateway(&format!("providers:\n{providers}"));
    let body = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let direct = [
        ("x-bf-direct-key", "true"),
        ("authorization", "Bearer sk-client-own-key"),
    ];
    let sent_key = |i: usize| upstream.state.recorded()[i].header("authorization").map(str::to_string);

    let reply = send(allowed.addr, "POST", "/v1/chat/completions", &direct, body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(sent_key(0).as_deref(), Some("Bearer sk-client-own-key"));
    let reply = send(allowed.addr, "POST", "/v1/chat/completions", &direct[1..], body).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(
        sent_key(1).as_deref(),
        Some("Bearer sk-openai-key"),
        "no x-bf-direct-key header"
    );
    let reply = send(refused.addr, "POST", "/v1/chat/completions", &direct, body).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(
        sent_key(2).as_deref(),
        Some("Bearer sk-openai-key"),
        "allow_direct_keys is off"
    );

    // The raw-response header needs client.allow_per_request_raw_override.
    let raw = [("x-bf-send-back-raw-response", "true")];
    let reply = send(refused.addr, "POST", "/v1/chat/completions", &raw, body).await;
    assert!(reply.json().get("extra_fields").is_none(), "{}", reply.text());
    let overridable = gateway(&format!(
        "client: {{allow_per_request_raw_override: true}}\nproviders:\n{providers}"
    ));
    let reply = send(overridable.addr, "POST", "/v1/chat/completions", &raw, body).await;
    assert_eq!(
        reply.json()["extra_fields"]["raw_response"]["object"],
        "chat.completion",
        "{}",
        reply.text()
    );

    // A virtual key presented as the bearer is never sent upstream as a provider key.
    let with_vk = gateway(&format!(
        "client: {{allow_direct_keys: true}}\nproviders:\n{providers}governance:\n  virtual_keys: [{{id: vk1, value: custom-vk-value, allow_all_providers: true}}]\n"
    ));
    let vk_as_direct = [("x-bf-direct-key", "true"), ("authorization", "Bearer custom-vk-value")];
    let before = upstream.state.request_count() as usize;
    let reply = send(with_vk.addr, "POST", "/v1/chat/completions", &vk_as_direct, body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(sent_key(before).as_deref(), Some("Bearer sk-openai-key"));
}
