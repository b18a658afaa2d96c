//! The OpenAI Responses API and legacy `/v1/completions` end to end against the mock: passed
//! through to OpenAI (whole and streamed, charged from the reply's usage), translated to chat for
//! Anthropic, Gemini and chat-only OpenAI-wire providers, stored-response calls reaching the key
//! that created the response, and the refusals a chat provider needs.

use serde_json::{Value, json};

use crate::support::*;

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// The text of every `response.output_text.delta` event, joined.
fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .filter_map(|(_, data)| data["delta"].as_str())
        .collect()
}

/// Every event's `type` matches its SSE name and `sequence_number` counts up from 0.
fn assert_well_formed(events: &[(String, Value)]) {
    for (at, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "event {at}: {data}");
        assert_eq!(data["sequence_number"], at as u64, "event {at}: {data}");
    }
}

fn sent_body(upstream: &asbru_bench::mock::MockHandle, at: usize) -> Value {
    serde_json::from_slice(&upstream.state.recorded()[at].body).expect("json body")
}

fn providers(upstream: &asbru_bench::mock::MockHandle) -> String {
    let base = upstream.base_url();
    format!(
        "providers:\n  openai:\n    keys: [{{name: o, value: sk-openai-1}}]\n    network_config: {{base_url: \"{base}\"}}\n  anthropic:\n    keys: [{{name: a, value: sk-ant-1}}]\n    network_config: {{base_url: \"{base}\"}}\n  gemini:\n    keys: [{{name: g, value: gm-key-1}}]\n    network_config: {{base_url: \"{base}\"}}\n{}",
        provider_yaml("groq", &base, "")
    )
}

const PRICED: &str = "governance:\n  pricing_overrides:\n    - {provider: openai, model: gpt-4o, input_cost_per_token: 0, output_cost_per_token: 0.0001}\n    - {provider: openai, model: gpt-3.5-turbo-instruct, input_cost_per_token: 0, output_cost_per_token: 0.0001}\n    - {provider: anthropic, model: claude-3-5-haiku, input_cost_per_token: 0, output_cost_per_token: 0.0001}\n  virtual_keys:\n    - {id: vk-r, name: R, value: sk-bf-r, budgets: [{max_limit: 10, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}, {provider: anthropic, weight: 1}]}\n";

async fn post_vk(gw: &asbru::server::RunningGateway, path: &str, body: &str) -> Reply {
    send(gw.addr, "POST", path, &[("x-bf-vk", "sk-bf-r")], body.as_bytes()).await
}

#[tokio::test]
async fn responses_pass_through_to_openai_and_are_charged_from_usage() {
    let upstream = default_mock();
    let gw = gateway(&format!("{}{PRICED}", providers(&upstream)));
    let settled = || {
        gw.state
            .registry
            .get("vk:vk-r:budget:0")
            .expect("the key's budget meter")
            .settled()
    };
    let body = r#"{"model":"openai/gpt-4o","input":"hi","instructions":"Be brief.","max_output_tokens":50,"reasoning":{"effort":"low"}}"#;
    let reply = post_vk(&gw, "/v1/responses", body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["object"], "response");
    assert_eq!(json["status"], "completed");
    assert_eq!(
        json["output"][0]["content"][0]["text"],
        "Hello from the asbru mock provider."
    );
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("openai"));
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v1/responses");
    assert_eq!(seen.header("authorization"), Some("Bearer sk-openai-1"));
    let sent = sent_body(&upstream, 0);
    assert_eq!(sent["model"], "gpt-4o", "only the model is rewritten");
    assert_eq!(sent["reasoning"]["effort"], "low");
    assert_eq!(sent["max_output_tokens"], 50);
    assert_eq!(sent["instructions"], "Be brief.");
    // 6 output tokens at 100 µ$.
    assert_eq!(settled(), 600);

    let stream = r#"{"model":"openai/gpt-4o","input":"hi","stream":true}"#;
    let reply = post_vk(&gw, "/v1/responses", stream).await;
    assert_eq!(reply.status(), 200);
    let events = events(&reply.text());
    assert_eq!(events.first().map(|e| e.0.as_str()), Some("response.created"));
    assert_eq!(
        events.last().map(|e| e.0.as_str()),
        Some("response.completed"),
        "{events:?}"
    );
    assert_eq!(streamed_text(&events), "Hello from the asbru mock");
    // The final event's 5 output tokens.
    assert_eq!(settled(), 600 + 500);

    // The `/openai` prefixed route reaches OpenAI with a bare model.
    let reply = post_vk(&gw, "/openai/v1/responses", r#"{"model":"gpt-4o","input":"hi"}"#).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(settled(), 600 + 500 + 600);
}

