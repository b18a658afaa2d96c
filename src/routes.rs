//! The ingress route table: method and path to what the gateway does with the request.

use asbru_config::catalog::{RequestType, Wire};
use http::Method;

/// What a matched route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`.
    Health,
    /// `/api/...`: the management API (any method; it routes on its own).
    Admin,
    /// `GET /metrics` (Prometheus).
    Metrics,
    /// `GET /` and `/ui/...`: the embedded dashboard.
    Ui,
    /// An OpenAI-shaped inference call forwarded to a provider.
    Inference {
        /// Chat or embeddings.
        request_type: RequestType,
        /// Provider assumed when the model has no `provider/` prefix.
        default_provider: Option<&'static str>,
        /// The client's wire.
        ingress: Wire,
    },
    /// Azure SDK style `/openai/openai/deployments/{deployment}/...`: the deployment names the model.
    AzureDeployment {
        /// Chat or embeddings.
        request_type: RequestType,
    },
    /// The google-genai SDK's `/genai/v1beta/models/{model}:{method}` (and `/genai/v1/...`): the
    /// path names the model (a bare name means Gemini) and the method.
    GeminiModel,
    /// boto3's `bedrock-runtime` client on `/bedrock/model/{modelId}/converse` and
    /// `/converse-stream`: the path names the model (a bare id means Bedrock) and whether the
    /// reply streams.
    BedrockModel,
    /// `GET /v1/models/{provider}/{model}`: one model (the OpenAI SDK's `models.retrieve`).
    RetrieveModel,
    /// `GET /genai/v1beta/models`: the Gemini provider's model list, passed through.
    GeminiModels,
    /// An object the provider stores, and its calls: a Responses API response
    /// (`/v1/responses/{id}` GET and DELETE, `/cancel`, `/input_items`), files (`/v1/files`
    /// upload and list, `/{id}` read and delete, `/{id}/content`) and batches (`/v1/batches`
    /// create and list, `/{id}` read, `/{id}/cancel`).
    StoredObject {
        /// [`RequestType::Responses`], [`RequestType::Files`] or [`RequestType::Batches`].
        kind: RequestType,
        /// Provider assumed for an id the gateway did not relay, and for creates and lists.
        default_provider: Option<&'static str>,
    },
    /// `GET .../models`: the models of every configured provider.
    ListModels {
        /// When set, only this provider is listed and ids are not prefixed.
        default_provider: Option<&'static str>,
    },
}

/// What a stored-object path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCall {
    /// The object's id; empty for a call on the collection (a create or a list).
    pub id: String,
    /// The upstream method.
    pub method: &'static str,
    /// What follows the id in the path (`/cancel`, `/input_items`, `/content`), or nothing.
    pub suffix: &'static str,
    /// The call creates an object (uploads a file, creates a batch): its body goes upstream,
    /// and the new id is remembered with the account that holds it.
    pub creates: bool,
}

/// A stored-object path's rest (empty for the collection; `{id}`, `{id}/cancel`, ...) and
/// method as the call to make; `None` for anything else. Ids are the provider's (`resp_…`,
/// `file-…`, `batch_…`): letters, digits, `_` and `-` only, so an id cannot change the upstream
/// path.
pub fn stored_call(kind: RequestType, method: &Method, rest: &str) -> Option<StoredCall> {
    let (id, suffix) = rest.split_once('/').unwrap_or((rest, ""));
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return None;
    }
    let method = match method.as_str() {
        "HEAD" => "GET",
        other => other,
    };
    let (method, suffix, creates) = match (kind, id.is_empty(), method, suffix) {
        (RequestType::Files | RequestType::Batches, true, "POST", "") => ("POST", "", true),
        (RequestType::Files | RequestType::Batches, true, "GET", "") => ("GET", "", false),
        (_, true, _, _) => return None,
        (_, false, "GET", "") => ("GET", "", false),
        (RequestType::Responses | RequestType::Files, false, "DELETE", "") => ("DELETE", "", false),
        (RequestType::Responses | RequestType::Batches, false, "POST", "cancel") => ("POST", "/cancel", false),
        (RequestType::Responses, false, "GET", "input_items") => ("GET", "/input_items", false),
        (RequestType::Files, false, "GET", "content") => ("GET", "/content", false),
        _ => return None,
    };
    Some(StoredCall {
        id: id.to_string(),
        method,
        suffix,
        creates,
    })
}

/// Outcome of matching a request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// A route, with its path parameter where the route has one (`{deployment}`, or the
    /// `{model}:{method}` rest of a Gemini path).
    Found(Route, Option<String>),
    /// The path exists but not for this method; carries the allowed method.
    WrongMethod(&'static str),
    /// No such path.
    NotFound,
}

