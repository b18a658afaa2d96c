//! Google Gemini's `generateContent` wire (the Gemini API, and Gemini models on Vertex AI).

pub mod types;

/// `generationConfig.maxOutputTokens` of a Gemini request body, if it sets one (the output
/// bound a reservation is made for).
pub fn max_output_tokens(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default, rename = "generationConfig")]
        generation_config: Option<Config>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default, rename = "maxOutputTokens")]
        max_output_tokens: Option<u64>,
    }
    serde_json::from_slice::<Body>(body)
        .ok()?
        .generation_config?
        .max_output_tokens
}

/// The body with `generationConfig.maxOutputTokens` set to `tokens` when it sets none (a cap the
/// gateway adds so that a reservation bounds the bill); `None` when the body already has one or
/// is not a JSON object.
pub fn with_output_cap(body: &[u8], tokens: u64) -> Option<Vec<u8>> {
    if max_output_tokens(body).is_some() {
        return None;
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    let config = object
        .entry("generationConfig")
        .or_insert_with(|| serde_json::json!({}));
    config.as_object_mut()?.insert("maxOutputTokens".into(), tokens.into());
    serde_json::to_vec(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_limits_are_read_and_added() {
        assert_eq!(
            max_output_tokens(br#"{"generationConfig":{"maxOutputTokens":64}}"#),
            Some(64)
        );
        assert_eq!(max_output_tokens(br#"{"contents":[]}"#), None);
        assert_eq!(
            with_output_cap(br#"{"generationConfig":{"maxOutputTokens":64}}"#, 10),
            None
        );
        let capped = with_output_cap(br#"{"contents":[],"generationConfig":{"temperature":1}}"#, 10).expect("capped");
        let v: serde_json::Value = serde_json::from_slice(&capped).expect("json");
        assert_eq!(
            v["generationConfig"],
            serde_json::json!({"temperature": 1, "maxOutputTokens": 10})
        );
        assert_eq!(with_output_cap(b"[1]", 10), None);
    }
}
