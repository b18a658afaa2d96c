//! AWS Bedrock end to end against the mock's Bedrock runtime, which checks every request's SigV4
//! signature: chat through Converse (whole, streamed as AWS event-stream frames, with tools),
//! embeddings through `invoke`, Anthropic clients reaching Claude on Bedrock, and boto3-style
//! clients on `/bedrock/model/{modelId}/converse(-stream)`.

use asbru_bench::mock::MockOptions;
use asbru_bench::mock_bedrock::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use asbru_providers::eventstream::EventStreamDecoder;
use serde_json::{Value, json};

use crate::support::*;

const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const REPLY: &str = "Hello from the asbru mock provider.";

/// A gateway whose `bedrock` provider points at the mock with one SigV4 key (`secret` as its
/// secret key), plus the top-level sections of `extra`.
fn bedrock_gateway(base_url: &str, secret: &str, extra: Value) -> asbru::server::RunningGateway {
    let mut config = json!({"providers": {
        "bedrock": {
            "keys": [{"name": "aws", "value": "", "models": ["*"],
                "bedrock_key_config": {"access_key": ACCESS_KEY_ID, "secret_key": secret, "region": "eu-west-1",
                    "deployments": {"claude-profile": "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-haiku"}}}],
            "network_config": {"base_url": base_url}},
        "openai": {"keys": [{"name": "oa", "value": "sk-openai", "models": ["*"]}],
            "network_config": {"base_url": base_url}}
    }});
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        for (name, value) in extra {
            match (config.get_mut(&name), value) {
                // Providers are added beside bedrock and openai.
                (Some(Value::Object(mine)), Value::Object(more)) if name == "providers" => mine.extend(more),
                (_, value) => {
                    config.insert(name, value);
                }
            }
        }
    }
    gateway(&config.to_string())
}

fn frames(body: &[u8]) -> Vec<(String, String, Value)> {
    let mut decoder = EventStreamDecoder::new();
    decoder.feed(body);
    let mut out = Vec::new();
    while let Some(frame) = decoder.next_frame() {
        let frame = frame.expect("a valid frame");
        let payload = serde_json::from_slice(&frame.payload).unwrap_or(Value::Null);
        out.push((frame.message_type, frame.kind, payload));
    }
    assert!(!decoder.has_partial(), "the stream ends on a frame boundary");
    out
}

