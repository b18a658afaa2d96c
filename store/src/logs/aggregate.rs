//! Stats and charts over the logs, from the hourly rollup where the filter allows it.
//!
//! A filter on provider, model, status, request type and time only is answered from
//! `logs_rollup` for the whole hours of its range, and from the logs themselves for the
//! partial hours at either end; any other filter (and a chart whose buckets are shorter than
//! an hour) reads the logs. Both backends run these
//! statements through one primitive (rows of values), so the planning is written once.

use super::query::{Dialect, LogFilter, Sql};
use super::row::SqlValue;
use super::{Bucket, LogStats, LogStoreError, ModelBucket};

/// The rollup's granularity.
const HOUR_MS: i64 = 3_600_000;

/// Runs one statement, returning its rows.
pub type Run<'a> = dyn FnMut(&Sql) -> Result<Vec<Vec<SqlValue>>, LogStoreError> + 'a;

/// Where a filter's rows are read from.
struct Plan {
    /// Filters over the logs (the partial hours, or everything).
    raw: Vec<LogFilter>,
    /// Whole hours `[from, to)` (either end open) from the rollup.
    rollup: Option<(Option<i64>, Option<i64>)>,
}

fn plan(filter: &LogFilter) -> Plan {
    let compatible = filter.virtual_key_ids.is_empty()
        && filter.selected_key_ids.is_empty()
        && filter.routing_rule_ids.is_empty()
        && filter.team_ids.is_empty()
        && filter.customer_ids.is_empty()
        && filter.parent_request_id.is_none()
        && filter.min_latency.is_none()
        && filter.max_latency.is_none()
        && filter.min_tokens.is_none()
        && filter.max_tokens.is_none()
        && filter.min_cost.is_none()
        && filter.max_cost.is_none()
        && filter.content_search.as_deref().is_none_or(str::is_empty)
        && !filter.missing_cost_only;
    if !compatible {
        return Plan {
            raw: vec![filter.clone()],
            rollup: None,
        };
    }
    // The first whole hour at or after start; the hour after the last whole one before end.
    let from = filter
        .start_ms
        .map(|s| s.div_euclid(HOUR_MS) + i64::from(s.rem_euclid(HOUR_MS) != 0));
    let to = filter.end_ms.map(|e| e.saturating_add(1).div_euclid(HOUR_MS));
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Plan {
            raw: vec![filter.clone()],
            rollup: None,
        };
    }
    let mut raw = Vec::new();
    if let (Some(start), Some(f)) = (filter.start_ms, from)
        && start < f.saturating_mul(HOUR_MS)
    {
        raw.push(LogFilter {
            end_ms: Some(f.saturating_mul(HOUR_MS) - 1),
            ..filter.clone()
        });
    }
    if let (Some(end), Some(t)) = (filter.end_ms, to)
        && end >= t.saturating_mul(HOUR_MS)
    {
        raw.push(LogFilter {
            start_ms: Some(t.saturating_mul(HOUR_MS)),
            ..filter.clone()
        });
    }
    Plan {
        raw,
        rollup: Some((from, to)),
    }
}

/// The plan for a chart: buckets that are not whole hours read the logs.
fn plan_for_buckets(filter: &LogFilter, bucket_ms: i64) -> Plan {
    if bucket_ms % HOUR_MS != 0 {
        return Plan {
            raw: vec![filter.clone()],
            rollup: None,
        };
    }
    plan(filter)
}

/// The rollup's `WHERE` for a filter's dimensions and an hour range.
fn rollup_where(sql: &mut Sql, filter: &LogFilter, range: (Option<i64>, Option<i64>)) {
    sql.push(" WHERE 1=1");
    for (column, values) in [
        ("provider", &filter.providers),
        ("model", &filter.models),
        ("status", &filter.statuses),
        ("object_type", &filter.objects),
    ] {
        if !values.is_empty() {
            sql.any_of(column, values);
        }
    }
    if let Some(from) = range.0 {
        sql.push(" AND hour >= ");
        sql.bind(SqlValue::Int(from));
    }
    if let Some(to) = range.1 {
        sql.push(" AND hour < ");
        sql.bind(SqlValue::Int(to));
    }
}

