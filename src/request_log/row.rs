//! A finished request's [`LogRecord`] as a [`LogRow`], and a row as the log API's JSON
//! (Bifrost's `Log` shape: `object`, `token_usage`, `error_details`, RFC 3339 times).

use asbru_filters::logging::LogRecord;
use asbru_store::logs::LogRow;
use serde_json::{Map, Value, json};

use super::content::{self, capped, capped_text};

/// Converts a record, cutting each content field to `cap` bytes.
pub fn to_row(record: LogRecord, cap: usize) -> LogRow {
    let usage = record.usage.unwrap_or_default();
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (a, b) = (
        |n: &Option<asbru_filters::logging::Named>| n.as_ref().map(|n| n.id.clone()),
        |n: &Option<asbru_filters::logging::Named>| n.as_ref().map(|n| n.name.clone()),
    );
    let mut row = LogRow {
        id: record.id,
        parent_request_id: record.parent_request_id,
        timestamp_ms: record.timestamp_ms,
        object_type: record.object_type.to_string(),
        provider: record.provider,
        model: record.model,
        requested_model: record.requested_model,
        status: if record.success { "success" } else { "error" }.to_string(),
        status_code: i64::from(record.status_code),
        stream: record.stream,
        latency_ms: Some(record.latency_ms),
        ttft_ms: record.ttft_ms,
        prompt_tokens: clamp(usage.input),
        completion_tokens: clamp(usage.output),
        total_tokens: clamp(usage.total()),
        cached_read_tokens: clamp(usage.cache_read),
        reasoning_tokens: clamp(usage.reasoning),
        cost: record.cost,
        number_of_retries: i64::from(record.retries),
        fallback_index: i64::try_from(record.fallback_index).unwrap_or(0),
        selected_key_id: a(&record.selected_key),
        selected_key_name: b(&record.selected_key),
        virtual_key_id: a(&record.virtual_key),
        virtual_key_name: b(&record.virtual_key),
        team_id: a(&record.team),
        team_name: b(&record.team),
        customer_id: a(&record.customer),
        customer_name: b(&record.customer),
        routing_rule_id: a(&record.routing_rule),
        routing_rule_name: b(&record.routing_rule),
        error_details: record.error.map(|e| {
            json!({
                "is_bifrost_error": record.status_code >= 500 && record.status_code != 502,
                "status_code": record.status_code,
                "error": {"type": e.kind, "message": e.message},
                "decision": e.decision,
            })
            .to_string()
        }),
        metadata: (!record.metadata.is_empty()).then(|| {
            Value::Object(
                record
                    .metadata
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            )
            .to_string()
        }),
        created_at_ms: super::unix_millis(),
        ..Default::default()
    };
    if let Some(recorded) = record.content {
        let Some(wire) = recorded.wire else {
            return row;
        };
        let c = content::extract(wire, &recorded.request, recorded.reply.as_deref(), &recorded.stream);
        let mut cut = recorded.cut;
        let mut field = |v: Option<String>| {
            v.and_then(|v| {
                let (text, was_cut) = capped(v, cap);
                cut |= was_cut;
                text
            })
        };
        row.input_history = field(c.input_history);
        row.output_message = field(c.output_message);
        row.tools = field(c.tools);
        row.params = field(c.params);
        let (summary, summary_cut) = capped_text(&c.summary, cap);
        row.content_summary = (!summary.is_empty()).then_some(summary);
        row.content_truncated = cut || summary_cut;
        row.stop_reason = c.stop_reason;
    }
    row
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parsed(text: &Option<String>) -> Value {
    text.as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// A row as the log API shows it.
pub fn to_json(row: &LogRow) -> Value {
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    put("id", json!(row.id));
    put("parent_request_id", json!(row.parent_request_id));
    put("timestamp", json!(rfc3339(row.timestamp_ms)));
    put("object", json!(row.object_type));
    put("provider", json!(row.provider));
    put("model", json!(row.model));
    put("requested_model", json!(row.requested_model));
    put("status", json!(row.status));
    put("status_code", json!(row.status_code));
    put("stream", json!(row.stream));
    put("latency", json!(row.latency_ms));
    put("time_to_first_token", json!(row.ttft_ms));
    put(
        "token_usage",
        json!({
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "total_tokens": row.total_tokens,
            "prompt_tokens_details": {"cached_read_tokens": row.cached_read_tokens, "cached_tokens": row.cached_read_tokens},
            "completion_tokens_details": {"reasoning_tokens": row.reasoning_tokens},
        }),
    );
    put("cost", json!(row.cost));
    put("number_of_retries", json!(row.number_of_retries));
    put("fallback_index", json!(row.fallback_index));
    put(
        "selected_key_id",
        json!(row.selected_key_id.clone().unwrap_or_default()),
    );
    put(
        "selected_key_name",
        json!(row.selected_key_name.clone().unwrap_or_default()),
    );
    for (k, v) in [
        ("virtual_key_id", &row.virtual_key_id),
        ("virtual_key_name", &row.virtual_key_name),
        ("team_id", &row.team_id),
        ("team_name", &row.team_name),
        ("customer_id", &row.customer_id),
        ("customer_name", &row.customer_name),
        ("routing_rule_id", &row.routing_rule_id),
        ("routing_rule_name", &row.routing_rule_name),
        ("stop_reason", &row.stop_reason),
    ] {
        put(k, json!(v));
    }
    if let (Some(id), Some(name)) = (&row.selected_key_id, &row.selected_key_name) {
        put("selected_key", json!({"id": id, "name": name}));
    }
    if let (Some(id), Some(name)) = (&row.virtual_key_id, &row.virtual_key_name) {
        put("virtual_key", json!({"id": id, "name": name}));
    }
    put("error_details", parsed(&row.error_details));
    put("input_history", parsed(&row.input_history));
    put("output_message", parsed(&row.output_message));
    put("tools", parsed(&row.tools));
    put("params", parsed(&row.params));
    put("content_summary", json!(row.content_summary));
    put("content_truncated", json!(row.content_truncated));
    put("metadata", parsed(&row.metadata));
    put("created_at", json!(rfc3339(row.created_at_ms)));
    Value::Object(out)
}