fn streamed_text(reply: &Reply) -> String {
    sse_data(&reply.text())
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn chat_goes_through_converse_signed() {
    let upstream = default_mock();
    let gw = bedrock_gateway(&upstream.base_url(), SECRET_ACCESS_KEY, Value::Null);

    let body = json!({"model": format!("bedrock/{CLAUDE}"), "max_tokens": 40, "temperature": 0.2,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["choices"][0]["message"]["content"], REPLY);
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    // Converse's inputTokens exclude cache reads: the prompt is 11 + 3.
    assert_eq!(json["usage"]["prompt_tokens"], 14);
    assert_eq!(json["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("bedrock"));

    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");
    let authorization = seen.header("authorization").expect("signed");
    assert!(
        authorization.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/"))
            && authorization.contains("/eu-west-1/bedrock/aws4_request"),
        "{authorization}"
    );
    assert!(seen.header("x-amz-date").is_some());
    let sent: Value = serde_json::from_slice(&seen.body).expect("json");
    assert!(sent.get("model").is_none(), "the model is in the path");
    assert_eq!(sent["system"][0]["text"], "be brief");
    assert_eq!(sent["messages"][0]["content"][0]["text"], "hi");
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 40);

    // Streamed: event-stream frames become chunks, with the usage on the last one.
    let body = json!({"model": format!("bedrock/{CLAUDE}"), "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.header("content-type").as_deref(), Some("text/event-stream"));
    assert!(streamed_text(&reply).starts_with("Hello from the asbru"));
    let data = sse_data(&reply.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let last: Value = serde_json::from_str(&data[data.len() - 2]).expect("json");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(last["usage"]["completion_tokens"].as_u64().is_some_and(|n| n > 0));
    assert!(upstream.state.recorded()[1].path.ends_with("/converse-stream"));
}

#[tokio::test]
async fn tools_round_trip_whole_and_streamed() {
    let upstream = default_mock();
    let gw = bedrock_gateway(&upstream.base_url(), SECRET_ACCESS_KEY, Value::Null);
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let body = json!({"model": format!("bedrock/{CLAUDE}"), "tools": tools, "tool_choice": "required",
        "messages": [{"role": "user", "content": "weather?"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["choices"][0]["finish_reason"], "tool_calls");
    let call = &json["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["id"], "tooluse_mock_1");
    let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("")).expect("json");
    assert!(arguments.is_object());
    let sent: Value = serde_json::from_slice(&upstream.state.recorded()[0].body).expect("json");
    assert_eq!(sent["toolConfig"]["tools"][0]["toolSpec"]["name"], "get_weather");
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"any": {}}));

    // The next turn sends the call and its result back as toolUse and toolResult blocks.
    let body = json!({"model": format!("bedrock/{CLAUDE}"), "stream": true, "tools": tools,
        "messages": [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "tooluse_mock_1", "content": "sunny"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let chunks: Vec<Value> = sse_data(&reply.text())
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(serde_json::from_str::<Value>(&arguments).is_ok(), "{arguments}");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    let sent: Value = serde_json::from_slice(&upstream.state.recorded()[1].body).expect("json");
    assert_eq!(
        sent["messages"][1]["content"][0]["toolUse"]["toolUseId"],
        "tooluse_mock_1"
    );
    assert_eq!(
        sent["messages"][2]["content"][0]["toolResult"]["content"][0]["text"],
        "sunny"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_signature_check() {
    let upstream = default_mock();
    let gw = bedrock_gateway(&upstream.base_url(), "not-the-secret", Value::Null);
    let body = json!({"model": format!("bedrock/{CLAUDE}"), "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 403, "{}", reply.text());
    let text = reply.text();
    assert!(text.contains("signature"), "{text}");
    assert!(!text.contains("not-the-secret"), "secrets never reach replies");
}

#[tokio::test]
async fn profiles_arns_and_api_keys() {
    let upstream = default_mock();
    let gw = bedrock_gateway(&upstream.base_url(), SECRET_ACCESS_KEY, Value::Null);
    // A cross-region inference profile id, and a deployment mapped to an ARN.
    for (model, path) in [
        (
            "bedrock/us.anthropic.claude-3-haiku",
            "/model/us.anthropic.claude-3-haiku/converse",
        ),
        (
            "bedrock/claude-profile",
            "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Ainference-profile%2Feu.anthropic.claude-3-haiku/converse",
        ),
    ] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
        assert_eq!(reply.status(), 200, "{model}: {}", reply.text());
        let recorded = upstream.state.recorded();
        assert_eq!(recorded.last().map(|r| r.path.as_str()), Some(path));
    }

    // The management API's provider test signs a one-token Converse call the same way.
    let tested = send(
        gw.addr,
        "POST",
        "/api/providers/bedrock/test",
        &[("content-type", "application/json")],
        format!("{{\"model\":\"{CLAUDE}\"}}").as_bytes(),
    )
    .await;
    assert_eq!(tested.status(), 200, "{}", tested.text());
    assert_eq!(tested.json()["results"][0]["ok"], true, "{}", tested.text());
    assert!(
        upstream
            .state
            .recorded()
            .last()
            .is_some_and(|r| r.path.ends_with("/converse"))
    );

    // A Bedrock API key goes as a Bearer token, unsigned.
    let keyed = default_mock();
    let config = json!({"providers": {"bedrock": {"keys": [{"name": "api", "value": "bedrock-api-key-1", "models": ["*"]}],
        "network_config": {"base_url": keyed.base_url()}}}});
    let gw = gateway(&config.to_string());
    let body = json!({"model": format!("bedrock/{CLAUDE}"), "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        keyed.state.recorded()[0].header("authorization"),
        Some("Bearer bedrock-api-key-1")
    );
}

#[tokio::test]
async fn embeddings_through_invoke() {
    let upstream = default_mock();
    let gw = bedrock_gateway(&upstream.base_url(), SECRET_ACCESS_KEY, Value::Null);
    let reply = post(
        &gw,
        "/v1/embeddings",
        r#"{"model":"bedrock/amazon.titan-embed-text-v2:0","input":"hello","dimensions":256}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["data"][0]["embedding"], json!([0.125, -0.25, 0.5]));
    assert_eq!(json["usage"]["prompt_tokens"], 4);
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    let sent: Value = serde_json::from_slice(&seen.body).expect("json");
    assert_eq!(sent, json!({"inputText": "hello", "dimensions": 256}));

    let reply = post(
        &gw,
        "/v1/embeddings",
        r#"{"model":"bedrock/cohere.embed-english-v3","input":["a","b"]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["data"].as_array().map(Vec::len), Some(2));

    // Titan takes one input per call: a clear 400, nothing sent.
    let before = upstream.state.recorded().len();
    let reply = post(
        &gw,
        "/v1/embeddings",
        r#"{"model":"bedrock/amazon.titan-embed-text-v2:0","input":["a","b"]}"#,
    )
    .await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
    assert!(reply.text().contains("one input per request"));
    assert_eq!(upstream.state.recorded().len(), before);
}

/// Claude Code on Bedrock: an Anthropic client's Messages body goes to `invoke` as it was
/// sent (thinking, signatures and cache points kept), with Bedrock's `anthropic_version`, and
/// the reply comes back as Anthropic's JSON or its events, unwrapped from their frames.
#[tokio::test]
async fn anthropic_clients_reach_claude_on_bedrock() {
    let upstream = default_mock();
    let gw = bedrock_gateway(&upstream.base_url(), SECRET_ACCESS_KEY, Value::Null);
    let body = json!({"model": format!("bedrock/{CLAUDE}"), "max_tokens": 64, "system": "be brief",
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Call the tool.", "signature": "sig-1"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain",
                "cache_control": {"type": "ephemeral"}}]}]});
    let reply = post(&gw, "/anthropic/v1/messages", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["type"], "message");
    assert_eq!(json["content"][0]["text"], REPLY);
    assert_eq!(json["usage"]["cache_read_input_tokens"], 3);
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke");
    assert_eq!(seen.header("anthropic-version"), None);
    let sent: Value = serde_json::from_slice(&seen.body).expect("json");
    assert_eq!(sent["anthropic_version"], "bedrock-2023-05-31");
    assert!(sent.get("model").is_none() && sent.get("stream").is_none());
    assert_eq!(
        sent["messages"][1]["content"][0]["signature"], "sig-1",
        "thinking goes as sent"
    );
    assert_eq!(sent["messages"][2]["content"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(sent["thinking"]["budget_tokens"], 1024);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let reply = post(&gw, "/anthropic/v1/messages", &streamed.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.header("content-type").as_deref(), Some("text/event-stream"));
    let names: Vec<String> = events(&reply.text()).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    let text: String = events(&reply.text())
        .iter()
        .filter_map(|(_, data)| data["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert!(text.starts_with("Hello from the asbru"), "{text}");
    assert!(
        upstream.state.recorded()[1]
            .path
            .ends_with("/invoke-with-response-stream")
    );

    // Other models (and OpenAI clients) go through Converse.
    let llama = json!({"model": "bedrock/meta.llama3-70b-instruct-v1:0", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/anthropic/v1/messages", &llama.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["content"][0]["text"], REPLY);
    assert!(upstream.state.recorded()[2].path.ends_with("/converse"));

    // A Bedrock error reaches the Anthropic client in Anthropic's shape.
    let failing = mock(MockOptions {
        fail_first: 10,
        fail_status: 429,
        ..MockOptions::default()
    });
    let gw = bedrock_gateway(&failing.base_url(), SECRET_ACCESS_KEY, Value::Null);
    let reply = post(&gw, "/anthropic/v1/messages", &body.to_string()).await;
    assert_eq!(reply.status(), 429, "{}", reply.text());
    assert_eq!(reply.json()["type"], "error");
    assert_eq!(reply.json()["error"]["message"], "mock provider failure");
}

#[tokio::test]
async fn a_failing_stream_ends_with_an_error_never_done() {
    let upstream = mock(MockOptions {
        abort_after_chunks: Some(2),
        truncation: asbru_bench::mock::Truncation::ErrorEvent,
        ..MockOptions::default()
    });
    let gw = bedrock_gateway(&upstream.base_url(), SECRET_ACCESS_KEY, Value::Null);
    let body =
        json!({"model": format!("bedrock/{CLAUDE}"), "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    let text = reply.text();
    assert!(text.contains("mock upstream failed mid-stream"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
}

/// Signs a request as an AWS SDK would, with `access_key` (a virtual key, say) as the key id.
fn boto_headers(addr: std::net::SocketAddr, path: &str, body: &[u8], access_key: &str) -> Vec<(&'static str, String)> {
    let credentials = asbru_providers::provider::bedrock::AwsCredentials::new(access_key, "client-secret", None);
    let url = format!("http://{addr}{path}");
    asbru_providers::provider::bedrock::sign(
        &credentials,
        &asbru_providers::provider::bedrock::SignInput {
            method: "POST",
            url: &url,
            headers: &[("content-type", "application/json")],
            body,
            region: "us-east-1",
            service: "bedrock",
            time: std::time::SystemTime::now(),
            content_sha256_header: false,
        },
    )
    .expect("signed")
}

async fn converse(gw: &asbru::server::RunningGateway, path: &str, body: &Value, access_key: &str) -> Reply {
    let bytes = body.to_string().into_bytes();
    let signed = boto_headers(gw.addr, path, &bytes, access_key);
    let mut headers: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
    headers.push(("content-type", "application/json"));
    send(gw.addr, "POST", path, &headers, &bytes).await
}

#[tokio::test]
async fn the_bedrock_route_relays_and_translates() {
    let upstream = default_mock();
    let gw = bedrock_gateway(&upstream.base_url(), SECRET_ACCESS_KEY, Value::Null);
    let body =
        json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"maxTokens": 30}});
    let encoded = "anthropic.claude-3-haiku-20240307-v1%3A0";

    // A bare model id: to Bedrock as is, re-signed with the gateway's credentials.
    let reply = converse(&gw, &format!("/bedrock/model/{encoded}/converse"), &body, "AKIDCLIENT").await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["output"]["message"]["content"][0]["text"], REPLY);
    assert_eq!(json["stopReason"], "end_turn");
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, format!("/model/{encoded}/converse"));
    let sent: Value = serde_json::from_slice(&seen.body).expect("json");
    assert_eq!(sent, body, "the body goes byte for byte");
    assert!(seen.header("authorization").is_some_and(|a| a.contains(ACCESS_KEY_ID)));

    // Streamed: the event stream is relayed frame for frame.
    let reply = converse(
        &gw,
        &format!("/bedrock/model/{encoded}/converse-stream"),
        &body,
        "AKIDCLIENT",
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let got = frames(&reply.body());
    assert_eq!(got.first().map(|f| f.1.as_str()), Some("messageStart"));
    assert_eq!(got.last().map(|f| f.1.as_str()), Some("metadata"));

    // provider/model: translated to chat for OpenAI, and back as Converse.
    let reply = converse(&gw, "/bedrock/model/openai%2Fgpt-4o/converse", &body, "AKIDCLIENT").await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["output"]["message"]["content"][0]["text"], REPLY);
    assert_eq!(json["usage"]["inputTokens"], 12);
    let chat: Value = serde_json::from_slice(&upstream.state.recorded()[2].body).expect("json");
    assert_eq!(chat["model"], "gpt-4o");
    assert_eq!(chat["max_tokens"], 30);

    let reply = converse(
        &gw,
        "/bedrock/model/openai%2Fgpt-4o/converse-stream",
        &body,
        "AKIDCLIENT",
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/vnd.amazon.eventstream")
    );
    let got = frames(&reply.body());
    let kinds: Vec<&str> = got.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"messageStart"));
    assert_eq!(&kinds[kinds.len() - 2..], ["messageStop", "metadata"]);
    let text: String = got
        .iter()
        .filter_map(|f| f.2["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert!(text.starts_with("Hello from the asbru"), "{text}");

    // Errors are AWS's shape.
    let reply = converse(&gw, "/bedrock/model/m/invoke-something", &body, "AKIDCLIENT").await;
    assert_eq!(reply.status(), 404);
    assert_eq!(reply.json()["__type"], "ResourceNotFoundException");
    let reply = send(
        gw.addr,
        "POST",
        "/bedrock/model/openai%2Fgpt-4o/converse",
        &[("content-type", "application/json")],
        b"{not json",
    )
    .await;
    assert_eq!(reply.status(), 400);
    assert_eq!(reply.json()["__type"], "ValidationException");
}

#[tokio::test]
async fn a_virtual_key_rides_in_the_signature_or_a_header() {
    let upstream = default_mock();
    let gw = bedrock_gateway(
        &upstream.base_url(),
        SECRET_ACCESS_KEY,
        json!({"governance": {"virtual_keys": [{"id": "vk-b", "name": "B", "value": "sk-bf-boto",
            "provider_configs": [{"provider": "bedrock", "weight": 1}]}]},
            "client": {"enforce_auth_on_inference": true}}),
    );
    let body = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let path = "/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
    let refused = converse(&gw, path, &body, "AKIDCLIENT").await;
    assert_eq!(refused.status(), 401, "{}", refused.text());
    assert!(refused.json()["__type"].as_str().is_some());
    let reply = converse(&gw, path, &body, "sk-bf-boto").await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let bytes = body.to_string().into_bytes();
    let reply = send(
        gw.addr,
        "POST",
        path,
        &[("content-type", "application/json"), ("x-bf-vk", "sk-bf-boto")],
        &bytes,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    // The virtual key never goes upstream.
    assert!(
        upstream
            .state
            .recorded()
            .iter()
            .all(|r| r.headers.iter().all(|(_, v)| !v.contains("sk-bf-boto")))
    );
}

/// A budgeted request with no output limit goes to Bedrock (and Cohere, and Anthropic) with the
/// limit its reservation assumed, so the provider cannot bill past it.
#[tokio::test]
async fn the_reserved_output_limit_reaches_translated_upstreams() {
    let upstream = default_mock();
    let mut gw_config = json!({"governance": {"virtual_keys": [{"id": "vk-cap", "name": "Cap", "value": "sk-bf-cap",
            "budgets": [{"max_limit": 10, "reset_duration": "1d"}],
            "provider_configs": [{"provider": "bedrock", "weight": 1}, {"provider": "cohere", "weight": 1}, {"provider": "anthropic", "weight": 1}]}]},
        "client": {"default_max_output_tokens": 512}});
    let providers = json!({
        "cohere": {"keys": [{"name": "co", "value": "co-key", "models": ["*"]}], "network_config": {"base_url": upstream.base_url()}},
        "anthropic": {"keys": [{"name": "an", "value": "an-key", "models": ["*"]}], "network_config": {"base_url": upstream.base_url()}}
    });
    gw_config["providers"] = providers;
    let gw = bedrock_gateway(&upstream.base_url(), SECRET_ACCESS_KEY, gw_config);
    for (model, cap) in [
        (format!("bedrock/{CLAUDE}"), "/inferenceConfig/maxTokens"),
        ("cohere/command-r".to_string(), "/max_tokens"),
        ("anthropic/claude-3-5-haiku".to_string(), "/max_tokens"),
    ] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let reply = send(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            &[("x-bf-vk", "sk-bf-cap")],
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(reply.status(), 200, "{model}: {}", reply.text());
        let recorded = upstream.state.recorded();
        let sent: Value = serde_json::from_slice(&recorded.last().expect("sent").body).expect("json");
        assert_eq!(sent.pointer(cap), Some(&json!(512)), "{model}: {sent}");
    }
}

/// A key's regional host is a name to resolve (here `localhost`), like any provider host.
#[tokio::test]
async fn key_hosts_are_resolved() {
    let upstream = default_mock();
    let port = upstream.base_url().rsplit(':').next().unwrap_or_default().to_string();
    let gw = bedrock_gateway(&format!("http://localhost:{port}"), SECRET_ACCESS_KEY, Value::Null);
    let body = json!({"model": format!("bedrock/{CLAUDE}"), "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    // The host is signed as sent, port included (the mock checks it).
    assert_eq!(
        upstream.state.recorded()[0].header("host").map(str::to_string),
        Some(format!("localhost:{port}"))
    );
}

/// Converse conversations start with a user turn, whatever the chat history starts with.
#[tokio::test]
async fn a_conversation_opening_with_the_assistant_gets_a_user_turn() {
    let upstream = default_mock();
    let gw = bedrock_gateway(&upstream.base_url(), SECRET_ACCESS_KEY, Value::Null);
    let body = json!({"model": format!("bedrock/{CLAUDE}"), "messages": [
        {"role": "system", "content": "be nice"},
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let sent: Value = serde_json::from_slice(&upstream.state.recorded()[0].body).expect("json");
    assert_eq!(sent["messages"][0]["role"], "user");
    assert_eq!(sent["messages"][1]["content"][0]["text"], "How can I help?");
}

/// An upstream that echoes the request's credentials in its error: the AWS access key id (and
/// anything else of the key's credentials) is scrubbed before the client sees the reply.
#[tokio::test]
async fn echoed_aws_credentials_are_scrubbed() {
    let upstream = mock(MockOptions {
        fail_first: 10,
        fail_status: 403,
        echo_auth_on_failure: true,
        ..MockOptions::default()
    });
    let gw = bedrock_gateway(&upstream.base_url(), SECRET_ACCESS_KEY, Value::Null);
    let body = json!({"model": format!("bedrock/{CLAUDE}"), "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 403, "{}", reply.text());
    assert!(!reply.text().contains(ACCESS_KEY_ID), "{}", reply.text());
    assert!(
        reply.head.headers.iter().all(|(_, v)| !v
            .as_bytes()
            .windows(ACCESS_KEY_ID.len())
            .any(|w| w == ACCESS_KEY_ID.as_bytes())),
        "no header carries it"
    );
}
