//! The filters of the log API rendered to SQL once for both backends: only placeholders and
//! content search differ between SQLite and PostgreSQL.

use super::row::SqlValue;

/// The SQL dialect a statement is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?` placeholders; content search through the FTS5 trigram table.
    Sqlite,
    /// `$n` placeholders; content search with `ILIKE` (trigram-indexed when `pg_trgm` exists).
    Postgres,
}

/// What rows a query selects (Bifrost's log filters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// Providers (any of).
    pub providers: Vec<String>,
    /// Models (any of).
    pub models: Vec<String>,
    /// Statuses (any of).
    pub statuses: Vec<String>,
    /// Request types (any of).
    pub objects: Vec<String>,
    /// Virtual key ids (any of).
    pub virtual_key_ids: Vec<String>,
    /// Provider key ids (any of).
    pub selected_key_ids: Vec<String>,
    /// Routing rule ids (any of).
    pub routing_rule_ids: Vec<String>,
    /// Team ids (any of).
    pub team_ids: Vec<String>,
    /// Customer ids (any of).
    pub customer_ids: Vec<String>,
    /// Parent request id.
    pub parent_request_id: Option<String>,
    /// From this time on, Unix ms.
    pub start_ms: Option<i64>,
    /// Up to this time, Unix ms.
    pub end_ms: Option<i64>,
    /// Latency bounds, ms.
    pub min_latency: Option<f64>,
    /// Latency bounds, ms.
    pub max_latency: Option<f64>,
    /// Token bounds.
    pub min_tokens: Option<i64>,
    /// Token bounds.
    pub max_tokens: Option<i64>,
    /// Cost bounds, dollars.
    pub min_cost: Option<f64>,
    /// Cost bounds, dollars.
    pub max_cost: Option<f64>,
    /// Substring of the prompt or completion text.
    pub content_search: Option<String>,
    /// Only rows without a cost.
    pub missing_cost_only: bool,
}

/// Sort key of a page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Arrival time.
    #[default]
    Timestamp,
    /// Latency.
    Latency,
    /// Total tokens.
    Tokens,
    /// Cost.
    Cost,
}

impl SortBy {
    /// Parses Bifrost's `sort_by`; anything unknown is `timestamp`.
    pub fn parse(s: &str) -> SortBy {
        match s {
            "latency" => SortBy::Latency,
            "tokens" => SortBy::Tokens,
            "cost" => SortBy::Cost,
            _ => SortBy::Timestamp,
        }
    }

    /// The name as Bifrost spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::Timestamp => "timestamp",
            SortBy::Latency => "latency",
            SortBy::Tokens => "tokens",
            SortBy::Cost => "cost",
        }
    }

    fn column(self) -> &'static str {
        match self {
            SortBy::Timestamp => "timestamp",
            SortBy::Latency => "latency",
            SortBy::Tokens => "total_tokens",
            SortBy::Cost => "cost",
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Newest (largest) first.
    #[default]
    Desc,
    /// Oldest (smallest) first.
    Asc,
}

impl Order {
    /// The name as Bifrost spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Desc => "desc",
            Order::Asc => "asc",
        }
    }
}

/// A page request.
#[derive(Debug, Clone, PartialEq)]
pub struct LogQuery {
    /// Which rows.
    pub filter: LogFilter,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
    /// Sort key.
    pub sort_by: SortBy,
    /// Direction.
    pub order: Order,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            filter: LogFilter::default(),
            limit: 50,
            offset: 0,
            sort_by: SortBy::Timestamp,
            order: Order::Desc,
        }
    }
}

/// A statement's text and its bound values.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    /// The text, with placeholders.
    pub text: String,
    /// Values, in placeholder order.
    pub params: Vec<SqlValue>,
    dialect: Option<Dialect>,
}

impl Sql {
    /// An empty statement for `dialect`.
    pub fn new(dialect: Dialect) -> Sql {
        Sql {
            text: String::new(),
            params: Vec::new(),
            dialect: Some(dialect),
        }
    }