const STATS_RAW: &str = "SELECT COUNT(*), \
    CAST(COALESCE(SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(latency), 0) AS DOUBLE PRECISION), COUNT(latency), \
    CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), \
    CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION) FROM logs";

const STATS_ROLLUP: &str = "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN status = 'success' THEN requests ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN status = 'error' THEN requests ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(latency_sum), 0) AS DOUBLE PRECISION), CAST(COALESCE(SUM(latency_n), 0) AS BIGINT), \
    CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), \
    CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION) FROM logs_rollup";

/// Sums a stats row into `acc` (count, success, error, latency sum, latency count, prompt,
/// completion, total, cost).
fn add_stats(acc: &mut [f64; 9], row: &[SqlValue]) {
    for (slot, value) in acc.iter_mut().zip(row) {
        *slot += value.clone().real().unwrap_or(0.0);
    }
}

/// Totals over what a filter selects.
pub fn stats(dialect: Dialect, filter: &LogFilter, run: &mut Run<'_>) -> Result<LogStats, LogStoreError> {
    let plan = plan(filter);
    let mut acc = [0.0; 9];
    for raw in &plan.raw {
        let mut sql = Sql::new(dialect);
        sql.push(STATS_RAW);
        raw.render_into(&mut sql);
        for row in run(&sql)? {
            add_stats(&mut acc, &row);
        }
    }
    if let Some(range) = plan.rollup {
        let mut sql = Sql::new(dialect);
        sql.push(STATS_ROLLUP);
        rollup_where(&mut sql, filter, range);
        for row in run(&sql)? {
            add_stats(&mut acc, &row);
        }
    }
    Ok(stats_from(&acc))
}

/// Stats from sums (count, success, error, latency sum, latency count, prompt, completion,
/// total, cost).
fn stats_from(acc: &[f64; 9]) -> LogStats {
    let int = |v: f64| v.round() as i64;
    LogStats {
        total_requests: int(acc[0]),
        success_count: int(acc[1]),
        error_count: int(acc[2]),
        average_latency: if acc[4] > 0.0 { acc[3] / acc[4] } else { 0.0 },
        prompt_tokens: int(acc[5]),
        completion_tokens: int(acc[6]),
        total_tokens: int(acc[7]),
        total_cost: acc[8],
    }
}

/// Aggregates per time bucket (latency percentiles are filled by the caller from raw rows).
pub fn histogram(
    dialect: Dialect,
    filter: &LogFilter,
    bucket_ms: i64,
    run: &mut Run<'_>,
) -> Result<Vec<Bucket>, LogStoreError> {
    let bucket = bucket_ms.max(1);
    let plan = plan_for_buckets(filter, bucket);
    let mut sums: std::collections::BTreeMap<i64, [f64; 10]> = std::collections::BTreeMap::new();
    let mut add = |rows: Vec<Vec<SqlValue>>| {
        for row in rows {
            let Some(start) = row.first().map(|v| v.clone().int()) else {
                continue;
            };
            let slot = sums.entry(start).or_insert([0.0; 10]);
            for (acc, value) in slot.iter_mut().zip(&row[1..]) {
                *acc += value.clone().real().unwrap_or(0.0);
            }
        }
    };
    const COLUMNS: &str = "COUNT(*), \
        CAST(COALESCE(SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), \
        CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cached_read_tokens), 0) AS BIGINT), \
        CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION), CAST(COALESCE(SUM(latency), 0) AS DOUBLE PRECISION), \
        COUNT(latency)";
    for raw in &plan.raw {
        let mut sql = Sql::new(dialect);
        sql.push(&format!(
            "SELECT (timestamp / {bucket}) * {bucket} AS bucket, {COLUMNS} FROM logs"
        ));
        raw.render_into(&mut sql);
        sql.push(" GROUP BY bucket");
        add(run(&sql)?);
    }
    if let Some(range) = plan.rollup {
        let mut sql = Sql::new(dialect);
        sql.push(&format!(
            "SELECT ((hour * {HOUR_MS}) / {bucket}) * {bucket} AS bucket, \
             CAST(SUM(requests) AS BIGINT), \
             CAST(SUM(CASE WHEN status = 'success' THEN requests ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN status = 'error' THEN requests ELSE 0 END) AS BIGINT), \
             CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), \
             CAST(SUM(total_tokens) AS BIGINT), CAST(SUM(cached_read_tokens) AS BIGINT), \
             CAST(SUM(cost) AS DOUBLE PRECISION), CAST(SUM(latency_sum) AS DOUBLE PRECISION), \
             CAST(SUM(latency_n) AS BIGINT) FROM logs_rollup"
        ));
        rollup_where(&mut sql, filter, range);
        sql.push(" GROUP BY bucket");
        add(run(&sql)?);
    }
    let int = |v: f64| v.round() as i64;
    Ok(sums
        .into_iter()
        .filter(|(_, s)| s[0] > 0.0)
        .map(|(start_ms, s)| Bucket {
            start_ms,
            count: int(s[0]),
            success: int(s[1]),
            error: int(s[2]),
            prompt_tokens: int(s[3]),
            completion_tokens: int(s[4]),
            total_tokens: int(s[5]),
            cached_read_tokens: int(s[6]),
            cost: s[7],
            avg_latency: if s[9] > 0.0 { s[8] / s[9] } else { 0.0 },
            latency_percentiles: [0.0; 3],
        })
        .collect())
}

