//! The rest of OpenAI's API through the gateway, against the mock: speech (a binary body relayed
//! as it streams), transcriptions and translations (multipart, only the model field rewritten),
//! image generations, moderations, and files and batches, which belong to the key that created
//! them. Providers without these APIs answer Bifrost's "unsupported operation".

use serde_json::{Value, json};

use crate::support::*;

const BOUNDARY: &str = "asbru-test-boundary";

fn form(model: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut field = |name: &str, value: &str| {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    };
    field("model", model);
    for (name, value) in extra {
        field(name, value);
    }
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hello.wav\"\r\nContent-Type: audio/wav\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(b"RIFF\x24\x00\x00\x00WAVEfmt binary\x00\xff");
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn multipart() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A gateway with two OpenAI keys (so key affinity is visible) and Anthropic, both at the mock.
fn surface_gateway(base_url: &str, extra: &str) -> asbru::server::RunningGateway {
    gateway(&format!(
        "providers:\n  openai:\n    keys:\n      - {{name: one, value: sk-one, models: [\"*\"]}}\n      - {{name: two, value: sk-two, models: [\"*\"]}}\n    network_config: {{base_url: \"{base_url}\"}}\n  anthropic:\n    keys: [{{name: an, value: sk-an, models: [\"*\"]}}]\n    network_config: {{base_url: \"{base_url}\"}}\n{extra}"
    ))
}

#[tokio::test]
async fn speech_streams_audio_through() {
    let upstream = default_mock();
    let gw = surface_gateway(&upstream.base_url(), "");
    let reply = post(
        &gw,
        "/v1/audio/speech",
        r#"{"model":"openai/tts-1","input":"Hello","voice":"alloy"}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.header("content-type").as_deref(), Some("audio/mpeg"));
    assert_eq!(reply.body(), asbru_bench::mock_openai_media::SPEECH_CHUNKS.concat());
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v1/audio/speech");
    let sent: Value = serde_json::from_slice(&seen.body).expect("json");
    assert_eq!(sent["model"], "tts-1");
    assert_eq!(sent["voice"], "alloy");

    // Anthropic has no speech: Bifrost's unsupported operation, nothing sent.
    let reply = post(
        &gw,
        "/v1/audio/speech",
        r#"{"model":"anthropic/claude-3-5-haiku","input":"Hello","voice":"alloy"}"#,
    )
    .await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
    assert!(reply.text().contains("unsupported operation"), "{}", reply.text());
    assert_eq!(upstream.state.recorded().len(), 1);
}

#[tokio::test]
async fn transcriptions_rewrite_only_the_model_field() {
    let upstream = default_mock();
    let gw = surface_gateway(&upstream.base_url(), "");
    let content_type = multipart();
    let headers = [("content-type", content_type.as_str())];
    let body = form("openai/whisper-1", &[("language", "en")]);
    let reply = send(gw.addr, "POST", "/v1/audio/transcriptions", &headers, &body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["text"], "Hello from the asbru mock provider.");
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v1/audio/transcriptions");
    let sent = String::from_utf8_lossy(&seen.body).into_owned();
    assert!(sent.contains("name=\"model\"\r\n\r\nwhisper-1\r\n"), "{sent}");
    assert!(sent.contains("name=\"language\"\r\n\r\nen\r\n"), "{sent}");
    let audio = b"RIFF\x24\x00\x00\x00WAVEfmt binary\x00\xff".as_slice();
    assert!(
        seen.body.windows(audio.len()).any(|w| w == audio),
        "the file's bytes go as sent"
    );
    assert!(
        seen.header("content-type")
            .is_some_and(|t| t.starts_with("multipart/form-data; boundary="))
    );

    // A bare model on the drop-in route: the body goes byte for byte.
    let body = form("whisper-1", &[("response_format", "text")]);
    let reply = send(gw.addr, "POST", "/openai/v1/audio/translations", &headers, &body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.text(), "Hello from the asbru mock provider.\n");
    let seen = &upstream.state.recorded()[1];
    assert_eq!(seen.path, "/v1/audio/translations");
    assert_eq!(seen.body.as_ref(), body.as_slice());
    assert_eq!(seen.header("content-type"), Some(content_type.as_str()));

    // Not a form: a clear 400.
    let reply = send(
        gw.addr,
        "POST",
        "/v1/audio/transcriptions",
        &[("content-type", "application/json")],
        b"{}",
    )
    .await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
    assert!(reply.text().contains("multipart"), "{}", reply.text());
}

#[tokio::test]
async fn images_and_moderations() {
    let upstream = default_mock();
    let gw = surface_gateway(&upstream.base_url(), "");
    let reply = post(
        &gw,
        "/v1/images/generations",
        r#"{"model":"openai/gpt-image-1","prompt":"a cat","n":2}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["usage"]["output_tokens"], 544);
    let sent: Value = serde_json::from_slice(&upstream.state.recorded()[0].body).expect("json");
    assert_eq!(sent["model"], "gpt-image-1");

    // No model: OpenAI's default, on the drop-in route.
    let reply = post(&gw, "/openai/v1/moderations", r#"{"input":["a","b"]}"#).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(upstream.state.recorded()[1].path, "/v1/moderations");
    let reply = post(
        &gw,
        "/v1/moderations",
        r#"{"model":"openai/omni-moderation-latest","input":"hi"}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["model"], "omni-moderation-latest");
}

fn upload(purpose: &str) -> Vec<u8> {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batch.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n{{\"custom_id\":\"1\"}}\r\n--{BOUNDARY}--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn files_and_batches_stay_with_the_key_that_made_them() {
    let upstream = default_mock();
    let gw = surface_gateway(&upstream.base_url(), "");
    let content_type = multipart();
    let reply = send(
        gw.addr,
        "POST",
        "/v1/files",
        &[("content-type", content_type.as_str())],
        &upload("batch"),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let file = reply.json();
    let id = file["id"].as_str().expect("a file id").to_string();
    assert_eq!(file["purpose"], "batch");
    let key = upstream.state.recorded()[0]
        .header("authorization")
        .map(str::to_string)
        .expect("a key");
    // Every later call on the file reaches the key that uploaded it (the mock answers 404 to
    // the other), however the keys are weighted.
    for _ in 0..8 {
        let reply = send(gw.addr, "GET", &format!("/v1/files/{id}"), &[], b"").await;
        assert_eq!(reply.status(), 200, "{}", reply.text());
    }
    let content = send(gw.addr, "GET", &format!("/v1/files/{id}/content"), &[], b"").await;
    assert_eq!(content.status(), 200, "{}", content.text());
    assert_eq!(content.text(), "{\"custom_id\":\"1\"}\n");
    assert!(
        upstream
            .state
            .recorded()
            .iter()
            .all(|r| r.header("authorization") == Some(key.as_str()))
    );

    // A batch over the file, on the same key; read and cancelled there.
    let batch = json!({"input_file_id": id, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let reply = post(&gw, "/v1/batches", &batch.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let batch_id = reply.json()["id"].as_str().expect("a batch id").to_string();
    for _ in 0..4 {
        let reply = send(gw.addr, "GET", &format!("/v1/batches/{batch_id}"), &[], b"").await;
        assert_eq!(reply.status(), 200, "{}", reply.text());
    }
    let reply = send(gw.addr, "POST", &format!("/v1/batches/{batch_id}/cancel"), &[], b"").await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["status"], "cancelling");

    // Delete the file; unknown calls are 404s in OpenAI's shape.
    let reply = send(gw.addr, "DELETE", &format!("/v1/files/{id}"), &[], b"").await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["deleted"], true);
    let reply = send(gw.addr, "POST", &format!("/v1/files/{id}/cancel"), &[], b"").await;
    assert_eq!(reply.status(), 404, "{}", reply.text());
    assert!(reply.json()["error"]["message"].as_str().is_some());
}

#[tokio::test]
async fn a_budget_refuses_what_cannot_be_metered() {
    let upstream = default_mock();
    let gw = surface_gateway(
        &upstream.base_url(),
        "governance:\n  virtual_keys:\n    - {id: vk-b, name: B, value: sk-bf-budget, budgets: [{max_limit: 10, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}]}\n    - {id: vk-f, name: F, value: sk-bf-free, provider_configs: [{provider: openai, weight: 1}]}\n",
    );
    let content_type = multipart();
    let mut files = Vec::new();
    for vk in ["sk-bf-budget", "sk-bf-free"] {
        let headers = [("x-bf-vk", vk), ("content-type", content_type.as_str())];
        let reply = send(gw.addr, "POST", "/v1/files", &headers, &upload("batch")).await;
        assert_eq!(reply.status(), 200, "{}", reply.text());
        files.push(reply.json()["id"].as_str().expect("id").to_string());
    }
    let batch =
        |file: &str| json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let sent = upstream.state.recorded().len();
    let refused = send(
        gw.addr,
        "POST",
        "/v1/batches",
        &[("x-bf-vk", "sk-bf-budget")],
        batch(&files[0]).to_string().as_bytes(),
    )
    .await;
    assert_eq!(refused.status(), 400, "{}", refused.text());
    assert!(refused.text().contains("cannot meter"), "{}", refused.text());
    assert_eq!(upstream.state.recorded().len(), sent, "nothing was sent");
    let allowed = send(
        gw.addr,
        "POST",
        "/v1/batches",
        &[("x-bf-vk", "sk-bf-free")],
        batch(&files[1]).to_string().as_bytes(),
    )
    .await;
    assert_eq!(allowed.status(), 200, "{}", allowed.text());
}

/// The settled spend of a meter, in micro-dollars.
fn settled(gw: &asbru::server::RunningGateway, meter: &str) -> i64 {
    gw.state
        .registry
        .get(meter)
        .unwrap_or_else(|| panic!("no meter {meter}"))
        .settled()
}

/// Budgets meter audio and images by their units: images at their price each, speech per
/// character, transcription by the seconds the reply reports, token-billed models by the
/// tokens they report; a model with no price for its endpoint is refused under a budget.
#[tokio::test]
async fn budgets_meter_units() {
    let upstream = default_mock();
    let gw = surface_gateway(
        &upstream.base_url(),
        "governance:\n  virtual_keys:\n    - {id: vk-m, name: M, value: sk-bf-media, budgets: [{max_limit: 10, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}]}\n",
    );
    let meter = "vk:vk-m:budget:0";
    let vk = [("x-bf-vk", "sk-bf-media")];
    let spent = |before: i64| settled(&gw, meter) - before;

    let before = settled(&gw, meter);
    let body = r#"{"model":"openai/dall-e-3","prompt":"a cat","n":2}"#;
    let reply = send(gw.addr, "POST", "/v1/images/generations", &vk, body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(spent(before), 80_000, "two images at $0.04");

    let before = settled(&gw, meter);
    let body = r#"{"model":"openai/gpt-image-1","prompt":"a cat"}"#;
    let reply = send(gw.addr, "POST", "/v1/images/generations", &vk, body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(spent(before), 10 * 5 + 272 * 40, "the tokens the reply reports");

    let before = settled(&gw, meter);
    let body = r#"{"model":"openai/tts-1","input":"Hello","voice":"alloy"}"#;
    let reply = send(gw.addr, "POST", "/v1/audio/speech", &vk, body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(spent(before), 75, "five characters at $15 per million");

    let before = settled(&gw, meter);
    let content_type = multipart();
    let headers = [("x-bf-vk", "sk-bf-media"), ("content-type", content_type.as_str())];
    let reply = send(
        gw.addr,
        "POST",
        "/v1/audio/transcriptions",
        &headers,
        &form("openai/whisper-1", &[]),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(spent(before), 300, "three seconds at $0.006 a minute");

    // Moderations are free, and counted.
    let before = settled(&gw, meter);
    let body = r#"{"model":"openai/omni-moderation-latest","input":"hi"}"#;
    let reply = send(gw.addr, "POST", "/v1/moderations", &vk, body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(spent(before), 0);

    // No price for the endpoint: refused under the budget, before anything is sent.
    let sent = upstream.state.recorded().len();
    let body = r#"{"model":"openai/tts-unpriced","input":"Hello","voice":"alloy"}"#;
    let reply = send(gw.addr, "POST", "/v1/audio/speech", &vk, body.as_bytes()).await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
    assert!(reply.text().contains("no price for this endpoint"), "{}", reply.text());
    assert_eq!(upstream.state.recorded().len(), sent);
    // Without a budget it goes through (counted as unpriced).
    let reply = post(&gw, "/v1/audio/speech", body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
}

/// Azure OpenAI serves the same APIs on its deployment paths.
#[tokio::test]
async fn azure_deployments_serve_audio_and_images() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n  azure:\n    keys:\n      - {{name: az, value: az-key, models: [\"*\"], azure_key_config: {{endpoint: \"{}\", api_version: \"2025-01-01\"}}}}\n",
        upstream.base_url()
    ));
    let reply = post(
        &gw,
        "/v1/images/generations",
        r#"{"model":"azure/dall-e-3","prompt":"a cat"}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let seen = &upstream.state.recorded()[0];
    assert_eq!(
        seen.path,
        "/openai/deployments/dall-e-3/images/generations?api-version=2025-01-01"
    );
    assert_eq!(seen.header("api-key"), Some("az-key"));
    let content_type = multipart();
    let reply = send(
        gw.addr,
        "POST",
        "/v1/audio/transcriptions",
        &[("content-type", content_type.as_str())],
        &form("azure/whisper", &[]),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        upstream.state.recorded()[1].path,
        "/openai/deployments/whisper/audio/transcriptions?api-version=2025-01-01"
    );
    // Azure has no moderations endpoint.
    let reply = post(&gw, "/v1/moderations", r#"{"model":"azure/omni","input":"hi"}"#).await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
    assert!(reply.text().contains("unsupported operation"), "{}", reply.text());
}

/// Virtual keys are tenants: one's files and batches do not exist for another, lists show each
/// its own, a batch may only run on the caller's file, and a batch's output file belongs to
/// the batch's caller.
#[tokio::test]
async fn tenants_see_only_their_own_files_and_batches() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n  openai:\n    keys: [{{name: one, value: sk-one, models: [\"*\"]}}]\n    network_config: {{base_url: \"{}\"}}\ngovernance:\n  virtual_keys:\n    - {{id: vk-a, name: A, value: sk-bf-tenant-a, provider_configs: [{{provider: openai, weight: 1}}]}}\n    - {{id: vk-b, name: B, value: sk-bf-tenant-b, provider_configs: [{{provider: openai, weight: 1}}]}}\n",
        upstream.base_url()
    ));
    let content_type = multipart();
    let as_a = [("x-bf-vk", "sk-bf-tenant-a"), ("content-type", content_type.as_str())];
    let a = [("x-bf-vk", "sk-bf-tenant-a")];
    let b = [("x-bf-vk", "sk-bf-tenant-b")];
    let reply = send(gw.addr, "POST", "/v1/files", &as_a, &upload("batch")).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let file = reply.json()["id"].as_str().expect("id").to_string();

    assert_eq!(
        send(gw.addr, "GET", &format!("/v1/files/{file}"), &a, b"")
            .await
            .status(),
        200
    );
    let stolen = send(gw.addr, "GET", &format!("/v1/files/{file}/content"), &b, b"").await;
    assert_eq!(stolen.status(), 404, "{}", stolen.text());
    let deleted = send(gw.addr, "DELETE", &format!("/v1/files/{file}"), &b, b"").await;
    assert_eq!(deleted.status(), 404, "{}", deleted.text());
    // The account's list, narrowed to each tenant's own.
    let listed = |reply: Reply| -> Vec<String> {
        reply.json()["data"]
            .as_array()
            .map(|d| d.iter().filter_map(|f| f["id"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        listed(send(gw.addr, "GET", "/v1/files", &a, b"").await),
        vec![file.clone()]
    );
    assert!(listed(send(gw.addr, "GET", "/v1/files", &b, b"").await).is_empty());
    // An id no tenant was seen to create does not exist for a tenant.
    let unknown = send(gw.addr, "GET", "/v1/files/file-elsewhere", &b, b"").await;
    assert_eq!(unknown.status(), 404, "{}", unknown.text());

    // B cannot run a batch on A's file; A can, and the batch's output file is A's.
    let batch = json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let refused = send(gw.addr, "POST", "/v1/batches", &b, batch.to_string().as_bytes()).await;
    assert_eq!(refused.status(), 404, "{}", refused.text());
    let created = send(gw.addr, "POST", "/v1/batches", &a, batch.to_string().as_bytes()).await;
    assert_eq!(created.status(), 200, "{}", created.text());
    let output = created.json()["output_file_id"].as_str().expect("output").to_string();
    let read = send(gw.addr, "GET", &format!("/v1/files/{output}/content"), &a, b"").await;
    assert_eq!(read.status(), 200, "{}", read.text());
    let stolen = send(gw.addr, "GET", &format!("/v1/files/{output}/content"), &b, b"").await;
    assert_eq!(stolen.status(), 404, "{}", stolen.text());
}

#[tokio::test]
async fn forms_and_defaults() {
    let upstream = default_mock();
    let gw = surface_gateway(&upstream.base_url(), "");
    // Two model fields: which one runs would be the upstream's guess.
    let content_type = multipart();
    let mut body = form("openai/whisper-1", &[("model", "openai/gpt-4o-transcribe")]);
    let reply = send(
        gw.addr,
        "POST",
        "/v1/audio/transcriptions",
        &[("content-type", content_type.as_str())],
        &body,
    )
    .await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
    assert!(upstream.state.recorded().is_empty());
    body.clear();
    // A moderation with no model on /v1: OpenAI's default model.
    let reply = post(&gw, "/v1/moderations", r#"{"input":"hi"}"#).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("openai"));
}

/// What a budget counts must be what the provider reads: members named twice, or of the wrong
/// type, are refused; a form's model may hold no control character.
#[tokio::test]
async fn ambiguous_bodies_are_refused() {
    let upstream = default_mock();
    let gw = surface_gateway(&upstream.base_url(), "");
    for (path, body) in [
        (
            "/v1/images/generations",
            r#"{"model":"openai/dall-e-3","n":1,"n":20,"prompt":"x"}"#,
        ),
        (
            "/v1/images/generations",
            r#"{"model":"openai/dall-e-3","n":"20","prompt":"x"}"#,
        ),
        (
            "/v1/images/generations",
            r#"{"model":"openai/dall-e-3","n":-1,"prompt":"x"}"#,
        ),
        (
            "/v1/audio/speech",
            r#"{"model":"openai/tts-1","voice":"alloy","input":"a","input":"long"}"#,
        ),
        (
            "/v1/batches",
            r#"{"input_file_id":"file-a","input_file_id":"file-b","endpoint":"/v1/chat/completions","completion_window":"24h"}"#,
        ),
    ] {
        let reply = post(&gw, path, body).await;
        assert_eq!(reply.status(), 400, "{path} {body}: {}", reply.text());
    }
    let content_type = multipart();
    let reply = send(
        gw.addr,
        "POST",
        "/v1/audio/transcriptions",
        &[("content-type", content_type.as_str())],
        &form("openai/whisper\u{1}", &[]),
    )
    .await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
    assert!(upstream.state.recorded().is_empty(), "nothing was sent");
}
