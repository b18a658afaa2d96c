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
    std::fs::write(
        &broken,
        "server:\n  listen: 127.0.0.1:8080\nprovders:\n  openai: {}\n",
    )
    .expect("write");
    let out = asbru()
        .args(["check", "--config"])
        .arg(&broken)
        .output()
        .expect("run");
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

    let fine = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/demo.yaml");
    let out = asbru()
        .args(["check", "--config"])
        .arg(&fine)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = asbru()
        .args(["serve", "--config"])
        .arg(&broken)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.yaml:1:"));
    let _ = std::fs::remove_dir_all(&dir);
}
