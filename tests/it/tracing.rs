//! OpenTelemetry traces end to end: the `otel` plugin exports GenAI spans over OTLP/HTTP to a
//! receiver on loopback, which decodes the protobuf; a client's `traceparent` is continued and
//! each upstream try carries its own.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// An OTLP/HTTP receiver: every exported span, decoded.
struct Receiver {
    addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
    paths: Arc<Mutex<Vec<String>>>,
}

async fn receiver() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let paths: Arc<Mutex<Vec<String>>> = Arc::default();
    let (s, p) = (spans.clone(), paths.clone());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (spans, paths) = (s.clone(), p.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: head, then content-length bytes.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 8192];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..head_end + length).skip(head_end).collect();
                    if let Some(path) = head.split_whitespace().nth(1) {
                        paths.lock().expect("lock").push(path.to_string());
                    }
                    if let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice()) {
                        let mut all = spans.lock().expect("lock");
                        for resource in request.resource_spans {
                            for scope in resource.scope_spans {
                                all.extend(scope.spans);
                            }
                        }
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if conn.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Receiver { addr, spans, paths }
}

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attr(span, key)? {
        AnyValue::StringValue(s) => Some(s),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key)? {
        AnyValue::IntValue(i) => Some(i),
        _ => None,
    }
}

#[tokio::test]
async fn genai_spans_reach_an_otlp_receiver() {
    let collector = receiver().await;
    let upstream = default_mock();
    let dead = dead_address();
    let gw = gateway(&format!(
        "providers:\n{}{}plugins:\n  - {{name: otel, enabled: true, config: {{collector_url: \"http://{}\", trace_type: genai_extension, protocol: http, export_interval_ms: 50, headers: {{x-collector-token: t0ken}}}}}}\n",
        provider_yaml("openai", &upstream.base_url(), ""),
        provider_yaml("down", &format!("http://{dead}"), ""),
        collector.addr
    ));
    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("traceparent", &format!("00-{parent_trace}-00f067aa0ba902b7-01")),
            ("x-request-id", "traced-1"),
        ],
        br#"{"model":"down/gpt-4o-mini","fallbacks":["openai/gpt-4o-mini"],"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let mut spans = Vec::new();
    for _ in 0..300 {
        spans = collector.spans.lock().expect("lock").clone();
        if spans.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let root = spans
        .iter()
        .find(|s| text(s, "asbru.request_id").as_deref() == Some("traced-1"))
        .unwrap_or_else(|| panic!("no request span among {spans:?}"));
    assert_eq!(hex(&root.trace_id), parent_trace, "the client's trace is continued");
    assert_eq!(hex(&root.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(root.name, "chat gpt-4o-mini");
    assert_eq!(text(root, "gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(text(root, "client.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(text(root, "gen_ai.provider.name").as_deref(), Some("openai"));
    assert_eq!(text(root, "gen_ai.request.model").as_deref(), Some("gpt-4o-mini"));
    assert_eq!(text(root, "gen_ai.response.model").as_deref(), Some("gpt-4o-mini"));
    assert_eq!(int(root, "gen_ai.usage.input_tokens"), Some(12));
    assert_eq!(int(root, "gen_ai.usage.output_tokens"), Some(6));
    assert_eq!(int(root, "gen_ai.request.max_tokens"), Some(64));
    assert_eq!(attr(root, "gen_ai.request.stream"), Some(AnyValue::BoolValue(false)));
    assert_eq!(int(root, "gen_ai.fallback_index"), Some(1));
    let children: Vec<&Span> = spans.iter().filter(|s| s.parent_span_id == root.span_id).collect();
    assert_eq!(children.len(), 2, "one span per upstream try: {children:?}");
    assert!(children.iter().all(|c| c.trace_id == root.trace_id));
    let failed = children
        .iter()
        .find(|c| text(c, "gen_ai.provider.name").as_deref() == Some("down"))
        .expect("the failed try");
    assert_eq!(failed.status.as_ref().map(|s| s.code), Some(2), "an error status");
    let served = children
        .iter()
        .find(|c| text(c, "gen_ai.provider.name").as_deref() == Some("openai"))
        .expect("the served try");
    // The upstream saw the served try's span as its parent.
    let recorded = upstream.state.recorded();
    let sent = recorded
        .last()
        .and_then(|r| r.header("traceparent").map(str::to_string))
        .expect("traceparent upstream");
    assert_eq!(sent, format!("00-{parent_trace}-{}-01", hex(&served.span_id)));
    assert!(collector.paths.lock().expect("lock").iter().all(|p| p == "/v1/traces"));
    drop(gw);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