/// Aggregates per time bucket and model.
pub fn model_histogram(
    dialect: Dialect,
    filter: &LogFilter,
    bucket_ms: i64,
    run: &mut Run<'_>,
) -> Result<Vec<ModelBucket>, LogStoreError> {
    let bucket = bucket_ms.max(1);
    let plan = plan_for_buckets(filter, bucket);
    let mut sums: std::collections::BTreeMap<(i64, String), [f64; 4]> = std::collections::BTreeMap::new();
    let mut add = |rows: Vec<Vec<SqlValue>>| {
        for row in rows {
            let mut values = row.into_iter();
            let (Some(start), Some(model)) = (values.next(), values.next()) else {
                continue;
            };
            let slot = sums
                .entry((start.int(), model.text().unwrap_or_default()))
                .or_insert([0.0; 4]);
            for (acc, value) in slot.iter_mut().zip(values) {
                *acc += value.real().unwrap_or(0.0);
            }
        }
    };
    for raw in &plan.raw {
        let mut sql = Sql::new(dialect);
        sql.push(&format!(
            "SELECT (timestamp / {bucket}) * {bucket} AS bucket, model, COUNT(*), \
             CAST(COALESCE(SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION) FROM logs"
        ));
        raw.render_into(&mut sql);
        sql.push(" GROUP BY bucket, model");
        add(run(&sql)?);
    }
    if let Some(range) = plan.rollup {
        let mut sql = Sql::new(dialect);
        sql.push(&format!(
            "SELECT ((hour * {HOUR_MS}) / {bucket}) * {bucket} AS bucket, model, CAST(SUM(requests) AS BIGINT), \
             CAST(SUM(CASE WHEN status = 'success' THEN requests ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN status = 'error' THEN requests ELSE 0 END) AS BIGINT), \
             CAST(SUM(cost) AS DOUBLE PRECISION) FROM logs_rollup"
        ));
        rollup_where(&mut sql, filter, range);
        sql.push(" GROUP BY bucket, model");
        add(run(&sql)?);
    }
    let int = |v: f64| v.round() as i64;
    Ok(sums
        .into_iter()
        .filter(|(_, s)| s[0] > 0.0)
        .map(|((start_ms, model), s)| ModelBucket {
            start_ms,
            model,
            total: int(s[0]),
            success: int(s[1]),
            error: int(s[2]),
            cost: s[3],
        })
        .collect())
}