#[tokio::test]
async fn responses_translate_to_anthropic_whole_and_streamed() {
    let upstream = default_mock();
    let gw = gateway(&format!("{}{PRICED}", providers(&upstream)));
    let body = r#"{"model":"anthropic/claude-3-5-haiku","instructions":"Be brief.","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}],"max_output_tokens":64,"store":false}"#;
    let reply = post_vk(&gw, "/v1/responses", body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["object"], "response");
    assert_eq!(json["status"], "completed");
    assert!(json["id"].as_str().is_some_and(|id| id.starts_with("resp_")), "{json}");
    assert_eq!(json["model"], "claude-3-5-haiku");
    let message = &json["output"][0];
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"][0]["type"], "output_text");
    assert_eq!(message["content"][0]["text"], "Hello from the asbru mock provider.");
    assert_eq!(
        json["output_text"],
        Value::Null,
        "output_text is an SDK convenience, not wire"
    );
    assert!(json["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0), "{json}");
    assert_eq!(json["usage"]["output_tokens"], 6);
    assert_eq!(json["store"], false);

    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v1/messages");
    let sent = sent_body(&upstream, 0);
    assert_eq!(sent["model"], "claude-3-5-haiku");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(sent["messages"][0]["role"], "user");

    let settled = gw.state.registry.get("vk:vk-r:budget:0").expect("meter").settled();
    assert_eq!(settled, 600, "charged from the translated usage");

    let stream = body.replacen("\"store\":false", "\"stream\":true", 1);
    let reply = post_vk(&gw, "/v1/responses", &stream).await;
    assert_eq!(reply.status(), 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    let events = events(&reply.text());
    assert_well_formed(&events);
    let names = names(&events);
    assert_eq!(
        &names[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(names.last().copied(), Some("response.completed"));
    assert!(names.contains(&"response.output_text.done"));
    assert!(names.contains(&"response.output_item.done"));
    assert_eq!(streamed_text(&events), "Hello from the asbru mock");
    let done = &events.last().expect("events").1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello from the asbru mock");
    assert_eq!(done["usage"]["output_tokens"], 5);
    let created = &events[0].1["response"];
    assert_eq!(created["id"], done["id"], "one id through the stream");
}

#[tokio::test]
async fn responses_function_tools_round_trip_through_anthropic_and_gemini() {
    let upstream = default_mock();
    let gw = gateway(&providers(&upstream));
    for model in ["anthropic/claude-3-5-haiku", "gemini/gemini-2.0-flash"] {
        let body = json!({"model": model, "input": "weather in Paris?",
            "tools": [{"type": "function", "name": "get_weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]});
        let reply = post(&gw, "/v1/responses", &body.to_string()).await;
        assert_eq!(reply.status(), 200, "{model}: {}", reply.text());
        let json = reply.json();
        let call = &json["output"][0];
        assert_eq!(call["type"], "function_call", "{model}: {json}");
        assert_eq!(call["name"], "get_weather");
        assert_eq!(call["arguments"], r#"{"city":"Paris"}"#);
        assert!(call["call_id"].as_str().is_some_and(|id| !id.is_empty()));

        // The tool's result goes back as a function_call_output item.
        let follow_up = json!({"model": model, "input": [
            {"role": "user", "content": "weather in Paris?"},
            {"type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": call["arguments"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]});
        let reply = post(&gw, "/v1/responses", &follow_up.to_string()).await;
        assert_eq!(reply.status(), 200, "{model}: {}", reply.text());
        let output = reply.json()["output"].clone();
        let message = output
            .as_array()
            .and_then(|items| items.iter().find(|item| item["type"] == "message"))
            .unwrap_or_else(|| panic!("{model}: no message in {output}"));
        assert_eq!(message["content"][0]["text"], "Hello from the asbru mock provider.");

        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let reply = post(&gw, "/v1/responses", &streamed.to_string()).await;
        let events = events(&reply.text());
        assert_well_formed(&events);
        let arguments: String = events
            .iter()
            .filter(|(name, _)| name == "response.function_call_arguments.delta")
            .filter_map(|(_, data)| data["delta"].as_str())
            .collect();
        assert_eq!(arguments, r#"{"city":"Paris"}"#, "{model}");
        let done = &events.last().expect("events").1;
        assert_eq!(done["type"], "response.completed");
        assert_eq!(done["response"]["output"][0]["type"], "function_call");
        assert_eq!(done["response"]["output"][0]["name"], "get_weather");
    }
    let recorded = upstream.state.recorded();
    assert_eq!(recorded[0].path, "/v1/messages");
    let sent = sent_body(&upstream, 1);
    let tool_result = sent["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|block| block["type"] == "tool_result")
        .expect("the function output became a tool_result");
    assert_eq!(tool_result["content"], "sunny");
    assert!(
        recorded[3].path.contains("gemini-2.0-flash:generateContent"),
        "{}",
        recorded[3].path
    );
}

#[tokio::test]
async fn chat_only_openai_wire_providers_get_responses_as_chat() {
    let upstream = default_mock();
    let gw = gateway(&providers(&upstream));
    let reply = post(&gw, "/v1/responses", r#"{"model":"groq/llama-3.3-70b","input":"hi"}"#).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        reply.json()["output"][0]["content"][0]["text"],
        "Hello from the asbru mock provider."
    );
    let seen = &upstream.state.recorded()[0];
    assert!(seen.path.ends_with("/chat/completions"), "{}", seen.path);
    let sent = sent_body(&upstream, 0);
    assert_eq!(sent["messages"][0], json!({"role": "user", "content": "hi"}));
}

#[tokio::test]
async fn state_and_builtin_tools_are_refused_for_chat_providers_in_openai_shape() {
    let upstream = default_mock();
    let gw = gateway(&providers(&upstream));
    for body in [
        r#"{"model":"anthropic/claude","input":"hi","store":true}"#,
        r#"{"model":"anthropic/claude","input":"hi","previous_response_id":"resp_123"}"#,
        r#"{"model":"gemini/gemini-2.0-flash","input":"hi","tools":[{"type":"web_search_preview"}]}"#,
        r#"{"model":"anthropic/claude","input":"hi","background":true}"#,
    ] {
        let reply = post(&gw, "/v1/responses", body).await;
        assert_eq!(reply.status(), 400, "{body}: {}", reply.text());
        let json = reply.json();
        assert_eq!(json["error"]["type"], "invalid_request_error", "{json}");
        assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let reply = post(&gw, "/v1/responses", r#"{"model":"openai/gpt-4o","input":"#).await;
    assert_eq!(reply.status(), 400);
    assert!(reply.json()["error"]["message"].is_string());
    assert!(
        upstream.state.recorded().is_empty(),
        "nothing refused reached a provider"
    );
}

#[tokio::test]
async fn stored_responses_reach_the_key_that_created_them() {
    let upstream = default_mock();
    let base = upstream.base_url();
    let gw = gateway(&format!(
        "providers:\n  openai:\n    keys:\n      - {{name: k1, value: sk-openai-1, weight: 1}}\n      - {{name: k2, value: sk-openai-2, weight: 1}}\n      - {{name: k3, value: sk-openai-3, weight: 1}}\n    network_config: {{base_url: \"{base}\"}}\n{PRICED}"
    ));
    let meter = || gw.state.registry.get("vk:vk-r:budget:0").expect("meter").settled();
    let mut created = Vec::new();
    for _ in 0..12 {
        let reply = post_vk(&gw, "/v1/responses", r#"{"model":"openai/gpt-4o","input":"hi"}"#).await;
        assert_eq!(reply.status(), 200, "{}", reply.text());
        created.push(reply.json()["id"].as_str().expect("id").to_string());
    }
    let keys: std::collections::HashSet<String> = upstream
        .state
        .recorded()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert!(keys.len() > 1, "the weighted keys spread the creates: {keys:?}");
    let charged = meter();

    for id in &created {
        let reply = send(
            gw.addr,
            "GET",
            &format!("/v1/responses/{id}"),
            &[("x-bf-vk", "sk-bf-r")],
            b"",
        )
        .await;
        assert_eq!(reply.status(), 200, "GET {id}: {}", reply.text());
        assert_eq!(reply.json()["id"], id.as_str());
    }
    let vk = [("x-bf-vk", "sk-bf-r")];
    let first = &created[0];
    let items = send(
        gw.addr,
        "GET",
        &format!("/v1/responses/{first}/input_items?limit=5"),
        &vk,
        b"",
    )
    .await;
    assert_eq!(items.status(), 200, "{}", items.text());
    assert_eq!(items.json()["object"], "list");
    let seen = upstream.state.recorded();
    let last = seen.last().expect("recorded");
    assert_eq!(
        last.path,
        format!("/v1/responses/{first}/input_items?limit=5"),
        "the client's query goes along"
    );

    let cancel = send(
        gw.addr,
        "POST",
        &format!("/v1/responses/{}/cancel", created[1]),
        &vk,
        b"",
    )
    .await;
    assert_eq!(cancel.status(), 200, "{}", cancel.text());
    assert_eq!(cancel.json()["status"], "cancelled");
    assert_eq!(meter(), charged, "stored-response calls are not charged");

    // A follow-up turn goes to the key holding the previous response.
    let owner = |id: &str| {
        let recorded = upstream.state.recorded();
        recorded
            .iter()
            .find(|r| r.method == "GET" && r.path == format!("/v1/responses/{id}"))
            .and_then(|r| r.header("authorization").map(str::to_string))
            .expect("the GET was recorded")
    };
    for id in &created[2..6] {
        let body = json!({"model": "openai/gpt-4o", "input": "and then?", "previous_response_id": id});
        let before = upstream.state.recorded().len();
        let reply = post_vk(&gw, "/v1/responses", &body.to_string()).await;
        assert_eq!(reply.status(), 200, "{}", reply.text());
        let recorded = upstream.state.recorded();
        assert_eq!(recorded.len(), before + 1);
        assert_eq!(
            recorded[before].header("authorization").map(str::to_string),
            Some(owner(id)),
            "the follow-up to {id} used its key"
        );
    }

    let deleted = send(gw.addr, "DELETE", &format!("/v1/responses/{first}"), &vk, b"").await;
    assert_eq!(deleted.status(), 200, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"], true);
    assert_eq!(meter(), charged + 4 * 600, "only the four follow-up turns were charged");
    let gone = send(gw.addr, "GET", &format!("/v1/responses/{first}"), &vk, b"").await;
    assert_eq!(gone.status(), 404, "{}", gone.text());
    assert_eq!(gone.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn stored_response_routes_check_methods_and_ids() {
    let upstream = default_mock();
    let gw = gateway(&providers(&upstream));
    let unknown = send(gw.addr, "GET", "/v1/responses/resp_never_made", &[], b"").await;
    assert_eq!(
        unknown.status(),
        404,
        "an unknown id goes to OpenAI, which does not know it"
    );
    assert!(unknown.json()["error"]["message"].is_string());

    let put = send(gw.addr, "PUT", "/v1/responses/resp_1", &[], b"{}").await;
    assert_eq!(put.status(), 405, "{}", put.text());
    assert!(
        put.header("allow")
            .is_some_and(|a| a.contains("GET") && a.contains("DELETE"))
    );

    let before = upstream.state.recorded().len();
    for path in [
        "/v1/responses/resp_1/nope",
        "/v1/responses/bad%2Fid",
        "/v1/responses/resp_1/cancel/more",
    ] {
        let reply = send(gw.addr, "GET", path, &[], b"").await;
        assert_eq!(reply.status(), 404, "{path}: {}", reply.text());
        assert!(reply.json()["error"]["message"].is_string(), "{path}");
    }
    assert_eq!(
        upstream.state.recorded().len(),
        before,
        "bad calls never reach a provider"
    );

    let get_create = send(gw.addr, "GET", "/v1/responses", &[], b"").await;
    assert_eq!(get_create.status(), 405);
}

#[tokio::test]
async fn text_completions_pass_through_to_openai_and_translate_for_anthropic() {
    let upstream = default_mock();
    let gw = gateway(&format!("{}{PRICED}", providers(&upstream)));
    let meter = || gw.state.registry.get("vk:vk-r:budget:0").expect("meter").settled();
    let body = r#"{"model":"openai/gpt-3.5-turbo-instruct","prompt":"Say hi","max_tokens":16,"logprobs":2}"#;
    let reply = post_vk(&gw, "/v1/completions", body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["object"], "text_completion");
    assert_eq!(json["choices"][0]["text"], "Hello from the asbru mock provider.");
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v1/completions");
    let sent = sent_body(&upstream, 0);
    assert_eq!(sent["model"], "gpt-3.5-turbo-instruct");
    assert_eq!(sent["logprobs"], 2, "the rest passes through");
    assert_eq!(meter(), 600);

    let stream = body.replacen("\"prompt\"", "\"stream\":true,\"prompt\"", 1);
    let reply = post_vk(&gw, "/v1/completions", &stream).await;
    assert_eq!(reply.status(), 200);
    let data = sse_data(&reply.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(text, "Hello from the asbru mock");
    assert!(
        chunks.iter().all(|c| c["usage"].is_null()),
        "the usage chunk the gateway asked for is not shown to a client that did not"
    );
    assert_eq!(meter(), 600 + 500);

    // Anthropic has no completions API: the prompt becomes one user message.
    let body = r#"{"model":"anthropic/claude-3-5-haiku","prompt":"Say hi","max_tokens":16,"stop":["\n"]}"#;
    let reply = post_vk(&gw, "/v1/completions", body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["object"], "text_completion");
    assert_eq!(json["choices"][0]["text"], "Hello from the asbru mock provider.");
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert_eq!(json["usage"]["completion_tokens"], 6);
    let sent = sent_body(&upstream, 2);
    assert_eq!(upstream.state.recorded()[2].path, "/v1/messages");
    assert_eq!(sent["messages"][0]["content"], "Say hi");
    assert_eq!(sent["max_tokens"], 16);
    assert_eq!(sent["stop_sequences"], json!(["\n"]));
    assert_eq!(meter(), 600 + 500 + 600);

    let stream = body.replacen("\"prompt\"", "\"stream\":true,\"prompt\"", 1);
    let reply = post_vk(&gw, "/v1/completions", &stream).await;
    let data = sse_data(&reply.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"), "{chunks:?}");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(text, "Hello from the asbru mock");

    let refused = post(
        &gw,
        "/v1/completions",
        r#"{"model":"anthropic/claude","prompt":["a","b"]}"#,
    )
    .await;
    assert_eq!(refused.status(), 400, "{}", refused.text());
    assert_eq!(refused.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn azure_serves_responses_on_its_v1_route_with_the_deployment_as_model() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n  azure:\n    keys:\n      - name: az\n        value: az-secret\n        aliases: {{gpt-4o: my-gpt4o-deployment}}\n        azure_key_config: {{endpoint: \"{}\", api_version: \"2024-06-01\"}}\n",
        upstream.base_url()
    ));
    let reply = post(&gw, "/v1/responses", r#"{"model":"azure/gpt-4o","input":"hi"}"#).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let id = reply.json()["id"].as_str().expect("id").to_string();
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/openai/v1/responses");
    assert_eq!(seen.header("api-key"), Some("az-secret"));
    assert_eq!(sent_body(&upstream, 0)["model"], "my-gpt4o-deployment");

    let read = send(gw.addr, "GET", &format!("/v1/responses/{id}"), &[], b"").await;
    assert_eq!(
        read.status(),
        200,
        "the stored id is remembered for Azure: {}",
        read.text()
    );
    assert_eq!(upstream.state.recorded()[1].path, format!("/openai/v1/responses/{id}"));

    let reply = post(&gw, "/v1/completions", r#"{"model":"azure/gpt-4o","prompt":"hi"}"#).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        upstream.state.recorded()[2].path,
        "/openai/deployments/my-gpt4o-deployment/completions?api-version=2024-06-01"
    );
}

#[tokio::test]
async fn cut_and_failed_responses_streams_end_in_an_error_the_sdk_raises() {
    use asbru_bench::mock::{MockOptions, Truncation};
    for truncation in [Truncation::Drop, Truncation::CleanEnd] {
        let upstream = mock(MockOptions {
            abort_after_chunks: Some(2),
            truncation,
            ..MockOptions::default()
        });
        let gw = gateway(&providers(&upstream));
        // Passed through: OpenAI's own stream, cut; the gateway ends it with an `error` event.
        let reply = post(
            &gw,
            "/v1/responses",
            r#"{"model":"openai/gpt-4o","input":"hi","stream":true}"#,
        )
        .await;
        assert_eq!(reply.status(), 200);
        let cut = events(&reply.text());
        assert_eq!(streamed_text(&cut), "Hello from");
        let last = &cut.last().expect("events").1;
        assert_eq!(last["type"], "error", "{truncation:?}: {cut:?}");
        assert!(last["message"].as_str().is_some_and(|m| !m.is_empty()));
        // The nested `error` is what makes OpenAI's SDKs raise instead of yielding the event.
        assert_eq!(last["error"]["message"], last["message"]);

        let reply = post(
            &gw,
            "/v1/responses",
            r#"{"model":"anthropic/claude","input":"hi","stream":true}"#,
        )
        .await;
        // Translated: the Anthropic stream cut; the client sees `response.failed` when the
        // upstream ended its body, or the gateway's `error` event when the connection dropped.
        let failed = events(&reply.text());
        let (last, before) = failed.split_last().expect("events");
        assert_well_formed(before);
        match last.0.as_str() {
            "response.failed" => {
                assert_eq!(last.1["response"]["status"], "failed");
                assert!(last.1["response"]["error"]["message"].is_string());
            }
            "error" => assert!(last.1["message"].is_string()),
            other => panic!("{truncation:?}: the stream ended with {other}: {failed:?}"),
        }
        assert!(!names(&failed).contains(&"response.completed"));
    }
}

#[tokio::test]
async fn upstream_errors_reach_responses_clients_in_openai_shape() {
    use asbru_bench::mock::MockOptions;
    let upstream = mock(MockOptions {
        fail_first: 2,
        fail_status: 429,
        ..MockOptions::default()
    });
    let gw = gateway(&providers(&upstream));
    for model in ["openai/gpt-4o", "anthropic/claude"] {
        let body = format!(r#"{{"model":"{model}","input":"hi"}}"#);
        let reply = post(&gw, "/v1/responses", &body).await;
        assert_eq!(reply.status(), 429, "{model}: {}", reply.text());
        let json = reply.json();
        assert!(json["error"]["message"].is_string(), "{model}: {json}");
    }
    let dead = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &format!("http://{}", dead_address()), "")
    ));
    let reply = post(&dead, "/v1/responses", r#"{"model":"openai/gpt-4o","input":"hi"}"#).await;
    assert!(reply.status() >= 500, "{}", reply.text());
    assert!(reply.json()["error"]["message"].is_string());
}

/// A custom provider configured to serve only the Responses API (as Codex models are).
fn responses_only(upstream: &asbru_bench::mock::MockHandle) -> String {
    format!(
        "providers:\n  codex:\n    keys: [{{name: c, value: sk-codex-1, models: [\"*\"]}}]\n    network_config: {{base_url: \"{}\"}}\n    custom_provider_config:\n      base_provider_type: openai\n      allowed_requests: {{responses: true, responses_stream: true}}\n",
        upstream.base_url()
    )
}

#[tokio::test]
async fn chat_clients_reach_a_responses_only_provider() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "{}governance:\n  pricing_overrides:\n    - {{provider: codex, model: gpt-5-codex, input_cost_per_token: 0, output_cost_per_token: 0.0001}}\n  virtual_keys:\n    - {{id: vk-c, name: C, value: sk-bf-c, budgets: [{{max_limit: 10, reset_duration: 1d}}], provider_configs: [{{provider: codex, weight: 1}}]}}\n",
        responses_only(&upstream)
    ));
    let meter = || gw.state.registry.get("vk:vk-c:budget:0").expect("meter").settled();
    let vk = [("x-bf-vk", "sk-bf-c")];
    let body = r#"{"model":"codex/gpt-5-codex","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"max_tokens":40}"#;
    let reply = send(gw.addr, "POST", "/v1/chat/completions", &vk, body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "Hello from the asbru mock provider."
    );
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert_eq!(json["usage"]["completion_tokens"], 6);
    let seen = &upstream.state.recorded()[0];
    assert!(seen.path.ends_with("/responses"), "{}", seen.path);
    let sent = sent_body(&upstream, 0);
    assert_eq!(sent["model"], "gpt-5-codex");
    assert_eq!(sent["instructions"], "Be brief.");
    assert_eq!(
        sent["input"][0]["content"][0],
        json!({"type": "input_text", "text": "hi"})
    );
    assert_eq!(sent["max_output_tokens"], 40);
    assert_eq!(sent["store"], false, "the chat client keeps the conversation");
    assert_eq!(meter(), 600);

    let stream = body.replacen(
        "\"max_tokens\":40",
        "\"max_tokens\":40,\"stream\":true,\"stream_options\":{\"include_usage\":true}",
        1,
    );
    let reply = send(gw.addr, "POST", "/v1/chat/completions", &vk, stream.as_bytes()).await;
    assert_eq!(reply.status(), 200);
    let data = sse_data(&reply.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from the asbru mock");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert_eq!(chunks.last().expect("chunks")["usage"]["completion_tokens"], 5);
    assert_eq!(meter(), 600 + 500);

    // Tools, whole and streamed.
    let tools = r#"{"model":"codex/gpt-5-codex","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}"#;
    let reply = send(gw.addr, "POST", "/v1/chat/completions", &vk, tools.as_bytes()).await;
    let json = reply.json();
    assert_eq!(json["choices"][0]["finish_reason"], "tool_calls", "{json}");
    let call = &json["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    let streamed = tools.replacen("\"messages\"", "\"stream\":true,\"messages\"", 1);
    let reply = send(gw.addr, "POST", "/v1/chat/completions", &vk, streamed.as_bytes()).await;
    let chunks: Vec<Value> = sse_data(&reply.text())
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"city":"Paris"}"#);
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));

    // A chat parameter the Responses API has no field for is refused, not dropped.
    let refused = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"codex/gpt-5-codex","messages":[{"role":"user","content":"hi"}],"stop":["\n"]}"#,
    )
    .await;
    assert_eq!(refused.status(), 400, "{}", refused.text());
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("stop"))
    );
}

#[tokio::test]
async fn anthropic_clients_reach_a_responses_only_provider() {
    let upstream = default_mock();
    let gw = gateway(&responses_only(&upstream));
    let body = r#"{"model":"codex/gpt-5-codex","max_tokens":64,"system":"Be brief.","messages":[{"role":"user","content":"hi"}]}"#;
    let headers = [("anthropic-version", "2023-06-01")];
    let reply = send(gw.addr, "POST", "/anthropic/v1/messages", &headers, body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["type"], "message");
    assert_eq!(json["content"][0]["text"], "Hello from the asbru mock provider.");
    assert_eq!(json["stop_reason"], "end_turn");
    assert_eq!(json["usage"]["output_tokens"], 6);
    let sent = sent_body(&upstream, 0);
    assert_eq!(sent["instructions"], "Be brief.");
    assert_eq!(sent["max_output_tokens"], 64);

    let stream = body.replacen("\"max_tokens\":64", "\"max_tokens\":64,\"stream\":true", 1);
    let reply = send(gw.addr, "POST", "/anthropic/v1/messages", &headers, stream.as_bytes()).await;
    let events = events(&reply.text());
    let names = names(&events);
    assert_eq!(names.first().copied(), Some("message_start"));
    assert_eq!(names.last().copied(), Some("message_stop"));
    let text: String = events
        .iter()
        .filter_map(|(_, data)| data["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello from the asbru mock");
    let usage = events
        .iter()
        .find(|(name, _)| name == "message_delta")
        .map(|(_, data)| data["usage"]["output_tokens"].clone());
    assert_eq!(usage, Some(json!(5)));
}

#[tokio::test]
async fn a_stored_response_belongs_to_the_caller_that_created_it() {
    let upstream = default_mock();
    let base = upstream.base_url();
    let gw = gateway(&format!(
        "providers:\n  openai:\n    keys:\n      - {{name: k1, value: sk-openai-1}}\n      - {{name: k2, value: sk-openai-2}}\n    network_config: {{base_url: \"{base}\"}}\ngovernance:\n  virtual_keys:\n    - {{id: vk-a, name: A, value: sk-bf-a, provider_configs: [{{provider: openai, weight: 1, keys: [k1]}}]}}\n    - {{id: vk-b, name: B, value: sk-bf-b, provider_configs: [{{provider: openai, weight: 1, keys: [k2]}}]}}\n"
    ));
    let a = [("x-bf-vk", "sk-bf-a")];
    let b = [("x-bf-vk", "sk-bf-b")];
    let reply = send(
        gw.addr,
        "POST",
        "/v1/responses",
        &a,
        br#"{"model":"openai/gpt-4o","input":"secret plans"}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let id = reply.json()["id"].as_str().expect("id").to_string();
    let before = upstream.state.recorded().len();
    for (method, path) in [
        ("GET", format!("/v1/responses/{id}")),
        ("DELETE", format!("/v1/responses/{id}")),
        ("POST", format!("/v1/responses/{id}/cancel")),
        ("GET", format!("/v1/responses/{id}/input_items")),
    ] {
        let reply = send(gw.addr, method, &path, &b, b"").await;
        assert_eq!(reply.status(), 404, "{method} {path} by another key: {}", reply.text());
        assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    }
    assert_eq!(
        upstream.state.recorded().len(),
        before,
        "another caller's calls never reach the provider"
    );
    // Nor does a follow-up turn by another caller run on the creator's key.
    let body = json!({"model": "openai/gpt-4o", "input": "and?", "previous_response_id": id});
    let reply = send(gw.addr, "POST", "/v1/responses", &b, body.to_string().as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        upstream
            .state
            .recorded()
            .last()
            .and_then(|r| r.header("authorization").map(str::to_string)),
        Some("Bearer sk-openai-2".to_string()),
        "B's turn ran on B's own key"
    );
    // The creator still reads it.
    let read = send(gw.addr, "GET", &format!("/v1/responses/{id}"), &a, b"").await;
    assert_eq!(read.status(), 200, "{}", read.text());
}

#[tokio::test]
async fn metered_background_responses_are_refused() {
    let upstream = default_mock();
    let gw = gateway(&format!("{}{PRICED}", providers(&upstream)));
    let reply = post_vk(
        &gw,
        "/v1/responses",
        r#"{"model":"openai/gpt-4o","input":"hi","background":true}"#,
    )
    .await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("background"))
    );
    assert!(upstream.state.recorded().is_empty());
    // Without a budget to keep, background runs pass through.
    let reply = post(
        &gw,
        "/v1/responses",
        r#"{"model":"openai/gpt-4o","input":"hi","background":true}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
}

#[tokio::test]
async fn unknown_stored_ids_reach_the_provider_whatever_the_model_lists() {
    let upstream = default_mock();
    let base = upstream.base_url();
    let gw = gateway(&format!(
        "providers:\n  openai:\n    keys: [{{name: narrow, value: sk-openai-1, models: [gpt-4o]}}]\n    network_config: {{base_url: \"{base}\"}}\ngovernance:\n  virtual_keys:\n    - {{id: vk-n, name: N, value: sk-bf-n, provider_configs: [{{provider: openai, weight: 1, allowed_models: [gpt-4o]}}]}}\n"
    ));
    // Created before a restart, say: the gateway does not know it, so it asks OpenAI, on a key
    // that lists models and under a virtual key that allows only some.
    let reply = send(
        gw.addr,
        "GET",
        "/v1/responses/resp_from_before",
        &[("x-bf-vk", "sk-bf-n")],
        b"",
    )
    .await;
    assert_eq!(reply.status(), 404, "OpenAI's own answer: {}", reply.text());
    let seen = upstream.state.recorded();
    assert_eq!(seen.len(), 1, "the call reached the provider");
    assert_eq!(seen[0].path, "/v1/responses/resp_from_before");
    assert_eq!(seen[0].header("authorization"), Some("Bearer sk-openai-1"));

    // No such provider configured at all: 404, not a gateway error.
    let anthropic_only = gateway(&format!(
        "providers:\n  anthropic:\n    keys: [{{name: a, value: sk-ant-1}}]\n    network_config: {{base_url: \"{base}\"}}\n"
    ));
    let reply = send(anthropic_only.addr, "GET", "/v1/responses/resp_x", &[], b"").await;
    assert_eq!(reply.status(), 404, "{}", reply.text());
    assert!(reply.json()["error"]["message"].is_string());
}
