//! AWS Bedrock's Converse wire (`/model/{modelId}/converse` and `/converse-stream`), and the
//! `invoke` bodies of the embedding models Bedrock hosts (Amazon Titan, Cohere Embed).
//!
//! See <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html> and
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>.

pub mod types;

/// `inferenceConfig.maxTokens` of a Converse request body, if it sets one (the output bound a
/// reservation is made for).
pub fn max_output_tokens(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default, rename = "inferenceConfig")]
        inference_config: Option<Config>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default, rename = "maxTokens")]
        max_tokens: Option<u64>,
    }
    serde_json::from_slice::<Body>(body).ok()?.inference_config?.max_tokens
}

/// The body with `inferenceConfig.maxTokens` set to `tokens` when it sets none (a cap the
/// gateway adds so that a reservation bounds the bill); `None` when the body already has one or
/// is not an object.
pub fn with_output_cap(body: &[u8], tokens: u64) -> Option<Vec<u8>> {
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    let config = object
        .entry("inferenceConfig")
        .or_insert_with(|| serde_json::Value::Object(Default::default()))
        .as_object_mut()?;
    if config.contains_key("maxTokens") {
        return None;
    }
    config.insert("maxTokens".into(), tokens.into());
    serde_json::to_vec(&object).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_cap_only_where_none_is_set() {
        assert_eq!(max_output_tokens(br#"{"inferenceConfig":{"maxTokens":7}}"#), Some(7));
        assert_eq!(max_output_tokens(br#"{"messages":[]}"#), None);
        let capped = with_output_cap(br#"{"messages":[]}"#, 64).expect("capped");
        assert_eq!(max_output_tokens(&capped), Some(64));
        assert!(with_output_cap(br#"{"inferenceConfig":{"maxTokens":7}}"#, 64).is_none());
        assert!(with_output_cap(b"[1]", 64).is_none());
    }
}
