//! OpenAI embeddings → the `invoke` bodies of Bedrock's embedding models, and the reply back.
//!
//! - Amazon Titan (`amazon.titan-embed-*`): `{"inputText", "dimensions"?}` → `{"embedding",
//!   "inputTextTokenCount"}`; one input per call.
//! - Cohere Embed on Bedrock (`cohere.embed-*`): `{"texts", "input_type"}` →
//!   `{"embeddings": [[...]]}`; up to 96 inputs.
//!
//! See <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html>
//! and <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html>.

use base64::Engine;
use serde_json::{Value, json};

use super::TranslateError;
use crate::usage::Usage;

/// The embedding model families Bedrock hosts that the gateway translates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Amazon Titan text embeddings.
    Titan,
    /// Cohere Embed.
    Cohere,
}

/// Cohere Embed's limit on inputs per call.
const COHERE_MAX_INPUTS: usize = 96;

/// The family of `model` (`cohere.` models are Cohere's, the others taken as Titan).
pub fn family(model: &str) -> Family {
    if model.contains("cohere.") {
        Family::Cohere
    } else {
        Family::Titan
    }
}

fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

/// The inputs of an OpenAI embeddings request (a string or a list of strings).
fn inputs(body: &Value) -> Result<Vec<&str>, TranslateError> {
    match body.get("input") {
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| invalid("Bedrock embedding models take text inputs only"))
            })
            .collect(),
        _ => Err(invalid("`input` must be a string or a list of strings")),
    }
}

/// The `invoke` body for an OpenAI embeddings request.
pub fn request(body: &Value, model: &str) -> Result<Vec<u8>, TranslateError> {
    let texts = inputs(body)?;
    let request = match family(model) {
        Family::Titan => {
            let [text] = texts.as_slice() else {
                return Err(invalid(
                    "Titan embedding models take one input per request: send the inputs one at a time",
                ));
            };
            let mut request = json!({ "inputText": text });
            if let Some(dimensions) = body.get("dimensions").and_then(Value::as_u64) {
                request["dimensions"] = dimensions.into();
            }
            request
        }
        Family::Cohere => {
            if texts.is_empty() || texts.len() > COHERE_MAX_INPUTS {
                return Err(invalid(format!(
                    "Cohere embedding models take 1 to {COHERE_MAX_INPUTS} inputs per request"
                )));
            }
            json!({ "texts": texts, "input_type": "search_document" })
        }
    };
    serde_json::to_vec(&request).map_err(|e| invalid(e.to_string()))
}

fn as_floats(vector: &Value) -> Vec<f64> {
    vector
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn encoded(vector: Vec<f64>, base64: bool) -> Value {
    if base64 {
        let bytes: Vec<u8> = vector.iter().flat_map(|f| (*f as f32).to_le_bytes()).collect();
        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        json!(vector)
    }
}

/// The OpenAI embeddings list for an `invoke` reply, and its usage.
pub fn response(reply: &Value, model: &str, base64: bool) -> Result<(Value, Usage), TranslateError> {
    let vectors: Vec<Vec<f64>> = match family(model) {
        Family::Titan => {
            vec![as_floats(reply.get("embedding").ok_or_else(|| {
                TranslateError::InvalidReply("no embedding in the reply".into())
            })?)]
        }
        Family::Cohere => {
            let embeddings = reply.get("embeddings");
            // `embeddings` is a list of vectors, or (with embedding_types) an object of lists.
            let list = embeddings
                .and_then(|e| e.get("float"))
                .or(embeddings)
                .and_then(Value::as_array)
                .ok_or_else(|| TranslateError::InvalidReply("no embeddings in the reply".into()))?;
            list.iter().map(as_floats).collect()
        }
    };
    let tokens = reply.get("inputTextTokenCount").and_then(Value::as_u64).unwrap_or(0);
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| json!({"object": "embedding", "index": index, "embedding": encoded(vector, base64)}))
        .collect();
    let usage = Usage {
        input_tokens: tokens,
        ..Usage::default()
    };
    Ok((
        json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
        }),
        usage,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titan_and_cohere_bodies() {
        let titan = request(
            &json!({"input": "hi", "dimensions": 256}),
            "amazon.titan-embed-text-v2:0",
        )
        .expect("body");
        let titan: Value = serde_json::from_slice(&titan).expect("json");
        assert_eq!(titan, json!({"inputText": "hi", "dimensions": 256}));
        assert!(request(&json!({"input": ["a", "b"]}), "amazon.titan-embed-text-v2:0").is_err());
        let cohere = request(&json!({"input": ["a", "b"]}), "cohere.embed-english-v3").expect("body");
        let cohere: Value = serde_json::from_slice(&cohere).expect("json");
        assert_eq!(cohere["texts"], json!(["a", "b"]));
        assert!(request(&json!({"input": [1, 2]}), "cohere.embed-english-v3").is_err());
    }

    #[test]
    fn replies_become_openai_lists() {
        let (list, usage) = response(
            &json!({"embedding": [0.5, -1.0], "inputTextTokenCount": 3}),
            "amazon.titan-embed-text-v2:0",
            false,
        )
        .expect("list");
        assert_eq!(list["data"][0]["embedding"], json!([0.5, -1.0]));
        assert_eq!(usage.input_tokens, 3);
        let (list, _) =
            response(&json!({"embeddings": [[1.0], [2.0]]}), "cohere.embed-english-v3", true).expect("list");
        assert_eq!(list["data"][1]["index"], 1);
        assert_eq!(list["data"][1]["embedding"], "AAAAQA==");
        assert!(response(&json!({}), "amazon.titan-embed-text-v1", false).is_err());
    }
}
