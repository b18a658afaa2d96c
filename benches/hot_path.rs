//! Criterion micro-benches for the per-request work: route match, body head read and model
//! rewrite (1 KB and 100 KB), key selection, the filter chain, and governance (admission with
//! reservation, and settlement, for a virtual key with a 4-level chain), request and stream
//! translation per wire, and SigV4 signing of a Bedrock request.
//!
//! Run: `cargo bench --bench hot_path`.

use std::hint::black_box;

use asbru::routes::RouteTable;
use asbru_config::catalog::RequestType;
use asbru_filters::governance::runtime::key_hash;
use asbru_filters::governance::{self, Estimate, Registry};
use asbru_filters::pricing::TokenUsage;
use asbru_filters::routing::keys;
use asbru_filters::snapshot::Snapshot;
use asbru_filters::{FilterChain, GatewayRequest, Live, RequestCtx};
use asbru_providers::formats::openai::RequestHead;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::Method;

fn chat_body(content_len: usize) -> Vec<u8> {
    let content: String = "lorem ipsum ".chars().cycle().take(content_len).collect();
    format!(
        r#"{{"model":"openai/gpt-4o-mini","messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"{content}"}}],"temperature":0.2,"fallbacks":["groq/llama-3.1-8b-instant"],"stream":false}}"#
    )
    .into_bytes()
}

const PROVIDERS: &str = "providers:\n  openai:\n    keys:\n      - {name: a, value: sk-a, weight: 3}\n      - {name: b, value: sk-b, weight: 1, models: [gpt-4o]}\n      - {name: c, value: sk-c, weight: 1}\n  groq: {keys: [{value: sk-g}]}\n";

/// A virtual key under a team under a customer, with a provider config: a budget and a rate
/// limit at each of the four levels, none of which trips.
const GOVERNANCE: &str = "governance:\n  customers:\n    - {id: acme, name: Acme, budgets: [{max_limit: 1000000, reset_duration: 1M}], rate_limit: {request_max_limit: 1000000000, request_reset_duration: 1h}}\n  teams:\n    - {id: ml, name: ML, customer_id: acme, budgets: [{max_limit: 1000000, reset_duration: 1w}], rate_limit: {token_max_limit: 1000000000000, token_reset_duration: 1d}}\n  virtual_keys:\n    - id: vk-bench\n      name: bench\n      value: sk-bf-bench\n      team_id: ml\n      budgets: [{max_limit: 1000000, reset_duration: 1d}]\n      rate_limit: {request_max_limit: 1000000000, request_reset_duration: 1m, token_max_limit: 1000000000000, token_reset_duration: 1m}\n      provider_configs:\n        - {provider: openai, weight: 1, allowed_models: [gpt-4o-mini], budgets: [{max_limit: 1000000, reset_duration: 1h}], rate_limit: {request_max_limit: 1000000000, request_reset_duration: 1h}}\n";

fn live(yaml: &str) -> Live {
    let loaded = asbru_config::load_str(yaml, "bench.yaml").expect("valid bench config");
    let registry = std::sync::Arc::new(Registry::new());
    Live::build_with(&loaded.config, &registry, 1_800_000_000, &|_| None).0
}

fn snapshot() -> Snapshot {
    live(PROVIDERS).snapshot
}

fn request(model: &str, fallbacks: Vec<String>) -> GatewayRequest {
    GatewayRequest {
        ingress: asbru_config::catalog::Wire::OpenAi,
        request_type: RequestType::ChatCompletion,
        stream: false,
        model_requested: model.to_string(),
        default_provider: None,
        fallbacks,
        credentials: Default::default(),
        require_vk: false,
        estimate: Estimate {
            input_tokens: 1024,
            max_output_tokens: Some(256),
            choices: 1,
            units: None,
        },
        now: 1_800_000_100,
        arrived_ms: 1_800_000_100_000,
        body: bytes::Bytes::new(),
        headers: Vec::new(),
        query: None,
        pin: None,
    }
}

fn route_match(c: &mut Criterion) {
    let table = RouteTable::new();
    c.bench_function("route_match/chat", |b| {
        b.iter(|| table.find(black_box(&Method::POST), black_box("/v1/chat/completions")))
    });
}