/// The compiled table.
pub struct RouteTable {
    router: matchit::Router<(&'static [Method], Route)>,
    /// Every route's path template, for metric labels (management routes have their own).
    templates: matchit::Router<&'static str>,
}

const CHAT: RequestType = RequestType::ChatCompletion;
const EMBED: RequestType = RequestType::Embedding;
const RESPONSES: RequestType = RequestType::Responses;
const COMPLETIONS: RequestType = RequestType::TextCompletion;
const SPEECH: RequestType = RequestType::Speech;
const TRANSCRIPTION: RequestType = RequestType::Transcription;
const TRANSLATION: RequestType = RequestType::Translation;
const IMAGES: RequestType = RequestType::ImageGeneration;
const MODERATION: RequestType = RequestType::Moderation;
const FILES: RequestType = RequestType::Files;
const BATCHES: RequestType = RequestType::Batches;
const COLLECTION: &[Method] = &[Method::GET, Method::POST];
const GET: &[Method] = &[Method::GET];
const POST: &[Method] = &[Method::POST];
/// A stored response is read, deleted, or cancelled.
const STORED: &[Method] = &[Method::GET, Method::DELETE, Method::POST];

impl RouteTable {
    /// Builds the table of every route this version serves.
    pub fn new() -> RouteTable {
        let inference = |request_type, default_provider| Route::Inference {
            request_type,
            default_provider,
            ingress: Wire::OpenAi,
        };
        let anthropic = |request_type| Route::Inference {
            request_type,
            default_provider: Some("anthropic"),
            ingress: Wire::Anthropic,
        };
        let azure = |request_type| Route::AzureDeployment { request_type };
        let stored = |kind, default_provider| Route::StoredObject { kind, default_provider };
        let openai = Some("openai");
        let entries: [(&str, &'static [Method], Route); 64] = [
            ("/v1/audio/speech", POST, inference(SPEECH, None)),
            ("/openai/v1/audio/speech", POST, inference(SPEECH, openai)),
            ("/openai/audio/speech", POST, inference(SPEECH, openai)),
            ("/v1/audio/transcriptions", POST, inference(TRANSCRIPTION, None)),
            (
                "/openai/v1/audio/transcriptions",
                POST,
                inference(TRANSCRIPTION, openai),
            ),
            ("/openai/audio/transcriptions", POST, inference(TRANSCRIPTION, openai)),
            ("/v1/audio/translations", POST, inference(TRANSLATION, None)),
            ("/openai/v1/audio/translations", POST, inference(TRANSLATION, openai)),
            ("/openai/audio/translations", POST, inference(TRANSLATION, openai)),
            ("/v1/images/generations", POST, inference(IMAGES, None)),
            ("/openai/v1/images/generations", POST, inference(IMAGES, openai)),
            ("/openai/images/generations", POST, inference(IMAGES, openai)),
            ("/v1/moderations", POST, inference(MODERATION, None)),
            ("/openai/v1/moderations", POST, inference(MODERATION, openai)),
            ("/openai/moderations", POST, inference(MODERATION, openai)),
            ("/v1/files", COLLECTION, stored(FILES, None)),
            ("/v1/files/{*rest}", STORED, stored(FILES, None)),
            ("/openai/v1/files", COLLECTION, stored(FILES, openai)),
            ("/openai/v1/files/{*rest}", STORED, stored(FILES, openai)),
            ("/openai/files", COLLECTION, stored(FILES, openai)),
            ("/openai/files/{*rest}", STORED, stored(FILES, openai)),
            ("/v1/batches", COLLECTION, stored(BATCHES, None)),
            ("/v1/batches/{*rest}", STORED, stored(BATCHES, None)),
            ("/openai/v1/batches", COLLECTION, stored(BATCHES, openai)),
            ("/openai/v1/batches/{*rest}", STORED, stored(BATCHES, openai)),
            ("/openai/batches", COLLECTION, stored(BATCHES, openai)),
            ("/openai/batches/{*rest}", STORED, stored(BATCHES, openai)),
            ("/bedrock/model/{*rest}", POST, Route::BedrockModel),
            ("/v1/models/{*rest}", GET, Route::RetrieveModel),
            ("/genai/v1beta/models", GET, Route::GeminiModels),
            ("/genai/v1/models", GET, Route::GeminiModels),
            ("/genai/v1beta/models/{*rest}", POST, Route::GeminiModel),
            ("/genai/v1/models/{*rest}", POST, Route::GeminiModel),
            ("/health", GET, Route::Health),
            ("/", GET, Route::Ui),
            ("/ui", GET, Route::Ui),
            ("/ui/", GET, Route::Ui),
            ("/ui/{*asset}", GET, Route::Ui),
            ("/metrics", GET, Route::Metrics),
            ("/v1/chat/completions", POST, inference(CHAT, None)),
            ("/v1/embeddings", POST, inference(EMBED, None)),
            ("/v1/models", GET, Route::ListModels { default_provider: None }),
            ("/openai/v1/chat/completions", POST, inference(CHAT, Some("openai"))),
            ("/openai/chat/completions", POST, inference(CHAT, Some("openai"))),
            ("/openai/v1/embeddings", POST, inference(EMBED, Some("openai"))),
            ("/openai/embeddings", POST, inference(EMBED, Some("openai"))),
            (
                "/openai/v1/models",
                GET,
                Route::ListModels {
                    default_provider: Some("openai"),
                },
            ),
            (
                "/openai/models",
                GET,
                Route::ListModels {
                    default_provider: Some("openai"),
                },
            ),
            ("/anthropic/v1/messages", POST, anthropic(CHAT)),
            ("/anthropic/messages", POST, anthropic(CHAT)),
            (
                "/anthropic/v1/messages/count_tokens",
                POST,
                anthropic(RequestType::CountTokens),
            ),
            (
                "/anthropic/messages/count_tokens",
                POST,
                anthropic(RequestType::CountTokens),
            ),
            (
                "/openai/openai/deployments/{deployment}/chat/completions",
                POST,
                azure(CHAT),
            ),
            ("/openai/openai/deployments/{deployment}/embeddings", POST, azure(EMBED)),
            ("/v1/responses", POST, inference(RESPONSES, None)),
            ("/openai/v1/responses", POST, inference(RESPONSES, Some("openai"))),
            ("/openai/responses", POST, inference(RESPONSES, Some("openai"))),
            ("/v1/responses/{*rest}", STORED, stored(RESPONSES, None)),
            (
                "/openai/v1/responses/{*rest}",
                STORED,
                stored(RESPONSES, Some("openai")),
            ),
            ("/openai/responses/{*rest}", STORED, stored(RESPONSES, Some("openai"))),
            ("/v1/completions", POST, inference(COMPLETIONS, None)),
            ("/openai/v1/completions", POST, inference(COMPLETIONS, Some("openai"))),
            ("/openai/completions", POST, inference(COMPLETIONS, Some("openai"))),
            (
                "/openai/openai/deployments/{deployment}/completions",
                POST,
                azure(COMPLETIONS),
            ),
        ];
        let mut router = matchit::Router::new();
        let mut templates = matchit::Router::new();
        for (path, method, route) in entries {
            // The table is static; a conflict is a programming error caught by the unit test.
            if let Err(e) = router.insert(path, (method, route)) {
                tracing::error!("route table conflict at {path}: {e}");
            }
            let _ = templates.insert(path, path);
        }
        RouteTable { router, templates }
    }

    /// The path template a request matched (`/v1/chat/completions`), for metric labels: a raw
    /// path is never a label, so clients cannot grow the series. Paths no route knows are
    /// `unmatched`.
    pub fn template(&self, path: &str) -> &'static str {
        match self.templates.at(path) {
            Ok(found) => found.value,
            Err(_) => "unmatched",
        }
    }

