//! The OpenAI-compatible family: providers that speak OpenAI's chat wire on their own host, some
//! with another path prefix. Their defaults, by provider name, from each provider's public API
//! documentation.

/// One provider's host.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// Provider name.
    pub name: &'static str,
    /// Default base URL.
    pub base_url: &'static str,
    /// Prefix before the OpenAI resource.
    pub api_prefix: &'static str,
    /// Serves OpenAI's Responses API (`/responses`) itself; other hosts get Responses requests
    /// translated to chat.
    pub responses: bool,
    /// Serves the legacy `/completions`; other hosts get those requests translated to chat.
    pub completions: bool,
}

const fn v1(name: &'static str, base_url: &'static str) -> Host {
    Host {
        name,
        base_url,
        api_prefix: "/v1",
        responses: false,
        completions: false,
    }
}

/// A host that also serves the legacy `/completions`.
const fn with_completions(host: Host) -> Host {
    Host {
        completions: true,
        ..host
    }
}

/// Every OpenAI-wire provider with a default host (OpenAI itself included).
pub const HOSTS: &[Host] = &[
    Host {
        name: "openai",
        base_url: super::openai::DEFAULT_BASE_URL,
        api_prefix: "/v1",
        responses: true,
        completions: true,
    },
    v1("groq", "https://api.groq.com/openai"),
    v1("mistral", "https://api.mistral.ai"),
    with_completions(v1("together", "https://api.together.xyz")),
    v1("deepseek", "https://api.deepseek.com"),
    v1("xai", "https://api.x.ai"),
    with_completions(v1("openrouter", "https://openrouter.ai/api")),
    with_completions(v1("fireworks", "https://api.fireworks.ai/inference")),
    v1("cerebras", "https://api.cerebras.ai"),
    v1("nebius", "https://api.studio.nebius.com"),
    v1("parasail", "https://api.parasail.io"),
    Host {
        name: "perplexity",
        base_url: "https://api.perplexity.ai",
        api_prefix: "",
        responses: false,
        completions: false,
    },
    with_completions(v1("ollama", "http://localhost:11434")),
    with_completions(v1("vllm", "http://localhost:8000")),
    with_completions(v1("sgl", "http://localhost:30000")),
];

/// The host of provider `name`, when it is a built-in of this family.
pub fn host(name: &str) -> Option<&'static Host> {
    HOSTS.iter().find(|h| h.name == name)
}

/// Whether OpenAI-wire provider `name` serves `request_type` itself. Responses and legacy
/// completions exist only on the hosts that say so; a custom provider (no built-in host) is
/// taken to serve both, and can refuse either with `allowed_requests`, which sends such requests
/// through chat instead.
pub fn serves_natively(name: Option<&str>, request_type: asbru_config::catalog::RequestType) -> bool {
    use asbru_config::catalog::RequestType;
    let host = name.and_then(host);
    match request_type {
        RequestType::Responses => host.is_none_or(|h| h.responses),
        RequestType::TextCompletion => host.is_none_or(|h| h.completions),
        RequestType::ChatCompletion | RequestType::Embedding | RequestType::ListModels | RequestType::CountTokens => {
            true
        }
        // Audio, images, moderations, files and batches: OpenAI itself and custom OpenAI-wire
        // servers; of the built-in compatible hosts, Groq transcribes.
        RequestType::Transcription | RequestType::Translation => name.is_none_or(|n| matches!(n, "openai" | "groq")),
        RequestType::Speech
        | RequestType::ImageGeneration
        | RequestType::Moderation
        | RequestType::Files
        | RequestType::Batches => name.is_none_or(|n| n == "openai"),
    }
}
