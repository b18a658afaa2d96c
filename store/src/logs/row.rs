//! [`LogRow`]: one request's row, and its columns in one list both backends bind from.

/// A value bound to or read from a column.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
}

impl SqlValue {
    pub(crate) fn text(self) -> Option<String> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn int(self) -> i64 {
        match self {
            SqlValue::Int(i) => i,
            SqlValue::Real(f) => f as i64,
            _ => 0,
        }
    }

    pub(crate) fn real(self) -> Option<f64> {
        match self {
            SqlValue::Real(f) => Some(f),
            SqlValue::Int(i) => Some(i as f64),
            _ => None,
        }
    }
}

/// A value bound to a column, borrowed from its row (inserts bind rows without copying them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqlRef<'a> {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(&'a str),
}

impl SqlRef<'_> {
    fn owned(self) -> SqlValue {
        match self {
            SqlRef::Null => SqlValue::Null,
            SqlRef::Int(i) => SqlValue::Int(i),
            SqlRef::Real(f) => SqlValue::Real(f),
            SqlRef::Text(s) => SqlValue::Text(s.to_string()),
        }
    }
}

/// One request, as the log stores it (Bifrost's `logs` columns that apply to asbru).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRow {
    /// The request id.
    pub id: String,
    /// `x-bf-parent-request-id`.
    pub parent_request_id: Option<String>,
    /// When the request arrived, Unix milliseconds.
    pub timestamp_ms: i64,
    /// Request type (`chat_completion`, `embedding`, ...).
    pub object_type: String,
    /// Provider that answered (or was tried last).
    pub provider: String,
    /// Model sent upstream.
    pub model: String,
    /// The `model` field as the client sent it.
    pub requested_model: String,
    /// `success` or `error`.
    pub status: String,
    /// HTTP status the client received.
    pub status_code: i64,
    /// The client asked for a stream.
    pub stream: bool,
    /// Whole request, milliseconds.
    pub latency_ms: Option<f64>,
    /// First streamed bytes, milliseconds after arrival.
    pub ttft_ms: Option<f64>,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// All tokens.
    pub total_tokens: i64,
    /// Prompt tokens read from the provider's cache.
    pub cached_read_tokens: i64,
    /// Reasoning tokens.
    pub reasoning_tokens: i64,
    /// Dollars; `None` when the model has no price.
    pub cost: Option<f64>,
    /// Tries after the first.
    pub number_of_retries: i64,
    /// 0 for the primary, n for the n-th fallback.
    pub fallback_index: i64,
    /// Provider key id.
    pub selected_key_id: Option<String>,
    /// Provider key name.
    pub selected_key_name: Option<String>,
    /// Virtual key id.
    pub virtual_key_id: Option<String>,
    /// Virtual key name.
    pub virtual_key_name: Option<String>,
    /// Team id.
    pub team_id: Option<String>,
    /// Team name.
    pub team_name: Option<String>,
    /// Customer id.
    pub customer_id: Option<String>,
    /// Customer name.
    pub customer_name: Option<String>,
    /// Routing rule id.
    pub routing_rule_id: Option<String>,
    /// Routing rule name.
    pub routing_rule_name: Option<String>,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, ...).
    pub stop_reason: Option<String>,
    /// The error the client got, as JSON.
    pub error_details: Option<String>,
    /// The input messages, as JSON.
    pub input_history: Option<String>,
    /// The output message, as JSON.
    pub output_message: Option<String>,
    /// The tools offered, as JSON.
    pub tools: Option<String>,
    /// The model parameters, as JSON.
    pub params: Option<String>,
    /// Prompt and completion text, for content search.
    pub content_summary: Option<String>,
    /// A content field was cut at the size cap.
    pub content_truncated: bool,
    /// Request headers named by `client.logging_headers`, as a JSON object.
    pub metadata: Option<String>,
    /// When the row was written, Unix milliseconds.
    pub created_at_ms: i64,
}

/// The table's columns, in the order of [`LogRow::values`].
pub const COLUMNS: &[&str] = &[
    "id",
    "parent_request_id",
    "timestamp",
    "object_type",
    "provider",
    "model",
    "requested_model",
    "status",
    "status_code",
    "stream",
    "latency",
    "time_to_first_token",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_read_tokens",
    "reasoning_tokens",
    "cost",
    "number_of_retries",
    "fallback_index",
    "selected_key_id",
    "selected_key_name",
    "virtual_key_id",
    "virtual_key_name",
    "team_id",
    "team_name",
    "customer_id",
    "customer_name",
    "routing_rule_id",
    "routing_rule_name",
    "stop_reason",
    "error_details",
    "input_history",
    "output_message",
    "tools",
    "params",
    "content_summary",
    "content_truncated",
    "metadata",
    "created_at",
];