/// A page found by reading every matching row once: the ids of the page (in order), the total
/// and the stats. Used for content searches, whose text match is the expensive part and must
/// not run twice (once for the page, once for the stats).
pub fn search_once(
    dialect: Dialect,
    query: &super::query::LogQuery,
    run: &mut Run<'_>,
) -> Result<(Vec<String>, LogStats), LogStoreError> {
    use super::query::{Order, SortBy};
    let mut sql = Sql::new(dialect);
    sql.push("SELECT id, timestamp, status, latency, prompt_tokens, completion_tokens, total_tokens, cost FROM logs");
    query.filter.render_into(&mut sql);
    let rows = run(&sql)?;
    let mut acc = [0.0; 9];
    struct Key {
        id: String,
        sort: Option<f64>,
    }
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let mut v = row.into_iter();
        let id = v.next().and_then(SqlValue::text).unwrap_or_default();
        let timestamp = v.next().and_then(SqlValue::real);
        let status = v.next().and_then(SqlValue::text).unwrap_or_default();
        let latency = v.next().and_then(SqlValue::real);
        let prompt = v.next().and_then(SqlValue::real).unwrap_or(0.0);
        let completion = v.next().and_then(SqlValue::real).unwrap_or(0.0);
        let total = v.next().and_then(SqlValue::real).unwrap_or(0.0);
        let cost = v.next().and_then(SqlValue::real);
        acc[0] += 1.0;
        acc[1] += f64::from(u8::from(status == "success"));
        acc[2] += f64::from(u8::from(status == "error"));
        if let Some(l) = latency {
            acc[3] += l;
            acc[4] += 1.0;
        }
        acc[5] += prompt;
        acc[6] += completion;
        acc[7] += total;
        acc[8] += cost.unwrap_or(0.0);
        let sort = match query.sort_by {
            SortBy::Timestamp => timestamp,
            SortBy::Latency => latency,
            SortBy::Tokens => Some(total),
            SortBy::Cost => cost,
        };
        keys.push(Key { id, sort });
    }
    let descending = query.order == Order::Desc;
    keys.sort_by(|a, b| {
        // Rows without a value last either way; ties by id in the same direction.
        let by_value = match (a.sort, b.sort) {
            (Some(x), Some(y)) => {
                let o = x.total_cmp(&y);
                if descending { o.reverse() } else { o }
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_value.then_with(|| if descending { b.id.cmp(&a.id) } else { a.id.cmp(&b.id) })
    });
    let offset = usize::try_from(query.offset).unwrap_or(0);
    let limit = usize::try_from(query.limit).unwrap_or(0);
    let page = keys.into_iter().skip(offset).take(limit).map(|k| k.id).collect();
    Ok((page, stats_from(&acc)))
}

/// The rows with these ids, in the order given.
pub fn rows_in_order(
    dialect: Dialect,
    ids: &[String],
    run: &mut Run<'_>,
) -> Result<Vec<super::row::LogRow>, LogStoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(dialect);
    sql.push(&format!("SELECT {} FROM logs WHERE 1=1", super::query::column_list()));
    sql.any_of("id", ids);
    let mut rows: Vec<super::row::LogRow> = run(&sql)?.into_iter().map(super::row::LogRow::from_values).collect();
    rows.sort_by_key(|r| ids.iter().position(|id| *id == r.id).unwrap_or(usize::MAX));
    Ok(rows)
}

/// One page of rows with the total and stats: a content search in one pass, anything else as a
/// page query plus stats (from the rollup where it can).
pub fn search(
    dialect: Dialect,
    q: &super::query::LogQuery,
    run: &mut Run<'_>,
) -> Result<super::LogPage, LogStoreError> {
    if q.filter.content_search.as_deref().is_some_and(|t| !t.is_empty()) {
        let (ids, stats) = search_once(dialect, q, run)?;
        let rows = rows_in_order(dialect, &ids, run)?;
        return Ok(super::LogPage {
            rows,
            total: stats.total_requests,
            stats,
        });
    }
    let page = super::query::page(dialect, q);
    let rows = run(&page)?.into_iter().map(super::row::LogRow::from_values).collect();
    let stats = stats(dialect, &q.filter, run)?;
    Ok(super::LogPage {
        rows,
        total: stats.total_requests,
        stats,
    })
}

