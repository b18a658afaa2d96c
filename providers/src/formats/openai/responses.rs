//! The few Responses API fields the gateway reads on pass-through: a response's id (to remember
//! which provider account holds it) and a request's `previous_response_id` (to send it there).

use serde::Deserialize;

#[derive(Deserialize)]
struct WithId {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    response: Option<Box<WithId>>,
}

/// The id of a Responses object, or of the response a stream event carries
/// (`response.created` nests it in `response`). Only `resp_…` ids count.
pub fn id_of(json: &[u8]) -> Option<String> {
    let parsed: WithId = serde_json::from_slice(json).ok()?;
    let id = match parsed.response {
        Some(inner) => inner.id,
        None => parsed.id,
    }?;
    ["resp_", "file-", "batch_"]
        .iter()
        .any(|prefix| id.starts_with(prefix))
        .then_some(id)
}

/// What a Responses request says about state kept by the provider.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct StateFields {
    /// The response this one continues.
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// `store` (OpenAI's default is `true`).
    #[serde(default)]
    pub store: Option<bool>,
    /// `background: true` runs the response after the reply.
    #[serde(default)]
    pub background: Option<bool>,
}

impl StateFields {
    /// Whether the provider keeps the response (so reading it back must reach it).
    pub fn stored(&self) -> bool {
        self.store != Some(false) || self.background == Some(true)
    }
}

/// A Responses request's `previous_response_id`, `store` and `background` (defaults when the
/// body is not a JSON object).
pub fn state_fields(body: &[u8]) -> StateFields {
    let mut fields: StateFields = serde_json::from_slice(body).unwrap_or_default();
    fields.previous_response_id = fields.previous_response_id.filter(|id| !id.is_empty());
    fields
}

/// A Responses request's `previous_response_id`, when set.
pub fn previous_response_id(body: &[u8]) -> Option<String> {
    state_fields(body).previous_response_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_objects_and_events() {
        assert_eq!(
            id_of(br#"{"id":"resp_1","object":"response"}"#).as_deref(),
            Some("resp_1")
        );
        assert_eq!(
            id_of(br#"{"type":"response.created","response":{"id":"resp_2"}}"#).as_deref(),
            Some("resp_2")
        );
        assert_eq!(id_of(br#"{"id":"msg_1"}"#), None);
        assert_eq!(id_of(b"nope"), None);
        assert_eq!(
            previous_response_id(br#"{"model":"m","previous_response_id":"resp_9"}"#).as_deref(),
            Some("resp_9")
        );
        assert_eq!(previous_response_id(br#"{"model":"m"}"#), None);
        let fields = state_fields(br#"{"model":"m","store":false}"#);
        assert!(!fields.stored());
        assert!(state_fields(br#"{"model":"m"}"#).stored());
        assert!(state_fields(br#"{"store":false,"background":true}"#).stored());
    }
}
