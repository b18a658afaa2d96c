//! `/api/logs...`: the request log's query API, in Bifrost's shapes.
//!
//! - `GET /api/logs`: filters (comma-separated lists, RFC 3339 or Unix-second times, ranges,
//!   `content_search`, `missing_cost_only`), `limit` (1 to 1000, default 50), `offset`,
//!   `sort_by` (`timestamp`, `latency`, `tokens`, `cost`), `order`; replies
//!   `{logs, pagination, stats, has_logs}`.
//! - `GET /api/logs/{id}`, `/stats`, `/histogram[/tokens|/cost|/models|/latency]`,
//!   `/filterdata`, `/dropped`; `DELETE /api/logs` with `{"ids": [...]}` or with filters in
//!   the query.
//! - `GET /api/logs/stream`: server-sent events, one `log` event per finished request.
//!
//! Store calls run on blocking threads; a log database that is down answers 503.

use std::collections::BTreeMap;
use std::sync::Arc;

use asbru_store::logs::{Bucket, LogFilter, LogQuery, LogStore, LogStoreError, Order, SortBy};
use bytes::Bytes;
use http::Method;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::{Value, json};

use super::reply::{ApiError, ApiResult, Reply};
use crate::request_log::RequestLog;
use crate::request_log::row::{rfc3339, to_json};
use crate::state::Gateway;

/// A matched log route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogRoute {
    /// `/api/logs`.
    List,
    /// `/api/logs/{id}`.
    Entry,
    /// `/api/logs/stats`.
    Stats,
    /// `/api/logs/histogram...`.
    Histogram(Chart),
    /// `/api/logs/filterdata`.
    FilterData,
    /// `/api/logs/dropped`.
    Dropped,
    /// `/api/logs/stream`.
    Stream,
}

/// Which histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chart {
    /// Requests, successes, errors.
    Requests,
    /// Token sums.
    Tokens,
    /// Cost, by model.
    Cost,
    /// Requests by model.
    Models,
    /// Latency mean and percentiles.
    Latency,
}