impl LogRow {
    /// The row's values in [`COLUMNS`] order, owned.
    pub fn values(&self) -> Vec<SqlValue> {
        self.refs().into_iter().map(SqlRef::owned).collect()
    }

    /// The row's values in [`COLUMNS`] order, borrowed.
    pub fn refs(&self) -> [SqlRef<'_>; 40] {
        use SqlRef::{Int, Null, Real, Text};
        fn text(v: &Option<String>) -> SqlRef<'_> {
            v.as_deref().map_or(SqlRef::Null, SqlRef::Text)
        }
        let real = |v: Option<f64>| v.map_or(Null, Real);
        [
            Text(&self.id),
            text(&self.parent_request_id),
            Int(self.timestamp_ms),
            Text(&self.object_type),
            Text(&self.provider),
            Text(&self.model),
            Text(&self.requested_model),
            Text(&self.status),
            Int(self.status_code),
            Int(i64::from(self.stream)),
            real(self.latency_ms),
            real(self.ttft_ms),
            Int(self.prompt_tokens),
            Int(self.completion_tokens),
            Int(self.total_tokens),
            Int(self.cached_read_tokens),
            Int(self.reasoning_tokens),
            real(self.cost),
            Int(self.number_of_retries),
            Int(self.fallback_index),
            text(&self.selected_key_id),
            text(&self.selected_key_name),
            text(&self.virtual_key_id),
            text(&self.virtual_key_name),
            text(&self.team_id),
            text(&self.team_name),
            text(&self.customer_id),
            text(&self.customer_name),
            text(&self.routing_rule_id),
            text(&self.routing_rule_name),
            text(&self.stop_reason),
            text(&self.error_details),
            text(&self.input_history),
            text(&self.output_message),
            text(&self.tools),
            text(&self.params),
            text(&self.content_summary),
            Int(i64::from(self.content_truncated)),
            text(&self.metadata),
            Int(self.created_at_ms),
        ]
    }

    /// A row from values in [`COLUMNS`] order (missing values read as empty).
    pub fn from_values(values: Vec<SqlValue>) -> LogRow {
        let mut v = values.into_iter();
        let mut next = move || v.next().unwrap_or(SqlValue::Null);
        LogRow {
            id: next().text().unwrap_or_default(),
            parent_request_id: next().text(),
            timestamp_ms: next().int(),
            object_type: next().text().unwrap_or_default(),
            provider: next().text().unwrap_or_default(),
            model: next().text().unwrap_or_default(),
            requested_model: next().text().unwrap_or_default(),
            status: next().text().unwrap_or_default(),
            status_code: next().int(),
            stream: next().int() != 0,
            latency_ms: next().real(),
            ttft_ms: next().real(),
            prompt_tokens: next().int(),
            completion_tokens: next().int(),
            total_tokens: next().int(),
            cached_read_tokens: next().int(),
            reasoning_tokens: next().int(),
            cost: next().real(),
            number_of_retries: next().int(),
            fallback_index: next().int(),
            selected_key_id: next().text(),
            selected_key_name: next().text(),
            virtual_key_id: next().text(),
            virtual_key_name: next().text(),
            team_id: next().text(),
            team_name: next().text(),
            customer_id: next().text(),
            customer_name: next().text(),
            routing_rule_id: next().text(),
            routing_rule_name: next().text(),
            stop_reason: next().text(),
            error_details: next().text(),
            input_history: next().text(),
            output_message: next().text(),
            tools: next().text(),
            params: next().text(),
            content_summary: next().text(),
            content_truncated: next().int() != 0,
            metadata: next().text(),
            created_at_ms: next().int(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_the_column_list_both_ways() {
        let row = LogRow {
            id: "r1".into(),
            stream: true,
            cost: Some(0.25),
            virtual_key_id: Some("vk".into()),
            content_truncated: true,
            created_at_ms: 9,
            ..Default::default()
        };
        assert_eq!(row.values().len(), COLUMNS.len());
        assert_eq!(LogRow::from_values(row.values()), row);
    }
}
