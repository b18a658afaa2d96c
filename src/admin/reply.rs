//! Replies of the management API: JSON bodies, and errors in Bifrost's shape
//! (`{"is_bifrost_error": false, "status_code": N, "error": {"message": ...}}`).

use asbru_store::backend::StoreError;
use serde::Serialize;
use serde_json::{Value, json};

/// A failed management call: its status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// What went wrong, in words an operator can act on.
    pub message: String,
}

impl ApiError {
    /// A 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }

    /// A 404 for `what`.
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            message: format!("{} not found", what.into()),
        }
    }

    /// A 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 409,
            message: message.into(),
        }
    }

    /// A 401.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: 401,
            message:
                "authentication required: log in at /api/session/login, or send Basic credentials or a session token"
                    .into(),
        }
    }

    /// A 429 after too many failed logins.
    pub fn too_many() -> ApiError {
        ApiError {
            status: 429,
            message: "too many failed logins from this address; try again in a minute".into(),
        }
    }

    /// A 405 naming the methods the path takes.
    pub fn method(allowed: &str) -> ApiError {
        ApiError {
            status: 405,
            message: format!("method not allowed here; use {allowed}"),
        }
    }

    /// The config store is off (file-only mode): nothing can be written.
    pub fn no_store() -> ApiError {
        ApiError {
            status: 503,
            message: "config store not available: asbru runs from its config file only (config_store.enabled: false), so the management API cannot change or list stored configuration".into(),
        }
    }

    /// The body as Bifrost's error shape.
    pub fn body(&self) -> Vec<u8> {
        let body = json!({
            "is_bifrost_error": false,
            "status_code": self.status,
            "error": {"message": self.message},
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Disabled => ApiError::no_store(),
            StoreError::Conflict(what) => ApiError::conflict(what),
            other => {
                tracing::warn!("management API: config store error: {other}");
                ApiError {
                    status: 503,
                    message: format!("config store error: {other}"),
                }
            }
        }
    }
}

/// A successful reply: status, JSON body, and extra headers (a session cookie).
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
    /// Extra response headers.
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body,
            headers: Vec::new(),
        }
    }

    /// `{"message": "<message>", "<entity>": <value>}`, as Bifrost answers writes.
    pub fn written(message: &str, entity: &str, value: impl Serialize) -> Reply {
        let mut body = serde_json::Map::new();
        body.insert("message".into(), Value::String(message.into()));
        body.insert(entity.into(), serde_json::to_value(value).unwrap_or(Value::Null));
        Reply::ok(Value::Object(body))
    }

    /// `{"message": "<message>"}`.
    pub fn message(message: &str) -> Reply {
        Reply::ok(json!({ "message": message }))
    }
}

/// The result of a handler.
pub type ApiResult = Result<Reply, ApiError>;

/// Parses a JSON request body into `T`; the error names what is wrong.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}