impl From<LogStoreError> for ApiError {
    fn from(e: LogStoreError) -> ApiError {
        let status = match e {
            LogStoreError::Unavailable(_) => 503,
            _ => 500,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

fn log_of(state: &Gateway) -> Result<Arc<RequestLog>, ApiError> {
    state.request_log.clone().ok_or_else(|| ApiError {
        status: 503,
        message: "request logging is off (logs_store.enabled or client.enable_logging is false)".into(),
    })
}

/// Runs a store call on a blocking thread.
async fn blocking<T: Send + 'static>(
    store: Arc<dyn LogStore>,
    call: impl FnOnce(&dyn LogStore) -> Result<T, LogStoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || call(store.as_ref()))
        .await
        .map_err(|e| ApiError {
            status: 500,
            message: format!("log query did not finish: {e}"),
        })?
        .map_err(ApiError::from)
}

/// Answers one log route (the stream is answered by [`stream`]).
pub(crate) async fn serve(
    state: &Gateway,
    route: LogRoute,
    method: &Method,
    id: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> ApiResult {
    let log = log_of(state)?;
    let store = log.store.clone();
    let params = Params::parse(query.unwrap_or_default());
    match (route, method) {
        (LogRoute::List, &Method::GET) => {
            let q = params.query()?;
            let (page, has_logs) = blocking(store, move |s| {
                let page = s.search(&q)?;
                let has = page.total > 0 || s.has_rows()?;
                Ok((page, has))
            })
            .await?;
            let q = params.query()?;
            Ok(Reply::ok(json!({
                "logs": page.rows.iter().map(to_json).collect::<Vec<_>>(),
                "pagination": {
                    "limit": q.limit,
                    "offset": q.offset,
                    "sort_by": q.sort_by.as_str(),
                    "order": q.order.as_str(),
                    "total_count": page.total,
                },
                "stats": stats_json(&page.stats),
                "has_logs": has_logs,
            })))
        }
        (LogRoute::List, &Method::DELETE) => {
            #[derive(serde::Deserialize)]
            struct Ids {
                ids: Vec<String>,
            }
            let filter = params.filter()?;
            let deleted = if !body.iter().all(u8::is_ascii_whitespace) {
                let ids: Ids = super::reply::parse(body)?;
                if ids.ids.is_empty() {
                    return Err(ApiError::bad_request("No log IDs provided"));
                }
                blocking(store, move |s| s.delete_ids(&ids.ids)).await?
            } else if filter != LogFilter::default() {
                blocking(store, move |s| s.delete_matching(&filter)).await?
            } else {
                return Err(ApiError::bad_request(
                    "name the logs to delete: a body {\"ids\": [...]} or filters in the query (providers, start_time, ...)",
                ));
            };
            Ok(Reply::ok(
                json!({"message": "Logs deleted successfully", "deleted": deleted}),
            ))
        }
        (LogRoute::List, _) => Err(ApiError::method("GET, DELETE")),
        (LogRoute::Entry, &Method::GET) => {
            let id = id.unwrap_or_default().to_string();
            match blocking(store, move |s| s.get(&id)).await? {
                Some(row) => Ok(Reply::ok(to_json(&row))),
                None => Err(ApiError {
                    status: 404,
                    message: "log not found".into(),
                }),
            }
        }
        (LogRoute::Stats, &Method::GET) => {
            let filter = params.filter()?;
            let stats = blocking(store, move |s| s.stats(&filter)).await?;
            Ok(Reply::ok(stats_json(&stats)))
        }
        (LogRoute::Histogram(chart), &Method::GET) => histogram(store, chart, &params).await,
        (LogRoute::FilterData, &Method::GET) => {
            let data = blocking(store, |s| s.filter_data()).await?;
            let pairs = |v: &[(String, String)]| {
                v.iter()
                    .map(|(id, name)| json!({"id": id, "name": name}))
                    .collect::<Vec<_>>()
            };
            Ok(Reply::ok(json!({
                "providers": data.providers,
                "models": data.models,
                "objects": data.objects,
                "selected_keys": pairs(&data.selected_keys),
                "virtual_keys": pairs(&data.virtual_keys),
                "routing_rules": pairs(&data.routing_rules),
                "teams": pairs(&data.teams),
                "customers": pairs(&data.customers),
            })))
        }
        (LogRoute::Dropped, &Method::GET) => Ok(Reply::ok(json!({
            "dropped_requests": log.dropped(),
            "queued": log.queued(),
        }))),
        (LogRoute::Stream, _) => Err(ApiError::method("GET")),
        _ => Err(ApiError::method("GET")),
    }
}

fn stats_json(stats: &asbru_store::logs::LogStats) -> Value {
    json!({
        "total_requests": stats.total_requests,
        "success_count": stats.success_count,
        "error_count": stats.error_count,
        "success_rate": stats.success_rate(),
        "average_latency": stats.average_latency,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.total_tokens,
        "total_cost": stats.total_cost,
    })
}

/// The bucket size for a time range, as Bifrost picks it (about 60 to 120 buckets).
fn bucket_seconds(start_ms: Option<i64>, end_ms: Option<i64>) -> i64 {
    let (Some(start), Some(end)) = (start_ms, end_ms) else {
        return 3600;
    };
    let hours = (end - start) / 3_600_000;
    match hours {
        h if h >= 365 * 24 => 2_592_000,
        h if h >= 90 * 24 => 604_800,
        h if h > 31 * 24 => 259_200,
        h if h >= 7 * 24 => 86_400,
        h if h >= 3 * 24 => 28_800,
        h if h >= 24 => 3600,
        h if h >= 2 => 600,
        _ => 60,
    }
}

async fn histogram(store: Arc<dyn LogStore>, chart: Chart, params: &Params) -> ApiResult {
    let filter = params.filter()?;
    let seconds = bucket_seconds(filter.start_ms, filter.end_ms);
    let bucket_ms = seconds * 1000;
    let range = filter.start_ms.zip(filter.end_ms);
    if matches!(chart, Chart::Models | Chart::Cost) {
        let rows = blocking(store.clone(), {
            let filter = filter.clone();
            move |s| s.model_histogram(&filter, bucket_ms)
        })
        .await?;
        let mut models: Vec<String> = rows.iter().map(|r| r.model.clone()).collect();
        models.sort();
        models.dedup();
        let mut by_time: BTreeMap<i64, serde_json::Map<String, Value>> = BTreeMap::new();
        let mut cost_by_time: BTreeMap<i64, f64> = BTreeMap::new();
        for r in &rows {
            let entry = by_time.entry(r.start_ms).or_default();
            let value = if chart == Chart::Cost {
                json!(r.cost)
            } else {
                json!({"total": r.total, "success": r.success, "error": r.error})
            };
            entry.insert(r.model.clone(), value);
            *cost_by_time.entry(r.start_ms).or_default() += r.cost;
        }
        let starts = bucket_starts(range, bucket_ms, by_time.keys().copied().collect());
        let buckets: Vec<Value> = starts
            .into_iter()
            .map(|t| {
                let by_model = Value::Object(by_time.get(&t).cloned().unwrap_or_default());
                if chart == Chart::Cost {
                    json!({"timestamp": rfc3339(t), "total_cost": cost_by_time.get(&t).copied().unwrap_or(0.0), "by_model": by_model})
                } else {
                    json!({"timestamp": rfc3339(t), "by_model": by_model})
                }
            })
            .collect();
        return Ok(Reply::ok(json!({
            "buckets": buckets,
            "bucket_size_seconds": seconds,
            "models": models,
        })));
    }
    let percentiles = chart == Chart::Latency;
    let rows = blocking(store, move |s| s.histogram(&filter, bucket_ms, percentiles)).await?;
    let by_start: BTreeMap<i64, &Bucket> = rows.iter().map(|b| (b.start_ms, b)).collect();
    let empty = Bucket::default();
    let buckets: Vec<Value> = bucket_starts(range, bucket_ms, by_start.keys().copied().collect())
        .into_iter()
        .map(|t| {
            let b = by_start.get(&t).copied().unwrap_or(&empty);
            let ts = rfc3339(t);
            match chart {
                Chart::Tokens => json!({
                    "timestamp": ts,
                    "prompt_tokens": b.prompt_tokens,
                    "completion_tokens": b.completion_tokens,
                    "total_tokens": b.total_tokens,
                    "cached_read_tokens": b.cached_read_tokens,
                }),
                Chart::Latency => json!({
                    "timestamp": ts,
                    "avg_latency": b.avg_latency,
                    "p90_latency": b.latency_percentiles[0],
                    "p95_latency": b.latency_percentiles[1],
                    "p99_latency": b.latency_percentiles[2],
                    "total_requests": b.count,
                }),
                _ => json!({"timestamp": ts, "count": b.count, "success": b.success, "error": b.error}),
            }
        })
        .collect();
    Ok(Reply::ok(json!({"buckets": buckets, "bucket_size_seconds": seconds})))
}

/// Every bucket start of a closed range (empty buckets filled), or the ones with rows.
fn bucket_starts(range: Option<(i64, i64)>, bucket_ms: i64, seen: Vec<i64>) -> Vec<i64> {
    match range {
        Some((start, end)) if end >= start && (end - start) / bucket_ms <= 5000 => {
            let first = start.div_euclid(bucket_ms) * bucket_ms;
            (0..).map(|i| first + i * bucket_ms).take_while(|t| *t <= end).collect()
        }
        _ => seen,
    }
}

/// The query string, decoded.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Params {
        Params(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| ApiError::bad_request(format!("{key}: {v:?} is not a number")))
            })
            .transpose()
    }

    fn time(&self, key: &str) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
            return Ok(Some(t.timestamp_millis()));
        }
        match v.parse::<i64>() {
            // Unix seconds, or milliseconds when it is too large to be seconds.
            Ok(n) if n > 100_000_000_000 => Ok(Some(n)),
            Ok(n) => Ok(Some(n.saturating_mul(1000))),
            Err(_) => Err(ApiError::bad_request(format!(
                "{key}: {v:?} is not an RFC 3339 time (2025-01-31T12:00:00Z) or Unix seconds"
            ))),
        }
    }

    fn filter(&self) -> Result<LogFilter, ApiError> {
        let mut filter = LogFilter {
            providers: self.list("providers"),
            models: self.list("models"),
            statuses: self.list("status"),
            objects: self.list("objects"),
            virtual_key_ids: self.list("virtual_key_ids"),
            selected_key_ids: self.list("selected_key_ids"),
            routing_rule_ids: self.list("routing_rule_ids"),
            team_ids: self.list("team_ids"),
            customer_ids: self.list("customer_ids"),
            parent_request_id: self
                .get("parent_request_id")
                .or_else(|| self.get("session_id"))
                .map(str::to_string),
            start_ms: self.time("start_time")?,
            end_ms: self.time("end_time")?,
            min_latency: self.number("min_latency")?,
            max_latency: self.number("max_latency")?,
            min_tokens: self.number("min_tokens")?,
            max_tokens: self.number("max_tokens")?,
            min_cost: self.number("min_cost")?,
            max_cost: self.number("max_cost")?,
            content_search: self.get("content_search").map(str::to_string),
            missing_cost_only: self.get("missing_cost_only") == Some("true"),
        };
        if let Some(period) = self.get("period") {
            let ms = period_ms(period)
                .ok_or_else(|| ApiError::bad_request(format!("period: {period:?} is not like 1h, 24h or 7d")))?;
            let now = crate::request_log::unix_millis();
            filter.start_ms = Some(now - ms);
            filter.end_ms = Some(now);
        }
        Ok(filter)
    }

    fn query(&self) -> Result<LogQuery, ApiError> {
        let limit = self.number::<i64>("limit")?.unwrap_or(50);
        if limit <= 0 {
            return Err(ApiError::bad_request("limit must be greater than 0"));
        }
        if limit > 1000 {
            return Err(ApiError::bad_request("limit cannot exceed 1000"));
        }
        let offset = self.number::<i64>("offset")?.unwrap_or(0);
        if offset < 0 {
            return Err(ApiError::bad_request("offset must not be negative"));
        }
        Ok(LogQuery {
            filter: self.filter()?,
            limit,
            offset,
            sort_by: SortBy::parse(self.get("sort_by").unwrap_or("timestamp")),
            order: match self.get("order") {
                Some("asc") => Order::Asc,
                _ => Order::Desc,
            },
        })
    }
}

