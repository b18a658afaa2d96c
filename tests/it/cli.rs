//! The binary as a user runs it.

use std::process::Command;

fn asbru() -> Command {
    Command::new(env!("CARGO_BIN_EXE_asbru"))
}

#[test]
fn check_reports_line_and_column() {
    let dir = std::env::temp_dir().join(format!("asbru-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let broken = dir.join("broken.yaml");
    std::fs::write(&broken, "server:\n  listen: 127.0.0.1:8080\nprovders:\n  openai: {}\n").expect("write");
    let out = asbru().args(["check", "--config"]).arg(&broken).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.yaml:3:"), "{stderr}");
    assert!(stderr.contains("provders"), "{stderr}");

    let semantic = dir.join("semantic.json");
    std::fs::write(&semantic, "{\n  \"providers\": {\n    \"openai\": {\"network_config\": {\"base_url\": \"ftp://x\"}},\n    \"madeup\": {}\n  }\n}\n").expect("write");
    let out = asbru()
        .args(["check", "--config"])
        .arg(&semantic)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("semantic.json:4:"), "{stderr}");
    assert!(stderr.contains("semantic.json:3:"), "{stderr}");
    assert!(stderr.contains("2 problem(s)"), "{stderr}");

    for fine in ["conf/demo.yaml", "conf/governance.yaml", "conf/quickstart.yaml"] {
        let fine = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(fine);
        let out = asbru().args(["check", "--config"]).arg(&fine).output().expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("not acted on"), "{}: {stderr}", fine.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_file_and_version() {
    let out = asbru()
        .args(["check", "--config", "/nonexistent/asbru.yaml"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    let out = asbru().arg("version").output().expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("asbru "));
}

#[test]
fn serve_refuses_an_invalid_config() {
    let dir = std::env::temp_dir().join(format!("asbru-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let broken = dir.join("bad.yaml");
    std::fs::write(&broken, "server: {listen: nowhere}\n").expect("write");
    let out = asbru().args(["serve", "--config"]).arg(&broken).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.yaml:1:"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

#[test]
fn serve_without_a_file_starts_on_defaults_and_honours_asbru_listen() {
    let addr = free_addr();
    let child = asbru()
        .arg("serve")
        .env("ASBRU_LISTEN", addr.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let _guard = Child(child);
    asbru::server::wait_ready(addr).expect("gateway answers /health");
}

#[tokio::test]
async fn demo_config_works_offline() {
    let addr = free_addr();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/demo.yaml");
    let child = asbru()
        .args(["serve", "--config"])
        .arg(&demo)
        .args(["--listen", &addr.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let _guard = Child(child);
    asbru::server::wait_ready(addr).expect("gateway answers /health");
    let body = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let mut reply = None;
    // The in-process mock starts alongside the gateway; give it a moment to bind.
    for _ in 0..100 {
        let r = crate::support::send(addr, "POST", "/v1/chat/completions", &[], body).await;
        if r.status() == 200 {
            reply = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reply = reply.expect("the demo answers 200");
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello from the asbru mock provider."
    );
}

#[test]
fn migrate_creates_upgrades_and_refuses_bad_files() {
    let dir = std::env::temp_dir().join(format!("asbru-migrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("deep").join("config.db");
    let config = dir.join("store.yaml");
    std::fs::write(
        &config,
        format!(
            "config_store:\n  enabled: true\n  type: sqlite\n  config: {{path: \"{}\"}}\n",
            db.display()
        ),
    )
    .expect("write");
    for _ in 0..2 {
        let out = asbru()
            .args(["migrate", "--config"])
            .arg(&config)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains(&format!("schema version {}", asbru_store::backend::latest_version()))
        );
    }
    assert!(db.exists());

    std::fs::write(&db, vec![b'x'; 4096]).expect("corrupt");
    let out = asbru()
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a usable SQLite database"));

    let disabled = dir.join("off.yaml");
    std::fs::write(&disabled, "config_store: {enabled: false}\n").expect("write");
    let out = asbru()
        .args(["migrate", "--config"])
        .arg(&disabled)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("disabled"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// At trace level, nothing the gateway logs carries the provider key or the virtual key.
#[tokio::test]
async fn trace_logs_carry_no_secret() {
    let upstream = crate::support::default_mock();
    let addr = free_addr();
    let dir = std::env::temp_dir().join(format!("asbru-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("trace.yaml");
    let provider_key = "sk-provider-secret-4242424242";
    let virtual_key = "sk-bf-trace-secret-8686868686";
    std::fs::write(
        &config,
        format!(
            "config_store: {{enabled: false}}\nproviders:\n  openai:\n    keys: [{{value: {provider_key}}}]\n    network_config: {{base_url: \"{}\"}}\ngovernance:\n  virtual_keys:\n    - {{id: vk, name: V, value: {virtual_key}, provider_configs: [{{provider: openai, weight: 1}}]}}\n",
            upstream.base_url()
        ),
    )
    .expect("write");
    let log = dir.join("trace.log");
    let child = asbru()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &addr.to_string()])
        .env("ASBRU_LOG", "trace")
        .stdout(std::fs::File::create(&log).expect("log file"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let guard = Child(child);
    asbru::server::wait_ready(addr).expect("gateway answers /health");
    let body = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = crate::support::send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {virtual_key}"))],
        body,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    drop(guard);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.lines().count() > 5, "trace logging produced output: {text}");
    assert!(!text.contains(provider_key), "provider key in the trace log");
    assert!(!text.contains(virtual_key), "virtual key in the trace log");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A SIGINT during a long graceful stop ends the process at once.
#[test]
fn an_interrupt_ends_a_long_graceful_stop() {
    let addr = free_addr();
    let dir = std::env::temp_dir().join(format!("asbru-sigint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("grace.yaml");
    std::fs::write(
        &config,
        "server: {grace_period_seconds: 3600, graceful_shutdown_timeout_seconds: 3600}\nconfig_store: {enabled: false}\n",
    )
    .expect("write");
    let child = asbru()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &addr.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut guard = Child(child);
    asbru::server::wait_ready(addr).expect("gateway answers /health");
    let pid = guard.0.id().to_string();
    let signal = |name: &str| {
        std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill runs")
    };
    assert!(signal("-TERM").success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(signal("-INT").success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = guard.0.try_wait().expect("wait") {
            exited = Some(status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(exited.is_some(), "the process still runs 5 s after SIGINT");
    let _ = std::fs::remove_dir_all(&dir);
}
