//! The management API over real HTTP against a gateway with a SQLite config store: the
//! end-to-end flow (provider, key, customer, team, virtual key, calls, live usage, budget
//! lowered, key deleted), errors with their statuses, redaction, and persistence.

use std::path::PathBuf;

use asbru::server::{self, RunningGateway};

use crate::support::*;

fn data_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("asbru-admin-{tag}-{}", std::process::id()))
}

fn stored_gateway(dir: &std::path::Path) -> RunningGateway {
    let yaml = format!("server: {{data_dir: \"{}\"}}\n", dir.display());
    let config = asbru_config::load_str(&yaml, "admin.yaml").expect("valid").config;
    server::spawn(&config).expect("gateway starts")
}

async fn call(gw: &RunningGateway, method: &str, path: &str, body: &str) -> Reply {
    send(gw.addr, method, path, &[], body.as_bytes()).await
}

async fn chat(gw: &RunningGateway, vk: &str) -> Reply {
    send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", vk)],
        br#"{"model":"openai/gpt-4o","max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await
}

const SECRET: &str = "sk-upstream-secret-0123456789";

#[tokio::test]
async fn end_to_end_through_the_api_with_live_changes() {
    let upstream = default_mock();
    let dir = data_dir("flow");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = stored_gateway(&dir);

    let created = call(
        &gw,
        "POST",
        "/api/providers",
        &format!(
            r#"{{"provider":"openai","keys":[{{"name":"k1","value":"{SECRET}","models":["*"]}}],"network_config":{{"base_url":"{}"}}}}"#,
            upstream.base_url()
        ),
    )
    .await;
    assert_eq!(created.status(), 200, "{}", created.text());
    assert_eq!(created.json()["message"], "Provider created successfully");
    assert!(!created.text().contains(SECRET), "{}", created.text());

    assert_eq!(
        call(
            &gw,
            "POST",
            "/api/governance/customers",
            r#"{"id":"acme","name":"Acme"}"#
        )
        .await
        .status(),
        200
    );
    let team = call(
        &gw,
        "POST",
        "/api/governance/teams",
        r#"{"id":"ml","name":"ML","customer_id":"acme"}"#,
    )
    .await;
    assert_eq!(team.status(), 200, "{}", team.text());
    let vk = call(
        &gw,
        "POST",
        "/api/governance/virtual-keys",
        r#"{"name":"app","team_id":"ml","budgets":[{"max_limit":10,"reset_duration":"1d"}],"rate_limit":{"request_max_limit":100,"request_reset_duration":"1h"},"provider_configs":[{"provider":"openai","weight":1}]}"#,
    )
    .await;
    assert_eq!(vk.status(), 200, "{}", vk.text());
    let body = vk.json();
    assert_eq!(body["message"], "Virtual key created successfully");
    let value = body["virtual_key"]["value"]
        .as_str()
        .expect("value shown once")
        .to_string();
    let id = body["virtual_key"]["id"].as_str().expect("id").to_string();
    assert!(value.starts_with("sk-bf-") && value.len() == 38, "{value}");

    // Live at once on this node: no sleep.
    let reply = chat(&gw, &value).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        upstream
            .state
            .recorded()
            .last()
            .and_then(|r| r.header("authorization").map(str::to_string)),
        Some(format!("Bearer {SECRET}"))
    );

    let listed = call(
        &gw,
        "GET",
        "/api/governance/virtual-keys?from_memory=true&team_id=ml",
        "",
    )
    .await;
    assert_eq!(listed.status(), 200);
    let listed = listed.json();
    assert_eq!(listed["total_count"], 1);
    assert_eq!(listed["limit"], 25);
    let key = &listed["virtual_keys"][0];
    assert_ne!(
        key["value"].as_str(),
        Some(value.as_str()),
        "the value is redacted in lists"
    );
    let own = &key["usage"]["scopes"][0];
    assert_eq!(own["level"], "virtual_key", "{key}");
    let spent = own["budgets"][0]["current_usage"].as_f64().expect("budget usage");
    assert!(spent > 0.0, "{key}");
    assert!(own["budgets"][0]["resets_at"].as_i64().is_some(), "{key}");
    assert_eq!(key["usage"]["scopes"][2]["level"], "team", "{key}");

    // The key reads its own quota with its own value, no admin login.
    let quota = send(
        gw.addr,
        "GET",
        "/api/governance/virtual-keys/quota",
        &[("x-bf-vk", &value)],
        b"",
    )
    .await;
    assert_eq!(quota.status(), 200, "{}", quota.text());
    let quota = quota.json();
    assert_eq!(quota["virtual_key_id"], id.as_str());
    assert_eq!(quota["team"]["id"], "ml");
    let own = &quota["scopes"][0];
    assert_eq!(own["level"], "virtual_key");
    assert_eq!(own["budgets"][0]["max_limit"].as_f64(), Some(10.0));
    assert!(
        own["budgets"][0]["current_usage"].as_f64().is_some_and(|u| u > 0.0),
        "{own}"
    );
    assert_eq!(own["rate_limit"]["requests"]["max_limit"], 100);
    assert_eq!(
        call(&gw, "GET", "/api/governance/virtual-keys/quota", "")
            .await
            .status(),
        401
    );

    // A settings update with reset_budget_usage starts the key's budgets from zero.
    let reset = call(
        &gw,
        "PUT",
        &format!("/api/governance/virtual-keys/{id}"),
        r#"{"name":"app","team_id":"ml","reset_budget_usage":true,"budgets":[{"max_limit":10,"reset_duration":"1d"}],"rate_limit":{"request_max_limit":100,"request_reset_duration":"1h"},"provider_configs":[{"provider":"openai","weight":1}]}"#,
    )
    .await;
    assert_eq!(reset.status(), 200, "{}", reset.text());
    let after = call(&gw, "GET", "/api/governance/virtual-keys?from_memory=true", "")
        .await
        .json();
    let usage = after["virtual_keys"][0]["usage"]["scopes"][0].clone();
    assert_eq!(usage["budgets"][0]["current_usage"].as_f64(), Some(0.0), "{usage}");
    assert_eq!(chat(&gw, &value).await.status(), 200);

    // Lower the budget under what was spent: the next call is refused.
    let lowered = call(
        &gw,
        "PUT",
        &format!("/api/governance/virtual-keys/{id}"),
        r#"{"name":"app","team_id":"ml","budgets":[{"max_limit":0.000001,"reset_duration":"1d"}],"provider_configs":[{"provider":"openai","weight":1}]}"#,
    )
    .await;
    assert_eq!(lowered.status(), 200, "{}", lowered.text());
    assert_eq!(chat(&gw, &value).await.status(), 402);

    // A budget override raises it for this window; removing it restores the limit.
    let raised = call(
        &gw,
        "PUT",
        &format!("/api/governance/virtual-keys/{id}/budgets/0/override"),
        r#"{"amount":5,"mode":"cycles","cycles":1}"#,
    )
    .await;
    assert_eq!(raised.status(), 200, "{}", raised.text());
    let effective = raised.json()["effective_max_limit"].as_f64().expect("effective");
    assert!((effective - 5.000001).abs() < 1e-9, "{effective}");
    assert_eq!(chat(&gw, &value).await.status(), 200);
    let bad = call(
        &gw,
        "PUT",
        &format!("/api/governance/virtual-keys/{id}/budgets/0/override"),
        r#"{"amount":5,"mode":"sometimes"}"#,
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        call(
            &gw,
            "PUT",
            &format!("/api/governance/virtual-keys/{id}/budgets/9/override"),
            r#"{"amount":1,"mode":"forever"}"#
        )
        .await
        .status(),
        404
    );
    let removed = call(
        &gw,
        "DELETE",
        &format!("/api/governance/virtual-keys/{id}/budgets/0/override"),
        "",
    )
    .await;
    assert_eq!(removed.status(), 200, "{}", removed.text());
    assert_eq!(chat(&gw, &value).await.status(), 402);

    // Rotate: the old value stops working, the new one is shown once.
    let rotated = call(&gw, "POST", &format!("/api/governance/virtual-keys/{id}/rotate"), "").await;
    assert_eq!(rotated.status(), 200, "{}", rotated.text());
    let new_value = rotated.json()["virtual_key"]["value"]
        .as_str()
        .expect("new value")
        .to_string();
    assert_ne!(new_value, value);
    assert_eq!(chat(&gw, &value).await.status(), 401);

    // Delete: the next call with it is unknown, and its meters are gone.
    assert!(gw.state.registry.get(&format!("vk:{id}:budget:0")).is_some());
    assert_eq!(
        call(&gw, "DELETE", &format!("/api/governance/virtual-keys/{id}"), "")
            .await
            .status(),
        200
    );
    assert!(
        gw.state.registry.get(&format!("vk:{id}:budget:0")).is_none(),
        "meters dropped"
    );
    assert_eq!(chat(&gw, &new_value).await.status(), 401);
    assert_eq!(
        call(&gw, "GET", &format!("/api/governance/virtual-keys/{id}"), "")
            .await
            .status(),
        404
    );

    // No reply ever carries the provider key.
    for path in [
        "/api/providers",
        "/api/keys",
        "/api/providers/openai",
        "/api/providers/openai/keys",
    ] {
        let reply = call(&gw, "GET", path, "").await;
        assert_eq!(reply.status(), 200, "{path}");
        assert!(!reply.text().contains(SECRET), "{path}: {}", reply.text());
    }

    // Every write is in the audit trail, newest first, without the secrets.
    let audit = call(&gw, "GET", "/api/audit?limit=100", "").await;
    assert_eq!(audit.status(), 200);
    assert!(
        !audit.text().contains(SECRET) && !audit.text().contains(&value),
        "{}",
        audit.text()
    );
    let audit = audit.json();
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_string(),
                e["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions.first(),
        Some(&("virtual_key".to_string(), "delete".to_string())),
        "{actions:?}"
    );
    for expected in [
        ("provider", "create"),
        ("team", "create"),
        ("virtual_key", "rotate"),
        ("virtual_key", "update"),
    ] {
        assert!(
            actions.iter().any(|(k, a)| k == expected.0 && a == expected.1),
            "{expected:?} missing from {actions:?}"
        );
    }
    assert_eq!(audit["entries"][0]["actor"], "unauthenticated");
    assert_eq!(audit["entries"][0]["entity_id"], id.as_str());

    // Restart: what the API created is still there.
    drop(gw);
    let gw = stored_gateway(&dir);
    let teams = call(&gw, "GET", "/api/governance/teams", "").await.json();
    assert_eq!(teams["teams"][0]["id"], "ml");
    assert_eq!(call(&gw, "GET", "/api/providers/openai", "").await.status(), 200);
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_key_sent_back_redacted_keeps_its_secret() {
    let upstream = default_mock();
    let dir = data_dir("redacted");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = stored_gateway(&dir);
    let body = format!(
        r#"{{"provider":"openai","keys":[{{"id":"key-1","name":"k1","value":"{SECRET}"}}],"network_config":{{"base_url":"{}"}}}}"#,
        upstream.base_url()
    );
    assert_eq!(call(&gw, "POST", "/api/providers", &body).await.status(), 200);
    let key = call(&gw, "GET", "/api/providers/openai/keys/key-1", "").await.json();
    let redacted = key["value"].as_str().expect("value").to_string();
    assert_ne!(redacted, SECRET);
    let update = format!(r#"{{"name":"renamed","value":"{redacted}","weight":2}}"#);
    let updated = call(&gw, "PUT", "/api/providers/openai/keys/key-1", &update).await;
    assert_eq!(updated.status(), 200, "{}", updated.text());
    assert_eq!(updated.json()["key"]["name"], "renamed");
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        upstream
            .state
            .recorded()
            .last()
            .and_then(|r| r.header("authorization").map(str::to_string)),
        Some(format!("Bearer {SECRET}"))
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn errors_have_their_statuses() {
    let dir = data_dir("errors");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = stored_gateway(&dir);
    let provider = r#"{"provider":"groq","keys":[{"value":"sk-groq-0000000000"}]}"#;
    assert_eq!(call(&gw, "POST", "/api/providers", provider).await.status(), 200);
    let duplicate = call(&gw, "POST", "/api/providers", provider).await;
    assert_eq!(duplicate.status(), 409, "{}", duplicate.text());
    assert_eq!(duplicate.json()["status_code"], 409);

    let unknown = call(&gw, "POST", "/api/providers", r#"{"provider":"nope","keys":[]}"#).await;
    assert_eq!(unknown.status(), 400, "{}", unknown.text());
    assert!(unknown.text().contains("unknown provider"), "{}", unknown.text());

    let both = call(
        &gw,
        "POST",
        "/api/governance/virtual-keys",
        r#"{"name":"x","team_id":"a","customer_id":"b"}"#,
    )
    .await;
    assert_eq!(both.status(), 400);
    assert!(both.text().contains("both Team and Customer"), "{}", both.text());

    let dangling = call(
        &gw,
        "POST",
        "/api/governance/virtual-keys",
        r#"{"name":"x","team_id":"ghost"}"#,
    )
    .await;
    assert_eq!(dangling.status(), 400);
    assert!(dangling.text().contains("team_id"), "{}", dangling.text());

    let bad_window = call(
        &gw,
        "POST",
        "/api/governance/customers",
        r#"{"name":"c","budgets":[{"max_limit":1,"reset_duration":"fortnight"}]}"#,
    )
    .await;
    assert_eq!(bad_window.status(), 400, "{}", bad_window.text());

    let twice = call(
        &gw,
        "POST",
        "/api/governance/virtual-keys",
        r#"{"name":"twice","budgets":[{"max_limit":1,"reset_duration":"1d"},{"max_limit":2,"reset_duration":"1d"}]}"#,
    )
    .await;
    assert_eq!(twice.status(), 400, "{}", twice.text());
    assert!(twice.text().contains("reset_duration"), "{}", twice.text());

    let malformed = call(&gw, "POST", "/api/governance/teams", "{not json").await;
    assert_eq!(malformed.status(), 400);
    assert_eq!(call(&gw, "GET", "/api/governance/teams/ghost", "").await.status(), 404);
    assert_eq!(call(&gw, "GET", "/api/nowhere", "").await.status(), 404);
    assert_eq!(call(&gw, "PATCH", "/api/providers", "{}").await.status(), 405);
    assert_eq!(call(&gw, "POST", "/api/governance/budgets", "{}").await.status(), 405);
    let huge = raw_exchange(
        gw.addr,
        b"POST /api/governance/teams HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2097152\r\n\r\n",
    );
    assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");

    // A team still named by a virtual key cannot go.
    assert_eq!(
        call(&gw, "POST", "/api/governance/teams", r#"{"id":"t","name":"T"}"#)
            .await
            .status(),
        200
    );
    assert_eq!(
        call(
            &gw,
            "POST",
            "/api/governance/virtual-keys",
            r#"{"name":"v","team_id":"t"}"#
        )
        .await
        .status(),
        200
    );
    let in_use = call(&gw, "DELETE", "/api/governance/teams/t", "").await;
    assert_eq!(in_use.status(), 409, "{}", in_use.text());
    assert_eq!(call(&gw, "GET", "/api/version", "").await.status(), 200);
    let doc = call(&gw, "GET", "/api/openapi.json", "").await;
    assert_eq!(doc.status(), 200);
    let doc = doc.json();
    assert!(
        doc["paths"]["/api/governance/virtual-keys"]["post"].is_object(),
        "{doc}"
    );
    assert!(doc["components"]["schemas"]["VirtualKey"]["properties"]["team_id"].is_object());
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_a_store_the_api_says_so() {
    let gw = gateway("providers:\n  openai: {keys: [{value: sk-x}]}\n");
    let reply = call(&gw, "GET", "/api/providers", "").await;
    assert_eq!(reply.status(), 503);
    assert!(reply.text().contains("config store not available"), "{}", reply.text());
    assert_eq!(
        call(&gw, "POST", "/api/governance/teams", r#"{"name":"t"}"#)
            .await
            .status(),
        503
    );
}

fn authed_gateway(dir: &std::path::Path, upstream: &str, extra: &str) -> RunningGateway {
    let yaml = format!(
        "server: {{data_dir: \"{}\"}}\nproviders:\n  openai:\n    keys: [{{name: k, value: sk-up-0123456789}}]\n    network_config: {{base_url: \"{upstream}\"}}\ngovernance:\n  auth_config: {{is_enabled: true, admin_username: admin, admin_password: s3cret{extra}}}\n",
        dir.display()
    );
    let config = asbru_config::load_str(&yaml, "auth.yaml").expect("valid").config;
    server::spawn(&config).expect("gateway starts")
}

const BASIC: &str = "Basic YWRtaW46czNjcmV0"; // admin:s3cret

#[tokio::test]
async fn admin_auth_sessions_basic_metrics_and_inference() {
    let upstream = default_mock();
    let dir = data_dir("auth");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = authed_gateway(&dir, &upstream.base_url(), "");
    assert_eq!(call(&gw, "GET", "/api/providers", "").await.status(), 401);
    let enabled = call(&gw, "GET", "/api/session/is-auth-enabled", "").await.json();
    assert_eq!(enabled["is_auth_enabled"], true);

    let wrong = call(
        &gw,
        "POST",
        "/api/session/login",
        r#"{"username":"admin","password":"nope"}"#,
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let login = call(
        &gw,
        "POST",
        "/api/session/login",
        r#"{"username":"admin","password":"s3cret"}"#,
    )
    .await;
    assert_eq!(login.status(), 200, "{}", login.text());
    let cookie = login.header("set-cookie").expect("cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let token = login.json()["token"].as_str().expect("token").to_string();
    let bearer = format!("Bearer {token}");
    let session_cookie = format!("token={token}");
    assert_eq!(
        send(gw.addr, "GET", "/api/providers", &[("authorization", &bearer)], b"")
            .await
            .status(),
        200
    );
    assert_eq!(
        send(gw.addr, "GET", "/api/providers", &[("cookie", &session_cookie)], b"")
            .await
            .status(),
        200
    );
    assert_eq!(
        send(gw.addr, "GET", "/api/providers", &[("authorization", BASIC)], b"")
            .await
            .status(),
        200
    );
    assert_eq!(
        send(
            gw.addr,
            "POST",
            "/api/session/logout",
            &[("authorization", &bearer)],
            b""
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        send(gw.addr, "GET", "/api/providers", &[("authorization", &bearer)], b"")
            .await
            .status(),
        401
    );

    // /metrics shares the rule.
    assert_eq!(call(&gw, "GET", "/metrics", "").await.status(), 401);
    assert_eq!(
        send(gw.addr, "GET", "/metrics", &[("authorization", BASIC)], b"")
            .await
            .status(),
        200
    );

    // Inference needs admin credentials or a virtual key.
    let chat = br#"{"model":"openai/gpt-4o","messages":[]}"#;
    let refused = send(gw.addr, "POST", "/v1/chat/completions", &[], chat).await;
    assert_eq!(refused.status(), 401, "{}", refused.text());
    assert_eq!(refused.json()["type"], "virtual_key_required");
    assert_eq!(
        send(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", BASIC)],
            chat
        )
        .await
        .status(),
        200
    );

    // Writes are attributed to the admin user; the seeding from the file to `file`.
    let created = send(
        gw.addr,
        "POST",
        "/api/governance/teams",
        &[("authorization", BASIC)],
        br#"{"id":"t1","name":"T1"}"#,
    )
    .await;
    assert_eq!(created.status(), 200, "{}", created.text());
    let audit = send(gw.addr, "GET", "/api/audit", &[("authorization", BASIC)], b"")
        .await
        .json();
    assert_eq!(audit["entries"][0]["actor"], "admin");
    assert_eq!(audit["entries"][0]["entity_id"], "t1");
    let last = audit["entries"]
        .as_array()
        .and_then(|e| e.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (last["actor"].as_str(), last["action"].as_str()),
        (Some("file"), Some("seed"))
    );

    // The stored admin password is a hash.
    drop(gw);
    {
        use asbru_store::backend::ConfigStore;
        let store: Box<dyn ConfigStore> =
            Box::new(asbru_store::backend::sqlite::SqliteStore::open(&dir.join("config.db")).expect("open"));
        let stored = store.setting("auth_config").expect("read").expect("stored");
        let password = stored["admin_password"].as_str().expect("password");
        assert!(password.starts_with("$argon2id$"), "{password}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address() {
    let upstream = default_mock();
    let dir = data_dir("limit");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = authed_gateway(&dir, &upstream.base_url(), "");
    for _ in 0..asbru::admin::auth::MAX_FAILURES {
        let reply = call(
            &gw,
            "POST",
            "/api/session/login",
            r#"{"username":"admin","password":"x"}"#,
        )
        .await;
        assert_eq!(reply.status(), 401);
    }
    // Now even the right password waits, and so does Basic.
    let blocked = call(
        &gw,
        "POST",
        "/api/session/login",
        r#"{"username":"admin","password":"s3cret"}"#,
    )
    .await;
    assert_eq!(blocked.status(), 429);
    assert_eq!(
        send(gw.addr, "GET", "/api/providers", &[("authorization", BASIC)], b"")
            .await
            .status(),
        429
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn inference_can_be_left_open_by_config() {
    let upstream = default_mock();
    let dir = data_dir("open-inference");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = authed_gateway(&dir, &upstream.base_url(), ", disable_auth_on_inference: true");
    let chat = br#"{"model":"openai/gpt-4o","messages":[]}"#;
    assert_eq!(
        send(gw.addr, "POST", "/v1/chat/completions", &[], chat).await.status(),
        200
    );
    assert_eq!(call(&gw, "GET", "/api/providers", "").await.status(), 401);
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_write_on_one_node_is_served_by_another_within_a_second() {
    // The PostgreSQL client is blocking: set up off the test's runtime thread.
    let Some(url) = tokio::task::spawn_blocking(|| postgres_url("two_nodes"))
        .await
        .expect("setup")
    else {
        return;
    };
    let upstream = default_mock();
    let yaml = format!("config_store: {{enabled: true, type: postgres, config: {{url: \"{url}\"}}}}\n");
    let config = asbru_config::load_str(&yaml, "pg.yaml").expect("valid").config;
    let spawn = |config: asbru_config::Config| tokio::task::spawn_blocking(move || server::spawn(&config));
    let a = spawn(config.clone()).await.expect("join").expect("node a");
    let b = spawn(config).await.expect("join").expect("node b");
    let provider = format!(
        r#"{{"provider":"openai","keys":[{{"name":"k","value":"{SECRET}"}}],"network_config":{{"base_url":"{}"}}}}"#,
        upstream.base_url()
    );
    assert_eq!(call(&a, "POST", "/api/providers", &provider).await.status(), 200);
    let vk = call(
        &a,
        "POST",
        "/api/governance/virtual-keys",
        r#"{"name":"pg-app","provider_configs":[{"provider":"openai","weight":1}]}"#,
    )
    .await;
    assert_eq!(vk.status(), 200, "{}", vk.text());
    let value = vk.json()["virtual_key"]["value"].as_str().expect("value").to_string();
    assert_eq!(
        chat(&a, &value).await.status(),
        200,
        "node a serves its own write at once"
    );
    let written = std::time::Instant::now();
    let mut served = false;
    while written.elapsed() < std::time::Duration::from_millis(1000) {
        if chat(&b, &value).await.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(served, "node b did not serve node a's write within a second");
    // The API reads the same rows from either node, redacted on both.
    let listed = call(&b, "GET", "/api/governance/virtual-keys?search=pg", "")
        .await
        .json();
    assert_eq!(listed["total_count"], 1);
    assert!(!call(&b, "GET", "/api/providers", "").await.text().contains(SECRET));
    // The PostgreSQL client blocks when it closes: drop the gateways off the runtime thread.
    tokio::task::spawn_blocking(move || drop((a, b))).await.expect("stop");
}

#[tokio::test]
async fn testing_a_provider_reports_each_key() {
    let upstream = default_mock();
    let dir = data_dir("provider-test");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = stored_gateway(&dir);
    let live = format!(
        r#"{{"provider":"openai","keys":[{{"id":"a","name":"a","value":"sk-a-000000000000"}},{{"id":"b","name":"b","value":"sk-b-000000000000"}}],"network_config":{{"base_url":"{}"}}}}"#,
        upstream.base_url()
    );
    assert_eq!(call(&gw, "POST", "/api/providers", &live).await.status(), 200);
    let tested = call(&gw, "POST", "/api/providers/openai/test", "").await;
    assert_eq!(tested.status(), 200, "{}", tested.text());
    let results = tested.json()["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), 2);
    assert!(
        results.iter().all(|r| r["ok"] == true && r["status"] == 200),
        "{results:?}"
    );
    assert!(results[0]["latency_ms"].as_f64().is_some());
    let one = call(&gw, "POST", "/api/providers/openai/test", r#"{"key_id":"b"}"#)
        .await
        .json();
    assert_eq!(one["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["results"][0]["key_id"], "b");

    let dead = format!(
        r#"{{"provider":"groq","keys":[{{"value":"sk-g-000000000000"}}],"network_config":{{"base_url":"http://{}"}}}}"#,
        dead_address()
    );
    assert_eq!(call(&gw, "POST", "/api/providers", &dead).await.status(), 200);
    let failed = call(&gw, "POST", "/api/providers/groq/test", "").await.json();
    assert_eq!(failed["results"][0]["ok"], false, "{failed}");
    assert_eq!(failed["results"][0]["status"], 502);
    assert!(!failed.to_string().contains("sk-g-"), "{failed}");
    assert_eq!(call(&gw, "POST", "/api/providers/nowhere/test", "").await.status(), 404);
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn stored_plugins_apply_at_the_next_start() {
    let upstream = default_mock();
    let dir = data_dir("plugins");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = stored_gateway(&dir);
    let provider = format!(
        r#"{{"provider":"openai","keys":[{{"value":"sk-p-000000000000"}}],"network_config":{{"base_url":"{}"}}}}"#,
        upstream.base_url()
    );
    assert_eq!(call(&gw, "POST", "/api/providers", &provider).await.status(), 200);
    let bad = call(
        &gw,
        "POST",
        "/api/plugins",
        r#"{"name":"response_headers","enabled":true,"config":{"headers":{"content-length":"1"}}}"#,
    )
    .await;
    assert_eq!(bad.status(), 400, "{}", bad.text());
    let created = call(
        &gw,
        "POST",
        "/api/plugins",
        r#"{"name":"response_headers","enabled":true,"placement":"pre_builtin","config":{"headers":{"x-from-store":"yes"}}}"#,
    )
    .await;
    assert_eq!(created.status(), 200, "{}", created.text());
    assert_eq!(created.json()["restart_required"], true);
    assert_eq!(call(&gw, "GET", "/api/plugins", "").await.json()["count"], 1);
    drop(gw);
    let gw = stored_gateway(&dir);
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.header("x-from-store").as_deref(), Some("yes"));
    assert_eq!(
        call(&gw, "DELETE", "/api/plugins/response_headers", "").await.status(),
        200
    );
    assert_eq!(
        call(&gw, "GET", "/api/plugins/response_headers", "").await.status(),
        404
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_burst_of_writes_is_coalesced_into_a_few_rebuilds() {
    let dir = data_dir("burst");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = std::sync::Arc::new(stored_gateway(&dir));
    let before = gw.state.reloader.rebuilds();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!(r#"{{"id":"team-{i}","name":"Team {i}"}}"#);
            call(&gw, "POST", "/api/governance/teams", &body).await.status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), 200);
    }
    let rebuilds = gw.state.reloader.rebuilds() - before;
    eprintln!("100 concurrent writes caused {rebuilds} rebuilds");
    assert!((1..100).contains(&rebuilds), "100 writes caused {rebuilds} rebuilds");
    let teams = call(&gw, "GET", "/api/governance/teams", "").await.json();
    assert_eq!(teams["count"], 100);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn client_settings_change_at_runtime() {
    let upstream = default_mock();
    let dir = data_dir("client-config");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = stored_gateway(&dir);
    let provider = format!(
        r#"{{"provider":"openai","keys":[{{"value":"sk-c-000000000000"}}],"network_config":{{"base_url":"{}"}}}}"#,
        upstream.base_url()
    );
    assert_eq!(call(&gw, "POST", "/api/providers", &provider).await.status(), 200);
    let chat = r#"{"model":"openai/gpt-4o","messages":[]}"#;
    assert_eq!(post(&gw, "/v1/chat/completions", chat).await.status(), 200);
    // Make virtual keys mandatory (Bifrost's is_vk_mandatory spelling): live at once.
    let changed = call(
        &gw,
        "PUT",
        "/api/config",
        r#"{"client_config":{"is_vk_mandatory":true}}"#,
    )
    .await;
    assert_eq!(changed.status(), 200, "{}", changed.text());
    assert_eq!(changed.json()["restart_required"], false);
    let refused = post(&gw, "/v1/chat/completions", chat).await;
    assert_eq!(refused.status(), 401, "{}", refused.text());
    let config = call(&gw, "GET", "/api/config", "").await.json();
    assert_eq!(config["client_config"]["enforce_auth_on_inference"], true);
    // A start-time setting says a restart is needed; a bad value is a 400.
    let later = call(
        &gw,
        "PUT",
        "/api/config",
        r#"{"client_config":{"allowed_origins":["https://app"]}}"#,
    )
    .await;
    assert_eq!(later.json()["restart_required"], true);
    let bad = call(
        &gw,
        "PUT",
        "/api/config",
        r#"{"client_config":{"max_fallbacks":"many"}}"#,
    )
    .await;
    assert_eq!(bad.status(), 400, "{}", bad.text());
    // It survives a restart.
    drop(gw);
    let gw = stored_gateway(&dir);
    assert_eq!(post(&gw, "/v1/chat/completions", chat).await.status(), 401);
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Create, read, list, replace and delete every governance entity through the API.
async fn crud_every_entity(gw: &RunningGateway) {
    let entities: [(&str, &str, &str, &str); 7] = [
        (
            "customers",
            "c1",
            r#"{"id":"c1","name":"Acme"}"#,
            r#"{"name":"Acme Corp"}"#,
        ),
        (
            "teams",
            "t1",
            r#"{"id":"t1","name":"ML","customer_id":"c1"}"#,
            r#"{"name":"ML team","customer_id":"c1"}"#,
        ),
        (
            "model-configs",
            "m1",
            r#"{"id":"m1","model_name":"gpt-4o","budgets":[{"max_limit":5,"reset_duration":"1d"}]}"#,
            r#"{"model_name":"gpt-4o-mini"}"#,
        ),
        (
            "providers",
            "openai",
            r#"{"name":"openai","budgets":[{"max_limit":50,"reset_duration":"1M"}]}"#,
            r#"{"budgets":[{"max_limit":60,"reset_duration":"1M"}]}"#,
        ),
        (
            "pricing-overrides",
            "openai/house",
            r#"{"provider":"openai","model":"house","input_cost_per_token":0.000001}"#,
            r#"{"provider":"openai","model":"house","input_cost_per_token":0.000002}"#,
        ),
        (
            "routing-rules",
            "r1",
            r#"{"id":"r1","name":"cheap","cel_expression":"true","targets":[{"provider":"openai","model":"gpt-4o-mini"}]}"#,
            r#"{"name":"cheaper","cel_expression":"true"}"#,
        ),
        (
            "virtual-keys",
            "",
            r#"{"name":"crud-key","team_id":"t1"}"#,
            r#"{"name":"crud-key-2","team_id":"t1"}"#,
        ),
    ];
    let mut created = Vec::new();
    for (path, id, body, replacement) in entities {
        let reply = call(gw, "POST", &format!("/api/governance/{path}"), body).await;
        assert_eq!(reply.status(), 200, "create {path}: {}", reply.text());
        let id = if id.is_empty() {
            reply.json()["virtual_key"]["id"].as_str().expect("id").to_string()
        } else {
            id.to_string()
        };
        // A pricing override's id is `provider/model`, escaped in the path.
        let url = format!("/api/governance/{path}/{}", id.replace('/', "%2F"));
        assert_eq!(call(gw, "GET", &url, "").await.status(), 200, "get {url}");
        assert_eq!(
            call(gw, "GET", &format!("/api/governance/{path}"), "").await.status(),
            200
        );
        let replaced = call(gw, "PUT", &url, replacement).await;
        assert_eq!(replaced.status(), 200, "replace {url}: {}", replaced.text());
        created.push(url);
    }
    // Delete in reverse: a team cannot go while its key exists.
    for url in created.iter().rev() {
        let reply = call(gw, "DELETE", url, "").await;
        assert_eq!(reply.status(), 200, "delete {url}: {}", reply.text());
        assert_eq!(call(gw, "GET", url, "").await.status(), 404, "{url}");
    }
}

#[tokio::test]
async fn every_entity_through_the_api_on_sqlite() {
    let dir = data_dir("crud");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = stored_gateway(&dir);
    crud_every_entity(&gw).await;
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_entity_through_the_api_on_postgres() {
    let Some(url) = tokio::task::spawn_blocking(|| postgres_url("crud"))
        .await
        .expect("setup")
    else {
        return;
    };
    let yaml = format!("config_store: {{enabled: true, type: postgres, config: {{url: \"{url}\"}}}}\n");
    let config = asbru_config::load_str(&yaml, "pg.yaml").expect("valid").config;
    let gw = tokio::task::spawn_blocking(move || server::spawn(&config))
        .await
        .expect("join")
        .expect("gateway");
    crud_every_entity(&gw).await;
    // The PostgreSQL client blocks when it closes: drop the gateway off the runtime thread.
    tokio::task::spawn_blocking(move || drop(gw)).await.expect("stop");
}

#[tokio::test]
async fn the_api_can_have_a_listener_of_its_own() {
    let upstream = default_mock();
    let admin = dead_address();
    let gw = gateway(&format!(
        "server: {{admin_listen: \"{admin}\"}}\nproviders:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    asbru::server::wait_ready(admin).expect("the admin listener answers /health");
    assert_eq!(
        call(&gw, "GET", "/api/version", "").await.status(),
        404,
        "not on the main listener"
    );
    assert_eq!(send(admin, "GET", "/api/version", &[], b"").await.status(), 200);
    let chat = br#"{"model":"openai/gpt-4o","messages":[]}"#;
    assert_eq!(
        send(admin, "POST", "/v1/chat/completions", &[], chat).await.status(),
        404,
        "no inference there"
    );
    assert_eq!(
        send(gw.addr, "POST", "/v1/chat/completions", &[], chat).await.status(),
        200
    );
    assert_eq!(send(admin, "GET", "/metrics", &[], b"").await.status(), 200);
}

#[tokio::test]
async fn auth_settings_merge_and_never_lock_operators_out() {
    let dir = data_dir("auth-merge");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = stored_gateway(&dir);
    let refused = call(&gw, "PUT", "/api/config", r#"{"auth_config":{"is_enabled":true}}"#).await;
    assert_eq!(refused.status(), 400, "{}", refused.text());
    assert!(refused.text().contains("admin_username"), "{}", refused.text());
    assert_eq!(call(&gw, "GET", "/api/version", "").await.status(), 200, "still open");
    let on = call(
        &gw,
        "PUT",
        "/api/config",
        r#"{"auth_config":{"is_enabled":true,"admin_username":"admin","admin_password":"s3cret"}}"#,
    )
    .await;
    assert_eq!(on.status(), 200, "{}", on.text());
    assert_eq!(call(&gw, "GET", "/api/version", "").await.status(), 401);
    // Changing one flag with blank credentials (as a form does) keeps the stored ones.
    let flag = send(
        gw.addr,
        "PUT",
        "/api/config",
        &[("authorization", BASIC)],
        br#"{"auth_config":{"is_enabled":true,"admin_username":"","admin_password":"","disable_auth_on_inference":true}}"#,
    )
    .await;
    assert_eq!(flag.status(), 200, "{}", flag.text());
    let version = send(gw.addr, "GET", "/api/version", &[("authorization", BASIC)], b"").await;
    assert_eq!(version.status(), 200, "the credentials survived: {}", version.text());
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_stored_rule_an_older_version_accepted_does_not_block_other_writes() {
    use asbru_store::backend::ConfigStore;
    let dir = data_dir("old-rule");
    let _ = std::fs::remove_dir_all(&dir);
    drop(stored_gateway(&dir));
    {
        let store: Box<dyn ConfigStore> =
            Box::new(asbru_store::backend::sqlite::SqliteStore::open(&dir.join("config.db")).expect("open"));
        let rule: asbru_config::governance::RoutingRule =
            serde_json::from_str(r#"{"id":"old","name":"old","cel_expression":"model ==","targets":[]}"#)
                .expect("rule");
        store.put(&rule).expect("stored as an older version would have");
    }
    let gw = stored_gateway(&dir);
    let team = call(&gw, "POST", "/api/governance/teams", r#"{"name":"unrelated"}"#).await;
    assert_eq!(team.status(), 200, "{}", team.text());
    let still_bad = call(
        &gw,
        "PUT",
        "/api/governance/routing-rules/old",
        r#"{"name":"old","cel_expression":"model == 'x' &&","targets":[]}"#,
    )
    .await;
    assert_eq!(still_bad.status(), 400, "{}", still_bad.text());
    assert!(still_bad.text().contains("does not parse"), "{}", still_bad.text());
    let fixed = call(
        &gw,
        "PUT",
        "/api/governance/routing-rules/old",
        r#"{"name":"old","cel_expression":"model == 'x'","targets":[]}"#,
    )
    .await;
    assert_eq!(fixed.status(), 200, "{}", fixed.text());
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_key_edit_keeps_what_it_does_not_send_and_every_redacted_secret() {
    let dir = data_dir("key-merge");
    let _ = std::fs::remove_dir_all(&dir);
    let gw = stored_gateway(&dir);
    let credentials = r#"{\"type\":\"service_account\",\"private_key\":\"-----BEGIN PRIVATE KEY-----secret\"}"#;
    let provider = format!(
        r#"{{"provider":"vertex","keys":[{{"id":"v1","name":"v","value":"","models":[],"vertex_key_config":{{"project_id":"p","region":"us-central1","auth_credentials":"{credentials}"}}}}]}}"#
    );
    let created = call(&gw, "POST", "/api/providers", &provider).await;
    assert_eq!(created.status(), 200, "{}", created.text());
    // Only the weight: everything else stays.
    let edited = call(&gw, "PUT", "/api/providers/vertex/keys/v1", r#"{"weight":2}"#).await;
    assert_eq!(edited.status(), 200, "{}", edited.text());
    // The whole redacted view sent back, as a form that round-trips it would.
    let view = call(&gw, "GET", "/api/providers/vertex/keys/v1", "").await.json();
    let view = view.get("key").cloned().unwrap_or(view);
    let shown = view["vertex_key_config"]["auth_credentials"]
        .as_str()
        .expect("shown")
        .to_string();
    assert!(shown.contains("****"), "{shown}");
    let back = call(&gw, "PUT", "/api/providers/vertex/keys/v1", &view.to_string()).await;
    assert_eq!(back.status(), 200, "{}", back.text());
    drop(gw);
    use asbru_store::backend::ConfigStore;
    let store: Box<dyn ConfigStore> =
        Box::new(asbru_store::backend::sqlite::SqliteStore::open(&dir.join("config.db")).expect("open"));
    let stored = store.provider("vertex").expect("read").expect("stored");
    let key = &stored.keys[0];
    assert_eq!(key.weight, Some(2.0));
    assert_eq!(key.models.as_deref(), Some(&[][..]), "an empty model list stays empty");
    let json = serde_json::to_value(key).expect("json");
    assert!(
        json["vertex_key_config"]["auth_credentials"]
            .as_str()
            .is_some_and(|c| c.contains("-----BEGIN PRIVATE KEY-----secret")),
        "the secret survived: {json}"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