    /// Matches a request.
    pub fn find(&self, method: &Method, path: &str) -> Match {
        if path.starts_with("/api/") {
            return Match::Found(Route::Admin, None);
        }
        match self.router.at(path) {
            Ok(found) => {
                let (allowed, route) = found.value;
                if allowed.contains(method) || (allowed.contains(&Method::GET) && method == Method::HEAD) {
                    let param = found.params.get("deployment").or_else(|| found.params.get("rest"));
                    Match::Found(*route, param.map(str::to_string))
                } else {
                    Match::WrongMethod(match allowed {
                        [one] => one.as_str_static(),
                        _ => "GET, DELETE, POST",
                    })
                }
            }
            Err(_) => Match::NotFound,
        }
    }
}

/// A Gemini path's rest, `{model}:{method}`, as the model (percent-decoded: the google-genai SDK
/// sends `provider/model` as is, others encode the slash), the method, the request type and
/// whether the method streams. `None` for a method asbru does not serve.
pub fn gemini_call(rest: &str) -> Option<(String, &'static str, RequestType, bool)> {
    let (model, method) = rest.rsplit_once(':')?;
    let (method, request_type, stream) = match method {
        "generateContent" => ("generateContent", CHAT, false),
        "streamGenerateContent" => ("streamGenerateContent?alt=sse", CHAT, true),
        "embedContent" => ("embedContent", EMBED, false),
        "batchEmbedContents" => ("batchEmbedContents", EMBED, false),
        "countTokens" => ("countTokens", RequestType::CountTokens, false),
        _ => return None,
    };
    let model = percent_encoding::percent_decode_str(model).decode_utf8().ok()?;
    // Control characters (CR, LF, ...) never make a model name.
    (!model.is_empty() && !model.chars().any(char::is_control))
        .then(|| (model.into_owned(), method, request_type, stream))
}

/// A Bedrock path's rest, `{modelId}/{action}`, as the model id (percent-decoded: boto3 encodes
/// `:` and `/`) and whether the action streams. `None` for an action asbru does not serve.
pub fn bedrock_call(rest: &str) -> Option<(String, bool)> {
    let (model, action) = rest.rsplit_once('/')?;
    let stream = match action {
        "converse" => false,
        "converse-stream" => true,
        _ => return None,
    };
    let model = percent_encoding::percent_decode_str(model).decode_utf8().ok()?;
    (!model.is_empty() && !model.chars().any(char::is_control)).then(|| (model.into_owned(), stream))
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable::new()
    }
}