fn body_rewrite(c: &mut Criterion) {
    let mut group = c.benchmark_group("body_head_and_rewrite");
    for (name, size) in [("1KB", 1024), ("100KB", 100 * 1024)] {
        let body = chat_body(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let head = RequestHead::parse(black_box(&body)).expect("valid body");
                black_box(head.upstream_body(&body, "gpt-4o-mini"))
            })
        });
    }
    group.finish();
}

fn key_selection(c: &mut Criterion) {
    let snap = snapshot();
    let openai = snap.provider("openai").expect("openai").clone();
    c.bench_function("key_selection/3_keys", |b| {
        b.iter(|| {
            let choice = keys::select(&openai, black_box("gpt-4o-mini"), &[], &mut rand::rng());
            black_box(choice.map(|c| c.map(|(i, _)| i)))
        })
    });
}

/// The standard chain, as the gateway builds it with no `plugins` section.
fn standard_chain() -> FilterChain {
    let services = asbru::pipeline::Services {
        metrics: std::sync::Arc::new(asbru_filters::telemetry::Metrics::new()),
        request_log: None,
    };
    asbru::pipeline::build(None, &services).expect("standard chain").0
}

/// A fresh context for `request` (built outside the timed part).
fn fresh(request: &GatewayRequest) -> RequestCtx {
    RequestCtx::new("bench".to_string(), std::time::Instant::now(), request.clone())
}

fn filter_chain(c: &mut Criterion) {
    let live = live(PROVIDERS);
    let chain = standard_chain();
    let request = request("openai/gpt-4o-mini", vec!["groq/llama-3.1-8b-instant".to_string()]);
    c.bench_function("filter_chain/routing", |b| {
        b.iter_batched_ref(
            || fresh(&request),
            |ctx| black_box(chain.run(&live, ctx).map(|_| ctx.plan.len())),
            BatchSize::SmallInput,
        )
    });
}

fn governance_bench(c: &mut Criterion) {
    let live = live(&format!("{PROVIDERS}{GOVERNANCE}"));
    let gov = &live.governance;
    let vk = gov.key(&key_hash("sk-bf-bench")).expect("bench key").clone();
    let estimate = Estimate {
        input_tokens: 1024,
        max_output_tokens: Some(256),
        choices: 1,
        units: None,
    };
    let usage = TokenUsage {
        input: 300,
        output: 120,
        ..Default::default()
    };
    c.bench_function("governance/admit_and_settle_4_levels", |b| {
        b.iter(|| {
            let mut ticket = governance::admit(
                gov,
                Some(&vk),
                "openai",
                black_box("gpt-4o-mini"),
                &estimate,
                1_800_000_100,
            )
            .expect("admitted");
            ticket.mark_sent();
            black_box(ticket.charge(Some(usage)))
        })
    });
    // The same with the spend journal on (a config store persists usage): one record per meter,
    // copied into a mapped segment in the temp dir, flushed into a SQLite store on another
    // thread every 200 ms, as the gateway's usage flush does every second.
    let journal_dir = std::env::temp_dir().join(format!("asbru-bench-journal-{}", std::process::id()));
    let journal = std::sync::Arc::new(asbru::spend_journal::Journal::open(&journal_dir).expect("journal"));
    let flushing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flusher = {
        let (journal, flushing) = (journal.clone(), flushing.clone());
        let store = asbru_store::backend::sqlite::SqliteStore::open(&journal_dir.join("config.db")).expect("store");
        std::thread::spawn(move || {
            while flushing.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(200));
                journal.flush(&store).expect("flush");
            }
        })
    };
    let journaled = {
        let loaded = asbru_config::load_str(&format!("{PROVIDERS}{GOVERNANCE}"), "bench.yaml").expect("valid");
        let registry = std::sync::Arc::new(Registry::new());
        registry.set_journal(journal.clone());
        Live::build_with(&loaded.config, &registry, 1_800_000_000, &|_| None).0
    };
    let journaled_vk = journaled
        .governance
        .key(&key_hash("sk-bf-bench"))
        .expect("bench key")
        .clone();
    c.bench_function("governance/admit_and_settle_4_levels_journaled", |b| {
        b.iter(|| {
            let mut ticket = governance::admit(
                &journaled.governance,
                Some(&journaled_vk),
                "openai",
                black_box("gpt-4o-mini"),
                &estimate,
                1_800_000_100,
            )
            .expect("admitted");
            ticket.mark_sent();
            black_box(ticket.charge(Some(usage)))
        })
    });
    flushing.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = flusher.join();
    let _ = std::fs::remove_dir_all(&journal_dir);
    let chain = standard_chain();
    let mut request = request("gpt-4o-mini", Vec::new());
    request.credentials.bearer = Some("sk-bf-bench".to_string());
    c.bench_function("governance/full_chain_vk_lookup_route_admit", |b| {
        b.iter_batched_ref(
            || fresh(&request),
            |ctx| {
                chain.run(&live, ctx).expect("admitted");
                chain.on_usage(&live, ctx, Some(usage));
                black_box(ctx.outcome.charge)
            },
            BatchSize::SmallInput,
        )
    });
}

