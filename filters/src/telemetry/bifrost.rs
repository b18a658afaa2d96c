//! Bifrost's Prometheus metrics, with its names and labels, so dashboards and alerts written
//! for Bifrost's telemetry plugin keep working: `http_*` for every HTTP request and
//! `bifrost_*` for LLM requests.
//!
//! Recording takes no lock. A request's label values (all bounded by the config: provider and
//! model under the label rule of [`crate::labels`], keys and virtual keys as configured,
//! custom labels capped at [`CUSTOM_VALUES_CAP`] values each) are hashed, and the hash finds
//! the resolved handles in a lock-free map; only the first request of a new label set
//! resolves them (once, through the `prometheus` crate's locked lookup).

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::{
    Counter, CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

/// The labels of every `bifrost_*` LLM metric, in order (custom labels follow).
pub const BASE_LABELS: [&str; 14] = [
    "provider",
    "model",
    "method",
    "virtual_key_id",
    "virtual_key_name",
    "routing_rule_id",
    "routing_rule_name",
    "selected_key_id",
    "selected_key_name",
    "fallback_index",
    "team_id",
    "team_name",
    "customer_id",
    "customer_name",
];

/// Distinct values one custom label keeps; later values fold into `other`.
pub const CUSTOM_VALUES_CAP: usize = 100;

const UPSTREAM_LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0,
    600.0, 900.0,
];
const FIRST_TOKEN_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];
const INTER_TOKEN_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const RETRY_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 5.0, 10.0];
const SIZE_BUCKETS: &[f64] = &[1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// The handles of one LLM label set.
pub struct LlmSeries {
    values: Box<[String]>,
    /// The label values joined by [`join_labels`], compared in one go on lookup.
    key: Box<[u8]>,
    /// `bifrost_upstream_requests_total`.
    pub upstream_requests: IntCounter,
    /// `bifrost_success_requests_total`.
    pub success: IntCounter,
    /// `bifrost_input_tokens_total`.
    pub input_tokens: IntCounter,
    /// `bifrost_output_tokens_total`.
    pub output_tokens: IntCounter,
    /// `bifrost_cache_read_input_tokens_total`.
    pub cache_read_tokens: IntCounter,
    /// `bifrost_cost_total` (dollars).
    pub cost: Counter,
    /// `bifrost_upstream_latency_seconds{is_success="true"}`.
    pub latency_ok: Histogram,
    /// `bifrost_upstream_latency_seconds{is_success="false"}`.
    pub latency_failed: Histogram,
    /// `bifrost_stream_first_token_latency_seconds`.
    pub first_token: Histogram,
    /// `bifrost_stream_inter_token_latency_seconds`.
    pub inter_token: Histogram,
    /// `bifrost_request_retries`.
    pub retries: Histogram,
    errors: papaya::HashMap<(u16, &'static str), IntCounter>,
    family: Arc<Families>,
}

impl LlmSeries {
    /// Counts an error with its status and Bifrost error type.
    pub fn error(&self, status: u16, error_type: &'static str) {
        let errors = self.errors.pin();
        if let Some(counter) = errors.get(&(status, error_type)) {
            counter.inc();
            return;
        }
        let mut labels: Vec<&str> = self.values.iter().map(String::as_str).collect();
        let status_text = status.to_string();
        labels.push(&status_text);
        labels.push(error_type);
        let counter = self.family.errors.with_label_values(&labels);
        counter.inc();
        errors.insert((status, error_type), counter);
    }
}

/// The handles of one HTTP label set.
pub struct HttpSeries {
    /// `http_requests_total`.
    pub requests: IntCounter,
    /// `http_request_duration_seconds`.
    pub duration: Histogram,
    /// `http_request_size_bytes`.
    pub request_size: Histogram,
    /// `http_response_size_bytes`.
    pub response_size: Histogram,
}

/// The metric families.
struct Families {
    upstream_requests: IntCounterVec,
    success: IntCounterVec,
    errors: IntCounterVec,
    input_tokens: IntCounterVec,
    output_tokens: IntCounterVec,
    cache_read_tokens: IntCounterVec,
    cost: CounterVec,
    upstream_latency: HistogramVec,
    first_token: HistogramVec,
    inter_token: HistogramVec,
    retries: HistogramVec,
    active: IntGaugeVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_request_size: HistogramVec,
    http_response_size: HistogramVec,
}

/// Bifrost's metrics and their resolved series.
pub struct BifrostMetrics {
    family: Arc<Families>,
    custom: Vec<String>,
    custom_values: Vec<(papaya::HashSet<String>, AtomicUsize)>,
    llm: papaya::HashMap<u64, Arc<LlmSeries>>,
    http: papaya::HashMap<(&'static str, &'static str, u16), Arc<HttpSeries>>,
    active: papaya::HashMap<&'static str, IntGauge>,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(vec.clone()))
        .expect("metric names are unique");
    vec
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let vec = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)
        .expect("static metric definition");
    registry
        .register(Box::new(vec.clone()))
        .expect("metric names are unique");
    vec
}

impl BifrostMetrics {
    /// Registers the families in `registry`, with `custom` labels after the base ones (names
    /// equal to a base label are left out).
    pub fn register(registry: &Registry, custom: &[String]) -> BifrostMetrics {
        let custom: Vec<String> = custom
            .iter()
            .filter(|c| !BASE_LABELS.contains(&c.as_str()) && !["path", "status", "is_success"].contains(&c.as_str()))
            .cloned()
            .collect();
        let base: Vec<&str> = BASE_LABELS
            .iter()
            .copied()
            .chain(custom.iter().map(String::as_str))
            .collect();
        let with =
            |extra: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(extra.iter().copied()).collect() };
        let http_labels: Vec<&str> = ["path", "method", "status"]
            .into_iter()
            .chain(custom.iter().map(String::as_str))
            .collect();
        let cost = CounterVec::new(
            Opts::new(
                "bifrost_cost_total",
                "Total cost in USD for requests to upstream providers.",
            ),
            &base,
        )
        .expect("static metric definition");
        registry
            .register(Box::new(cost.clone()))
            .expect("metric names are unique");
        let active = IntGaugeVec::new(
            Opts::new("bifrost_active_requests", "Number of LLM requests currently in-flight."),
            &["method"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(active.clone()))
            .expect("metric names are unique");
        let family = Families {
            upstream_requests: counter(
                registry,
                "bifrost_upstream_requests_total",
                "Total number of requests forwarded to upstream providers by Bifrost.",
                &base,
            ),
            success: counter(
                registry,
                "bifrost_success_requests_total",
                "Total number of successful requests forwarded to upstream providers by Bifrost.",
                &base,
            ),
            errors: counter(
                registry,
                "bifrost_error_requests_total",
                "Total number of failed requests, by raw status_code and normalized error_type.",
                &with(&["status_code", "error_type"]),
            ),
            input_tokens: counter(
                registry,
                "bifrost_input_tokens_total",
                "Total number of input tokens forwarded to upstream providers by Bifrost.",
                &base,
            ),
            output_tokens: counter(
                registry,
                "bifrost_output_tokens_total",
                "Total number of output tokens forwarded to upstream providers by Bifrost.",
                &base,
            ),
            cache_read_tokens: counter(
                registry,
                "bifrost_cache_read_input_tokens_total",
                "Total provider-side prompt-cache read (cached) input tokens.",
                &base,
            ),
            cost,
            upstream_latency: histogram(
                registry,
                "bifrost_upstream_latency_seconds",
                "Latency of requests forwarded to upstream providers by Bifrost.",
                &with(&["is_success"]),
                UPSTREAM_LATENCY_BUCKETS,
            ),
            first_token: histogram(
                registry,
                "bifrost_stream_first_token_latency_seconds",
                "Latency of the first token of a stream response.",
                &base,
                FIRST_TOKEN_BUCKETS,
            ),
            inter_token: histogram(
                registry,
                "bifrost_stream_inter_token_latency_seconds",
                "Latency of the intermediate tokens of a stream response.",
                &base,
                INTER_TOKEN_BUCKETS,
            ),
            retries: histogram(
                registry,
                "bifrost_request_retries",
                "Number of retries used per request (observed once per request).",
                &base,
                RETRY_BUCKETS,
            ),
            active,
            http_requests: counter(
                registry,
                "http_requests_total",
                "Total number of HTTP requests.",
                &http_labels,
            ),
            http_duration: histogram(
                registry,
                "http_request_duration_seconds",
                "Duration of HTTP requests.",
                &http_labels,
                UPSTREAM_LATENCY_BUCKETS,
            ),
            http_request_size: histogram(
                registry,
                "http_request_size_bytes",
                "Size of HTTP requests.",
                &http_labels,
                SIZE_BUCKETS,
            ),
            http_response_size: histogram(
                registry,
                "http_response_size_bytes",
                "Size of HTTP responses.",
                &http_labels,
                SIZE_BUCKETS,
            ),
        };
        BifrostMetrics {
            family: Arc::new(family),
            custom_values: custom
                .iter()
                .map(|_| (papaya::HashSet::new(), AtomicUsize::new(0)))
                .collect(),
            custom,
            llm: papaya::HashMap::new(),
            http: papaya::HashMap::new(),
            active: papaya::HashMap::new(),
        }
    }

    /// The custom label names, in order.
    pub fn custom_labels(&self) -> &[String] {
        &self.custom
    }

    /// A custom label's value as recorded: itself while the label has fewer than
    /// [`CUSTOM_VALUES_CAP`] values (or already has this one), else `other`.
    pub fn custom_value<'a>(&self, index: usize, value: &'a str) -> &'a str {
        let Some((seen, count)) = self.custom_values.get(index) else {
            return "";
        };
        if value.is_empty() {
            return "";
        }
        let seen = seen.pin();
        if seen.contains(value) {
            return value;
        }
        if count.fetch_add(1, Ordering::Relaxed) < CUSTOM_VALUES_CAP {
            seen.insert(value.to_string());
            value
        } else {
            count.fetch_sub(1, Ordering::Relaxed);
            crate::labels::OTHER
        }
    }

    /// The series of an LLM label set (`values` in [`BASE_LABELS`] order, then the custom
    /// labels).
    pub fn llm(&self, values: &[&str]) -> Arc<LlmSeries> {
        thread_local! {
            /// The joined label values of the request being recorded (reused, so no allocation).
            static KEY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        KEY.with_borrow_mut(|key| {
            join_labels(values, key);
            let hash = foldhash::fast::FixedState::with_seed(0).hash_one(&key[..]);
            let map = self.llm.pin();
            if let Some(series) = map.get(&hash) {
                if *series.key == key[..] {
                    return series.clone();
                }
                // A 64-bit hash collision: resolve without caching.
                return Arc::new(self.resolve(values, key));
            }
            let series = Arc::new(self.resolve(values, key));
            map.insert(hash, series.clone());
            series
        })
    }

    fn resolve(&self, values: &[&str], key: &[u8]) -> LlmSeries {
        let f = &self.family;
        let with = |extra: &'static str| -> Vec<&str> { values.iter().copied().chain([extra]).collect() };
        LlmSeries {
            values: values.iter().map(|v| v.to_string()).collect(),
            key: key.into(),
            upstream_requests: f.upstream_requests.with_label_values(values),
            success: f.success.with_label_values(values),
            input_tokens: f.input_tokens.with_label_values(values),
            output_tokens: f.output_tokens.with_label_values(values),
            cache_read_tokens: f.cache_read_tokens.with_label_values(values),
            cost: f.cost.with_label_values(values),
            latency_ok: f.upstream_latency.with_label_values(&with("true")),
            latency_failed: f.upstream_latency.with_label_values(&with("false")),
            first_token: f.first_token.with_label_values(values),
            inter_token: f.inter_token.with_label_values(values),
            retries: f.retries.with_label_values(values),
            errors: papaya::HashMap::new(),
            family: self.family.clone(),
        }
    }

    /// The in-flight gauge of a request type.
    pub fn active(&self, method: &'static str) -> IntGauge {
        let map = self.active.pin();
        if let Some(gauge) = map.get(method) {
            return gauge.clone();
        }
        let gauge = self.family.active.with_label_values(&[method]);
        map.insert(method, gauge.clone());
        gauge
    }

    /// Records one HTTP request: `path` is the route template (never the raw path), `method`
    /// one of the standard methods or `other`.
    #[allow(clippy::too_many_arguments)]
    pub fn http(
        &self,
        path: &'static str,
        method: &'static str,
        status: u16,
        custom: &[&str],
        seconds: f64,
        request_bytes: usize,
        response_bytes: usize,
    ) {
        let series = if custom.is_empty() {
            let map = self.http.pin();
            match map.get(&(path, method, status)) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(self.resolve_http(path, method, status, custom));
                    map.insert((path, method, status), s.clone());
                    s
                }
            }
        } else {
            // Custom label values vary per request: resolved through the family (bounded by
            // the per-label cap).
            Arc::new(self.resolve_http(path, method, status, custom))
        };
        series.requests.inc();
        series.duration.observe(seconds);
        if request_bytes > 0 {
            series.request_size.observe(request_bytes as f64);
        }
        if response_bytes > 0 {
            series.response_size.observe(response_bytes as f64);
        }
    }

    fn resolve_http(&self, path: &str, method: &str, status: u16, custom: &[&str]) -> HttpSeries {
        let status = status.to_string();
        let labels: Vec<&str> = [path, method, status.as_str()]
            .into_iter()
            .chain(custom.iter().copied())
            .collect();
        let f = &self.family;
        HttpSeries {
            requests: f.http_requests.with_label_values(&labels),
            duration: f.http_duration.with_label_values(&labels),
            request_size: f.http_request_size.with_label_values(&labels),
            response_size: f.http_response_size.with_label_values(&labels),
        }
    }
}