trait StaticMethodName {
    fn as_str_static(&self) -> &'static str;
}

impl StaticMethodName for Method {
    fn as_str_static(&self) -> &'static str {
        match *self {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            _ => "GET",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bedrock_paths_name_the_model_and_the_action() {
        let table = RouteTable::new();
        let found = table.find(
            &Method::POST,
            "/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
        );
        let Match::Found(Route::BedrockModel, Some(rest)) = found else {
            panic!("bedrock route not matched: {found:?}");
        };
        assert_eq!(
            bedrock_call(&rest),
            Some(("anthropic.claude-3-haiku-20240307-v1:0".to_string(), true))
        );
        assert_eq!(
            bedrock_call("openai%2Fgpt-4o/converse"),
            Some(("openai/gpt-4o".to_string(), false))
        );
        assert_eq!(
            bedrock_call("openai/gpt-4o/converse"),
            Some(("openai/gpt-4o".to_string(), false))
        );
        assert_eq!(bedrock_call("m/invoke-something"), None);
        assert_eq!(bedrock_call("/converse"), None);
    }

    #[test]
    fn gemini_paths_name_the_model_and_the_method() {
        let table = RouteTable::new();
        let found = table.find(&Method::POST, "/genai/v1beta/models/openai/gpt-4o:generateContent");
        assert_eq!(
            found,
            Match::Found(Route::GeminiModel, Some("openai/gpt-4o:generateContent".into()))
        );
        assert_eq!(
            gemini_call("openai%2Fgpt-4o:streamGenerateContent"),
            Some((
                "openai/gpt-4o".into(),
                "streamGenerateContent?alt=sse",
                RequestType::ChatCompletion,
                true
            ))
        );
        assert_eq!(
            gemini_call("text-embedding-004:embedContent").map(|c| c.2),
            Some(RequestType::Embedding)
        );
        assert_eq!(gemini_call("gemini-2.0-flash:predict"), None);
        assert_eq!(gemini_call(":generateContent"), None);
        assert_eq!(gemini_call("no-method"), None);
        assert_eq!(gemini_call("x%0D%0Ay:generateContent"), None);
    }

    #[test]
    fn matches_routes_and_methods() {
        let table = RouteTable::new();
        let openai = |default_provider| Route::Inference {
            request_type: CHAT,
            default_provider,
            ingress: Wire::OpenAi,
        };
        assert_eq!(
            table.find(&Method::POST, "/v1/chat/completions"),
            Match::Found(openai(None), None)
        );
        assert_eq!(
            table.find(&Method::POST, "/openai/chat/completions"),
            Match::Found(openai(Some("openai")), None)
        );
        assert!(matches!(
            table.find(&Method::POST, "/anthropic/v1/messages"),
            Match::Found(
                Route::Inference {
                    ingress: Wire::Anthropic,
                    ..
                },
                None
            )
        ));
        assert!(matches!(
            table.find(&Method::POST, "/anthropic/messages/count_tokens"),
            Match::Found(
                Route::Inference {
                    request_type: RequestType::CountTokens,
                    ..
                },
                None
            )
        ));
        assert_eq!(
            table.find(&Method::POST, "/openai/openai/deployments/my-gpt/chat/completions"),
            Match::Found(
                Route::AzureDeployment { request_type: CHAT },
                Some("my-gpt".to_string())
            )
        );
        assert_eq!(
            table.find(&Method::GET, "/v1/chat/completions"),
            Match::WrongMethod("POST")
        );
        assert_eq!(table.find(&Method::GET, "/nope"), Match::NotFound);
        assert_eq!(table.find(&Method::GET, "/health"), Match::Found(Route::Health, None));
    }
}