    /// Appends text.
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: SqlValue) {
        self.params.push(value);
        match self.dialect {
            Some(Dialect::Postgres) => {
                self.text.push('$');
                self.text.push_str(&self.params.len().to_string());
            }
            _ => self.text.push('?'),
        }
    }

    /// Appends ` AND column IN (...)`.
    pub fn any_of(&mut self, column: &str, values: &[String]) {
        self.push(" AND ");
        self.push(column);
        self.push(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(SqlValue::Text(v.clone()));
        }
        self.push(")");
    }
}

/// The SQL `LIKE` pattern for a substring, with `\` as the escape character.
fn like_pattern(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl LogFilter {
    /// ` WHERE ...` for this filter (always present: `WHERE 1=1` when nothing is set).
    pub fn render(&self, dialect: Dialect) -> Sql {
        let mut sql = Sql::new(dialect);
        self.render_into(&mut sql);
        sql
    }

    /// Appends ` WHERE ...` for this filter to `sql`.
    pub fn render_into(&self, sql: &mut Sql) {
        sql.push(" WHERE 1=1");
        let lists: [(&str, &[String]); 9] = [
            ("provider", &self.providers),
            ("model", &self.models),
            ("status", &self.statuses),
            ("object_type", &self.objects),
            ("virtual_key_id", &self.virtual_key_ids),
            ("selected_key_id", &self.selected_key_ids),
            ("routing_rule_id", &self.routing_rule_ids),
            ("team_id", &self.team_ids),
            ("customer_id", &self.customer_ids),
        ];
        for (column, values) in lists {
            if !values.is_empty() {
                sql.any_of(column, values);
            }
        }
        if let Some(parent) = &self.parent_request_id {
            sql.push(" AND parent_request_id = ");
            sql.bind(SqlValue::Text(parent.clone()));
        }
        let bounds: [(&str, &str, Option<SqlValue>); 8] = [
            ("timestamp", ">=", self.start_ms.map(SqlValue::Int)),
            ("timestamp", "<=", self.end_ms.map(SqlValue::Int)),
            ("latency", ">=", self.min_latency.map(SqlValue::Real)),
            ("latency", "<=", self.max_latency.map(SqlValue::Real)),
            ("total_tokens", ">=", self.min_tokens.map(SqlValue::Int)),
            ("total_tokens", "<=", self.max_tokens.map(SqlValue::Int)),
            ("cost", ">=", self.min_cost.map(SqlValue::Real)),
            ("cost", "<=", self.max_cost.map(SqlValue::Real)),
        ];
        for (column, op, value) in bounds {
            if let Some(value) = value {
                sql.push(&format!(" AND {column} {op} "));
                sql.bind(value);
            }
        }
        if self.missing_cost_only {
            sql.push(" AND cost IS NULL");
        }
        if let Some(term) = self.content_search.as_deref().filter(|t| !t.is_empty()) {
            match sql.dialect {
                // The trigram index serves `LIKE` on three characters or more, and only without an
                // ESCAPE clause; shorter terms, or terms holding a wildcard character, scan.
                Some(Dialect::Sqlite) if term.chars().count() >= 3 && !term.contains(['%', '_', '\\']) => {
                    sql.push(" AND rowid IN (SELECT rowid FROM logs_fts WHERE content_summary LIKE ");
                    sql.bind(SqlValue::Text(format!("%{term}%")));
                    sql.push(")");
                }
                Some(Dialect::Postgres) => {
                    sql.push(" AND content_summary ILIKE ");
                    sql.bind(SqlValue::Text(like_pattern(term)));
                    sql.push(" ESCAPE '\\'");
                }
                _ => {
                    sql.push(" AND content_summary LIKE ");
                    sql.bind(SqlValue::Text(like_pattern(term)));
                    sql.push(" ESCAPE '\\'");
                }
            }
        }
    }
}

/// Every column, for `SELECT`.
pub fn column_list() -> String {
    super::row::COLUMNS.join(", ")
}

/// One page of rows.
pub fn page(dialect: Dialect, query: &LogQuery) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push(&format!("SELECT {} FROM logs", column_list()));
    query.filter.render_into(&mut sql);
    let direction = match query.order {
        Order::Desc => "DESC",
        Order::Asc => "ASC",
    };
    // Timestamps are never NULL and ordered by an index; the other keys may be NULL (no cost,
    // no latency), and such rows sort last either way, ties broken by id.
    let column = query.sort_by.column();
    if query.sort_by == SortBy::Timestamp {
        sql.push(&format!(" ORDER BY {column} {direction} LIMIT "));
    } else {
        sql.push(&format!(
            " ORDER BY {column} {direction} NULLS LAST, id {direction} LIMIT "
        ));
    }
    sql.bind(SqlValue::Int(query.limit));
    sql.push(" OFFSET ");
    sql.bind(SqlValue::Int(query.offset));
    sql
}