/// `1h`, `24h`, `7d`, `30m` in milliseconds.
fn period_ms(period: &str) -> Option<i64> {
    let (number, unit) = period.split_at(period.len().checked_sub(1)?);
    let n: i64 = number.parse().ok()?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    super::governance::percent_decode(&s.replace('+', " "))
}

/// `GET /api/logs/stream`: one SSE `log` event per row written, until the client goes away
/// or the server stops. A subscriber too slow to keep up skips what it missed (and is told).
pub(crate) async fn stream(state: &Gateway, session: &mut Session, request_id: &str) -> pingora::Result<bool> {
    let Some(log) = state.request_log.clone() else {
        return Ok(false);
    };
    let mut events = log.tail.subscribe();
    let mut head = ResponseHeader::build(200, Some(5))?;
    head.insert_header("content-type", "text/event-stream")?;
    head.insert_header("cache-control", "no-cache")?;
    head.insert_header("x-request-id", request_id)?;
    head.insert_header("transfer-encoding", "chunked")?;
    crate::cors::decorate(&mut head, session);
    session.write_response_header(Box::new(head), false).await?;
    session
        .write_response_body(Some(Bytes::from_static(b": connected\n\n")), false)
        .await?;
    let keepalive = std::time::Duration::from_secs(15);
    loop {
        let event = match tokio::time::timeout(keepalive, events.recv()).await {
            Ok(Ok(row)) => format!("event: log\ndata: {row}\n\n"),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                format!("event: lagged\ndata: {{\"skipped\":{n}}}\n\n")
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
            Err(_) => ": keep-alive\n\n".to_string(),
        };
        if session
            .write_response_body(Some(Bytes::from(event)), false)
            .await
            .is_err()
        {
            return Ok(true);
        }
    }
    session.write_response_body(None, true).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_from_the_query() {
        let p = Params::parse(
            "providers=openai,%20anthropic&status=success&start_time=2025-01-01T00:00:00Z&end_time=1735693200&min_cost=0.5&content_search=hello+world&missing_cost_only=true",
        );
        let f = p.filter().expect("filter");
        assert_eq!(f.providers, ["openai", "anthropic"]);
        assert_eq!(f.statuses, ["success"]);
        assert_eq!(f.start_ms, Some(1_735_689_600_000));
        assert_eq!(f.end_ms, Some(1_735_693_200_000));
        assert_eq!(f.min_cost, Some(0.5));
        assert_eq!(f.content_search.as_deref(), Some("hello world"));
        assert!(f.missing_cost_only);
        assert!(Params::parse("start_time=yesterday").filter().is_err());
        assert!(Params::parse("limit=0").query().is_err());
        assert!(Params::parse("limit=1001").query().is_err());
        assert!(Params::parse("offset=-1").query().is_err());
        let q = Params::parse("sort_by=nonsense&order=asc").query().expect("query");
        assert_eq!((q.sort_by, q.order, q.limit), (SortBy::Timestamp, Order::Asc, 50));
    }

    #[test]
    fn bucket_sizes_follow_the_range() {
        let h = 3_600_000;
        assert_eq!(bucket_seconds(None, Some(1)), 3600);
        assert_eq!(bucket_seconds(Some(0), Some(h)), 60);
        assert_eq!(bucket_seconds(Some(0), Some(24 * h)), 3600);
        assert_eq!(bucket_seconds(Some(0), Some(7 * 24 * h)), 86_400);
        assert_eq!(
            bucket_starts(Some((30_000, 150_000)), 60_000, vec![]),
            [0, 60_000, 120_000]
        );
        assert_eq!(period_ms("24h"), Some(24 * h));
        assert_eq!(period_ms("x"), None);
    }
}