/// Joins label values into `out`, each followed by 0xFF (a byte UTF-8 never contains), so that
/// two label sets are equal exactly when their joined bytes are.
fn join_labels(values: &[&str], out: &mut Vec<u8>) {
    out.clear();
    for value in values {
        out.extend_from_slice(value.as_bytes());
        out.push(0xFF);
    }
}

/// Bifrost's normalised error type for a failed request.
pub fn error_type(status: u16, decision: Option<&str>, message: Option<&str>, model_request: bool) -> &'static str {
    use crate::filter::decision as d;
    if let Some(decision) = decision {
        return match decision {
            d::BUDGET_EXCEEDED => "policy_budget_exceeded",
            d::RATE_LIMITED | d::TOKEN_LIMITED | d::REQUEST_LIMITED => "policy_rate_limited",
            d::MODEL_BLOCKED => "policy_model_blocked",
            d::PROVIDER_BLOCKED => "policy_provider_blocked",
            _ => "policy_access_denied",
        };
    }
    let message = message.unwrap_or_default();
    if message.contains("could not connect") || message.contains("connection refused") {
        return "provider_connection_failed";
    }
    match status {
        401 | 403 => "provider_auth_failed",
        402 => "provider_billing",
        429 => "provider_rate_limited",
        404 if model_request => "caller_model_unknown",
        499 => "caller_cancelled",
        503 | 529 => "provider_overloaded",
        504 => "provider_timeout",
        400..=499 => "caller_invalid_request",
        500..=599 => "provider_server_error",
        _ => "_OTHER",
    }
}