/// Latencies per time bucket, for percentiles (only rows with a latency).
pub fn latencies(dialect: Dialect, filter: &LogFilter, bucket_ms: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    let bucket = bucket_ms.max(1);
    sql.push(&format!(
        "SELECT (timestamp / {bucket}) * {bucket} AS bucket, latency FROM logs"
    ));
    filter.render_into(&mut sql);
    sql.push(" AND latency IS NOT NULL ORDER BY bucket, latency");
    sql
}

/// `DELETE` of the rows a filter selects.
pub fn delete(dialect: Dialect, filter: &LogFilter) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM logs");
    filter.render_into(&mut sql);
    sql
}

/// `DELETE` of rows by id.
pub fn delete_ids(dialect: Dialect, ids: &[String]) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM logs WHERE 1=1");
    sql.any_of("id", ids);
    sql
}

/// The value at quantile `q` (0 to 1) of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_render_with_each_dialects_placeholders() {
        let filter = LogFilter {
            providers: vec!["openai".into(), "anthropic".into()],
            statuses: vec!["success".into()],
            start_ms: Some(5),
            content_search: Some("100%_x".into()),
            missing_cost_only: true,
            ..Default::default()
        };
        let pg = filter.render(Dialect::Postgres);
        assert_eq!(
            pg.text,
            " WHERE 1=1 AND provider IN ($1, $2) AND status IN ($3) AND timestamp >= $4 AND cost IS NULL AND content_summary ILIKE $5 ESCAPE '\\'"
        );
        assert_eq!(pg.params[4], SqlValue::Text("%100\\%\\_x%".into()));
        let lite = filter.render(Dialect::Sqlite);
        assert!(lite.text.contains("provider IN (?, ?)"));
        assert!(
            lite.text.contains("content_summary LIKE ? ESCAPE"),
            "a term with a wildcard character scans"
        );
        let indexed = LogFilter {
            content_search: Some("otter".into()),
            ..Default::default()
        }
        .render(Dialect::Sqlite);
        assert!(indexed.text.contains("logs_fts WHERE content_summary LIKE ?"));
        assert_eq!(indexed.params[0], SqlValue::Text("%otter%".into()));
        let short = LogFilter {
            content_search: Some("ab".into()),
            ..Default::default()
        };
        assert!(short.render(Dialect::Sqlite).text.contains("content_summary LIKE ?"));
    }

    #[test]
    fn pages_sort_and_limit() {
        let q = LogQuery {
            sort_by: SortBy::Cost,
            order: Order::Asc,
            limit: 10,
            offset: 20,
            ..Default::default()
        };
        let sql = page(Dialect::Postgres, &q);
        assert!(
            sql.text
                .ends_with("ORDER BY cost ASC NULLS LAST, id ASC LIMIT $1 OFFSET $2")
        );
        assert_eq!(sql.params, vec![SqlValue::Int(10), SqlValue::Int(20)]);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.9), 90.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[7.0], 0.95), 7.0);
    }
}