/// A conversation of about 4 KB: system prompt, several turns, a tool call and its result.
fn conversation_4kb() -> Vec<u8> {
    let turn = "Tell me more about the history of the city, its rivers, bridges and markets. ".repeat(4);
    let mut messages = vec![serde_json::json!({"role": "system", "content": "You are a helpful travel guide."})];
    for i in 0..8 {
        messages.push(serde_json::json!({"role": "user", "content": format!("{turn} ({i})")}));
        messages.push(serde_json::json!({"role": "assistant", "content": "Here is what I know about it."}));
    }
    messages.push(serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"bridges\"}"}}]}));
    messages.push(serde_json::json!({"role": "tool", "tool_call_id": "call_1", "content": "Twelve bridges."}));
    let body = serde_json::json!({
        "model": "anthropic/claude-sonnet-4", "messages": messages, "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    });
    serde_json::to_vec(&body).expect("json")
}

/// The same conversation as a Responses API request: instructions, input items, a function call
/// and its output.
fn responses_4kb() -> Vec<u8> {
    let turn = "Tell me more about the history of the city, its rivers, bridges and markets. ".repeat(4);
    let mut input = Vec::new();
    for i in 0..8 {
        input.push(serde_json::json!({"role": "user", "content": format!("{turn} ({i})")}));
        input.push(serde_json::json!({"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "Here is what I know about it."}]}));
    }
    input.push(
        serde_json::json!({"type": "function_call", "call_id": "call_1", "name": "lookup",
        "arguments": "{\"q\":\"bridges\"}"}),
    );
    input.push(serde_json::json!({"type": "function_call_output", "call_id": "call_1", "output": "Twelve bridges."}));
    let body = serde_json::json!({
        "model": "anthropic/claude-sonnet-4", "instructions": "You are a helpful travel guide.",
        "input": input, "temperature": 0.2, "store": false,
        "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    });
    serde_json::to_vec(&body).expect("json")
}

fn translation(c: &mut Criterion) {
    use asbru_providers::Wire;
    use asbru_providers::adapters::chat_stream::ChatToMessagesStream;
    use asbru_providers::adapters::chat_to_responses_stream::ChatToResponsesStream;
    use asbru_providers::adapters::exchange;
    use asbru_providers::adapters::gemini_stream::GeminiToChatStream;
    use asbru_providers::adapters::messages_stream::MessagesToChatStream;
    use asbru_providers::adapters::responses_stream::ResponsesToChatStream;

    let body = conversation_4kb();
    let head = RequestHead::parse(&body).expect("valid body");
    let mut group = c.benchmark_group("translate_request");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("openai_to_anthropic_4KB", |b| {
        b.iter(|| {
            exchange::prepare(
                Wire::OpenAi,
                Wire::Anthropic,
                &head,
                black_box(&body),
                "claude-sonnet-4",
                0,
                Default::default(),
            )
            .map(|p| p.body.len())
        })
    });
    group.bench_function("openai_to_gemini_4KB", |b| {
        b.iter(|| {
            exchange::prepare(
                Wire::OpenAi,
                Wire::Gemini,
                &head,
                black_box(&body),
                "gemini-2.5-flash",
                0,
                Default::default(),
            )
            .map(|p| p.body.len())
        })
    });
    let responses = responses_4kb();
    let responses_head = RequestHead::parse(&responses).expect("valid body");
    let through_chat = exchange::UpstreamOptions {
        api: exchange::OpenAiApi::Responses,
        ..Default::default()
    };
    let as_responses = exchange::UpstreamOptions {
        upstream_responses: true,
        ..Default::default()
    };
    group.bench_function("openai_to_responses_4KB", |b| {
        b.iter(|| {
            exchange::prepare(
                Wire::OpenAi,
                Wire::OpenAi,
                &head,
                black_box(&body),
                "gpt-5-codex",
                0,
                as_responses,
            )
            .map(|p| p.body.len())
        })
    });
    group.bench_function("responses_to_anthropic_4KB", |b| {
        b.iter(|| {
            exchange::prepare(
                Wire::OpenAi,
                Wire::Anthropic,
                &responses_head,
                black_box(&responses),
                "claude-sonnet-4",
                0,
                through_chat,
            )
            .map(|p| p.body.len())
        })
    });
    group.bench_function("openai_to_bedrock_converse_4KB", |b| {
        b.iter(|| {
            exchange::prepare(
                Wire::OpenAi,
                Wire::Bedrock,
                &head,
                black_box(&body),
                "anthropic.claude-3-haiku-20240307-v1:0",
                0,
                Default::default(),
            )
            .map(|p| p.body.len())
        })
    });
    group.finish();

    // AWS SigV4 over a 4 KB body, as every Bedrock request is signed.
    let credentials = asbru_providers::provider::bedrock::AwsCredentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
    );
    let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
    c.bench_function("sigv4/sign_4KB_body", |b| {
        b.iter(|| {
            asbru_providers::provider::bedrock::sign(
                &credentials,
                &asbru_providers::provider::bedrock::SignInput {
                    method: "POST",
                    url,
                    headers: &[("content-type", "application/json")],
                    body: black_box(&body),
                    region: "us-east-1",
                    service: asbru_providers::provider::bedrock::SERVICE,
                    time: std::time::SystemTime::now(),
                    content_sha256_header: false,
                },
            )
            .map(|h| h.len())
        })
    });
    // One Converse event-stream frame decoded (CRCs checked) and translated to an OpenAI chunk.
    let mut converse_frame = Vec::new();
    asbru_providers::eventstream::write_event(
        "contentBlockDelta",
        br#"{"contentBlockIndex":0,"delta":{"text":"Hello there, "},"p":"abcdefghijkl"}"#,
        &mut converse_frame,
    );
    c.bench_function("stream_event/bedrock_frame_to_openai_text_delta", |b| {
        let mut translator = asbru_providers::adapters::converse_stream::ConverseToChatStream::new("claude", 0);
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            translator.feed(black_box(&converse_frame), &mut out);
            black_box(out.len())
        })
    });

    let delta = br#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello there, "}}

"#;
    c.bench_function("stream_event/anthropic_to_openai_text_delta", |b| {
        let mut translator = MessagesToChatStream::new(0);
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            translator.feed(black_box(delta), &mut out);
            black_box(out.len())
        })
    });
    let gemini_event = br#"data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hello there, "}]},"index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":3,"totalTokenCount":12},"modelVersion":"gemini-2.5-flash","responseId":"r-1"}

"#;
    c.bench_function("stream_event/gemini_to_openai_text", |b| {
        let mut translator = GeminiToChatStream::new("gemini-2.5-flash", 0);
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            translator.feed(black_box(gemini_event), &mut out);
            black_box(out.len())
        })
    });
    let chunk = br#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello there, "},"finish_reason":null}]}

"#;
    c.bench_function("stream_event/openai_to_anthropic_text_delta", |b| {
        let mut translator = ChatToMessagesStream::new("gpt-4o");
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            translator.feed(black_box(chunk), &mut out);
            black_box(out.len())
        })
    });
    let responses_event = br#"event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello there, "}

"#;
    c.bench_function("stream_event/responses_to_openai_text_delta", |b| {
        let mut translator = ResponsesToChatStream::new("gpt-5-codex", 0, false);
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            translator.feed(black_box(responses_event), &mut out);
            black_box(out.len())
        })
    });
    c.bench_function("stream_event/openai_to_responses_text_delta", |b| {
        let mut translator = ChatToResponsesStream::new("gpt-4o", 0);
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            translator.feed(black_box(chunk), &mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(
    benches,
    route_match,
    body_rewrite,
    key_selection,
    filter_chain,
    governance_bench,
    translation
);
criterion_main!(benches);