/// The method label of an HTTP method: standard ones by name, anything else `other`.
pub fn http_method(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_resolved_once_and_custom_values_are_capped() {
        let registry = Registry::new();
        let m = BifrostMetrics::register(&registry, &["env".into(), "provider".into()]);
        assert_eq!(
            m.custom_labels(),
            ["env"],
            "a custom label named like a base label is dropped"
        );
        let values = [
            "openai",
            "gpt-4o",
            "chat_completion",
            "",
            "",
            "",
            "",
            "k",
            "main",
            "0",
            "",
            "",
            "",
            "",
            "prod",
        ];
        let a = m.llm(&values);
        let b = m.llm(&values);
        assert!(Arc::ptr_eq(&a, &b));
        a.success.inc();
        a.error(502, "provider_server_error");
        a.error(502, "provider_server_error");
        let text = {
            use prometheus::Encoder;
            let mut out = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&registry.gather(), &mut out)
                .expect("encode");
            String::from_utf8(out).expect("utf8")
        };
        assert!(text.contains("bifrost_error_requests_total{"), "{text}");
        assert!(text.contains("status_code=\"502\""));
        assert!(
            text.lines()
                .any(|l| l.contains("error_type=\"provider_server_error\"") && l.ends_with(" 2")),
            "{text}"
        );
        for i in 0..CUSTOM_VALUES_CAP {
            assert_eq!(m.custom_value(0, &format!("v{i}")), format!("v{i}"));
        }
        assert_eq!(m.custom_value(0, "v3"), "v3", "a seen value stays");
        assert_eq!(m.custom_value(0, "new"), "other", "past the cap values fold");
    }

    #[test]
    fn error_types_follow_bifrost() {
        assert_eq!(
            error_type(402, Some("budget_exceeded"), None, true),
            "policy_budget_exceeded"
        );
        assert_eq!(
            error_type(429, Some("token_limited"), None, true),
            "policy_rate_limited"
        );
        assert_eq!(
            error_type(401, Some("virtual_key_required"), None, true),
            "policy_access_denied"
        );
        assert_eq!(error_type(429, None, None, true), "provider_rate_limited");
        assert_eq!(error_type(404, None, None, true), "caller_model_unknown");
        assert_eq!(error_type(400, None, None, true), "caller_invalid_request");
        assert_eq!(error_type(503, None, None, true), "provider_overloaded");
        assert_eq!(error_type(500, None, None, true), "provider_server_error");
        assert_eq!(
            error_type(502, None, Some("provider x: could not connect"), true),
            "provider_connection_failed"
        );
    }
}