/// [`histogram`], with each bucket's latency percentiles when asked (read from the rows).
pub fn histogram_with_percentiles(
    dialect: Dialect,
    filter: &LogFilter,
    bucket_ms: i64,
    percentiles: bool,
    run: &mut Run<'_>,
) -> Result<Vec<Bucket>, LogStoreError> {
    let mut buckets = histogram(dialect, filter, bucket_ms, run)?;
    if percentiles {
        let sql = super::query::latencies(dialect, filter, bucket_ms);
        let pairs: Vec<(i64, f64)> = run(&sql)?
            .into_iter()
            .map(|row| {
                let mut v = row.into_iter();
                let bucket = v.next().map_or(0, SqlValue::int);
                let latency = v.next().and_then(SqlValue::real).unwrap_or(0.0);
                (bucket, latency)
            })
            .collect();
        super::fill_percentiles(&mut buckets, &pairs);
    }
    Ok(buckets)
}

/// Distinct providers, models, request types, and `(id, name)` pairs of keys, rules, teams and
/// customers, for the dashboard's filter lists (at most 1,000 of each).
pub fn filter_data(dialect: Dialect, run: &mut Run<'_>) -> Result<super::FilterData, LogStoreError> {
    let mut strings = |column: &str| -> Result<Vec<String>, LogStoreError> {
        let mut sql = Sql::new(dialect);
        sql.push(&format!(
            "SELECT DISTINCT {column} FROM logs WHERE {column} IS NOT NULL AND {column} <> '' ORDER BY {column} LIMIT 1000"
        ));
        Ok(run(&sql)?
            .into_iter()
            .filter_map(|row| row.into_iter().next().and_then(SqlValue::text))
            .collect())
    };
    let providers = strings("provider")?;
    let models = strings("model")?;
    let objects = strings("object_type")?;
    let mut pairs = |id: &str, name: &str| -> Result<Vec<(String, String)>, LogStoreError> {
        let mut sql = Sql::new(dialect);
        sql.push(&format!(
            "SELECT {id}, MAX(COALESCE({name}, '')) FROM logs WHERE {id} IS NOT NULL AND {id} <> '' GROUP BY {id} ORDER BY {id} LIMIT 1000"
        ));
        Ok(run(&sql)?
            .into_iter()
            .filter_map(|row| {
                let mut values = row.into_iter();
                Some((values.next()?.text()?, values.next()?.text().unwrap_or_default()))
            })
            .collect())
    };
    Ok(super::FilterData {
        providers,
        models,
        objects,
        selected_keys: pairs("selected_key_id", "selected_key_name")?,
        virtual_keys: pairs("virtual_key_id", "virtual_key_name")?,
        routing_rules: pairs("routing_rule_id", "routing_rule_name")?,
        teams: pairs("team_id", "team_name")?,
        customers: pairs("customer_id", "customer_name")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_rollup_hours_and_raw_edges() {
        let h = HOUR_MS;
        let f = LogFilter {
            providers: vec!["openai".into()],
            start_ms: Some(h + h / 2),
            end_ms: Some(4 * h + 10),
            ..Default::default()
        };
        let p = plan(&f);
        // Whole hours 2 and 3; 1.5h..2h and 4h..4h+10ms raw.
        assert_eq!(p.rollup, Some((Some(2), Some(4))));
        assert_eq!(p.raw.len(), 2);
        assert_eq!((p.raw[0].start_ms, p.raw[0].end_ms), (Some(h + h / 2), Some(2 * h - 1)));
        assert_eq!((p.raw[1].start_ms, p.raw[1].end_ms), (Some(4 * h), Some(4 * h + 10)));
        let aligned = plan(&LogFilter {
            start_ms: Some(2 * h),
            end_ms: Some(4 * h - 1),
            ..Default::default()
        });
        assert_eq!((aligned.rollup, aligned.raw.len()), (Some((Some(2), Some(4))), 0));
        let narrow = plan(&LogFilter {
            start_ms: Some(1_000),
            end_ms: Some(2_000),
            ..Default::default()
        });
        assert_eq!((narrow.rollup, narrow.raw.len()), (None, 1));
        let keyed = plan(&LogFilter {
            virtual_key_ids: vec!["vk".into()],
            ..Default::default()
        });
        assert!(keyed.rollup.is_none(), "key filters read the logs");
        let open = plan(&LogFilter::default());
        assert_eq!((open.rollup, open.raw.len()), (Some((None, None)), 0));
        assert!(plan_for_buckets(&LogFilter::default(), 60_000).rollup.is_none());
    }
}
