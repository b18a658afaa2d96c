//! The ingress route table: method and path to what the gateway does with the request.

use asbru_store::catalog::RequestType;
use http::Method;

/// What a matched route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`.
    Health,
    /// An OpenAI-shaped inference call forwarded to a provider.
    Inference {
        /// Chat or embeddings.
        request_type: RequestType,
        /// Provider assumed when the model has no `provider/` prefix.
        default_provider: Option<&'static str>,
    },
    /// `GET .../models`: the models of every configured provider.
    ListModels {
        /// When set, only this provider is listed and ids are not prefixed.
        default_provider: Option<&'static str>,
    },
}

/// Outcome of matching a request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// A route.
    Found(Route),
    /// The path exists but not for this method; carries the allowed method.
    WrongMethod(&'static str),
    /// No such path.
    NotFound,
}

/// The compiled table.
pub struct RouteTable {
    router: matchit::Router<(Method, Route)>,
}

const CHAT: RequestType = RequestType::ChatCompletion;
const EMBED: RequestType = RequestType::Embedding;

impl RouteTable {
    /// Builds the table of every route this version serves.
    pub fn new() -> RouteTable {
        let inference = |request_type, default_provider| Route::Inference {
            request_type,
            default_provider,
        };
        let entries: [(&str, Method, Route); 10] = [
            ("/health", Method::GET, Route::Health),
            ("/v1/chat/completions", Method::POST, inference(CHAT, None)),
            ("/v1/embeddings", Method::POST, inference(EMBED, None)),
            (
                "/v1/models",
                Method::GET,
                Route::ListModels {
                    default_provider: None,
                },
            ),
            (
                "/openai/v1/chat/completions",
                Method::POST,
                inference(CHAT, Some("openai")),
            ),
            (
                "/openai/chat/completions",
                Method::POST,
                inference(CHAT, Some("openai")),
            ),
            (
                "/openai/v1/embeddings",
                Method::POST,
                inference(EMBED, Some("openai")),
            ),
            (
                "/openai/embeddings",
                Method::POST,
                inference(EMBED, Some("openai")),
            ),
            (
                "/openai/v1/models",
                Method::GET,
                Route::ListModels {
                    default_provider: Some("openai"),
                },
            ),
            (
                "/openai/models",
                Method::GET,
                Route::ListModels {
                    default_provider: Some("openai"),
                },
            ),
        ];
        let mut router = matchit::Router::new();
        for (path, method, route) in entries {
            // The table is static; a conflict is a programming error caught by the unit test.
            if let Err(e) = router.insert(path, (method, route)) {
                tracing::error!("route table conflict at {path}: {e}");
            }
        }
        RouteTable { router }
    }

    /// Matches a request.
    pub fn find(&self, method: &Method, path: &str) -> Match {
        match self.router.at(path) {
            Ok(found) => {
                let (allowed, route) = found.value;
                if allowed == method || (*allowed == Method::GET && method == Method::HEAD) {
                    Match::Found(*route)
                } else {
                    Match::WrongMethod(allowed.as_str_static())
                }
            }
            Err(_) => Match::NotFound,
        }
    }
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
    fn matches_routes_and_methods() {
        let table = RouteTable::new();
        assert_eq!(
            table.find(&Method::POST, "/v1/chat/completions"),
            Match::Found(Route::Inference {
                request_type: CHAT,
                default_provider: None
            })
        );
        assert_eq!(
            table.find(&Method::POST, "/openai/chat/completions"),
            Match::Found(Route::Inference {
                request_type: CHAT,
                default_provider: Some("openai")
            })
        );
        assert_eq!(
            table.find(&Method::GET, "/v1/chat/completions"),
            Match::WrongMethod("POST")
        );
        assert_eq!(table.find(&Method::GET, "/nope"), Match::NotFound);
        assert_eq!(
            table.find(&Method::GET, "/health"),
            Match::Found(Route::Health)
        );
    }
}
