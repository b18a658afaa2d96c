//! The built-in provider catalog: which names are known, which wire each speaks, their default
//! base URLs and endpoint paths (from each provider's public API documentation).

/// The wire protocol an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// OpenAI chat completions, embeddings and models, Bearer auth.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Azure OpenAI deployments.
    Azure,
    /// AWS Bedrock Converse.
    Bedrock,
    /// Google Gemini.
    Gemini,
    /// Google Vertex AI.
    Vertex,
    /// Cohere v2.
    Cohere,
}

impl Wire {
    /// Parses a `custom_provider_config.base_provider_type`.
    pub fn from_base_type(name: &str) -> Option<Wire> {
        Some(match name {
            "openai" => Wire::OpenAi,
            "anthropic" => Wire::Anthropic,
            "bedrock" => Wire::Bedrock,
            "gemini" => Wire::Gemini,
            "cohere" => Wire::Cohere,
            _ => return None,
        })
    }

    /// Whether this build can forward to this wire.
    pub fn is_supported(self) -> bool {
        matches!(self, Wire::OpenAi | Wire::Anthropic | Wire::Azure)
    }
}

/// A built-in provider's defaults.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinProvider {
    /// The provider name as used in `provider/model`.
    pub name: &'static str,
    /// The wire it speaks.
    pub wire: Wire,
    /// Default base URL; `None` when it must be configured.
    pub default_base_url: Option<&'static str>,
    /// Path prefix before the OpenAI resource (`/v1` for most, empty for Perplexity).
    pub api_prefix: &'static str,
    /// Whether the provider needs no key.
    pub keyless: bool,
}

const fn openai_like(name: &'static str, base: &'static str) -> BuiltinProvider {
    BuiltinProvider {
        name,
        wire: Wire::OpenAi,
        default_base_url: Some(base),
        api_prefix: "/v1",
        keyless: false,
    }
}

const fn other(name: &'static str, wire: Wire, base: Option<&'static str>) -> BuiltinProvider {
    BuiltinProvider {
        name,
        wire,
        default_base_url: base,
        api_prefix: "/v1",
        keyless: false,
    }
}

/// Every built-in provider name.
pub const BUILTIN_PROVIDERS: &[BuiltinProvider] = &[
    openai_like("openai", "https://api.openai.com"),
    openai_like("groq", "https://api.groq.com/openai"),
    openai_like("mistral", "https://api.mistral.ai"),
    openai_like("together", "https://api.together.xyz"),
    openai_like("deepseek", "https://api.deepseek.com"),
    openai_like("xai", "https://api.x.ai"),
    openai_like("openrouter", "https://openrouter.ai/api"),
    openai_like("fireworks", "https://api.fireworks.ai/inference"),
    openai_like("cerebras", "https://api.cerebras.ai"),
    openai_like("nebius", "https://api.studio.nebius.com"),
    openai_like("parasail", "https://api.parasail.io"),
    BuiltinProvider {
        name: "perplexity",
        wire: Wire::OpenAi,
        default_base_url: Some("https://api.perplexity.ai"),
        api_prefix: "",
        keyless: false,
    },
    BuiltinProvider {
        name: "ollama",
        wire: Wire::OpenAi,
        default_base_url: Some("http://localhost:11434"),
        api_prefix: "/v1",
        keyless: true,
    },
    BuiltinProvider {
        name: "vllm",
        wire: Wire::OpenAi,
        default_base_url: Some("http://localhost:8000"),
        api_prefix: "/v1",
        keyless: false,
    },
    BuiltinProvider {
        name: "sgl",
        wire: Wire::OpenAi,
        default_base_url: Some("http://localhost:30000"),
        api_prefix: "/v1",
        keyless: false,
    },
    other("anthropic", Wire::Anthropic, Some("https://api.anthropic.com")),
    other("azure", Wire::Azure, None),
    other("bedrock", Wire::Bedrock, None),
    other(
        "gemini",
        Wire::Gemini,
        Some("https://generativelanguage.googleapis.com"),
    ),
    other("vertex", Wire::Vertex, None),
    other("cohere", Wire::Cohere, Some("https://api.cohere.ai")),
];

/// Looks up a built-in provider by name.
pub fn builtin(name: &str) -> Option<&'static BuiltinProvider> {
    BUILTIN_PROVIDERS.iter().find(|p| p.name == name)
}

/// The request types asbru routes, with Bifrost's names (`extra_fields.request_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestType {
    /// `POST .../chat/completions`.
    ChatCompletion,
    /// `POST .../embeddings`.
    Embedding,
    /// `GET .../models`.
    ListModels,
    /// Anthropic `POST /v1/messages/count_tokens`.
    CountTokens,
}

impl RequestType {
    /// Whether a provider bills this request (listing models and counting tokens are free).
    pub fn is_billable(self) -> bool {
        matches!(self, RequestType::ChatCompletion | RequestType::Embedding)
    }

    /// Bifrost's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::ChatCompletion => "chat_completion",
            RequestType::Embedding => "embedding",
            RequestType::ListModels => "list_models",
            RequestType::CountTokens => "count_tokens",
        }
    }

    /// The streamed variant's wire name.
    pub fn stream_name(self) -> &'static str {
        match self {
            RequestType::ChatCompletion => "chat_completion_stream",
            other => other.as_str(),
        }
    }

    /// The OpenAI resource path after the API prefix; `None` where OpenAI has no equivalent.
    pub fn openai_resource(self) -> Option<&'static str> {
        match self {
            RequestType::ChatCompletion => Some("/chat/completions"),
            RequestType::Embedding => Some("/embeddings"),
            RequestType::ListModels => Some("/models"),
            RequestType::CountTokens => None,
        }
    }

    /// The Anthropic resource path after `/v1`; `None` where Anthropic has no equivalent.
    pub fn anthropic_resource(self) -> Option<&'static str> {
        match self {
            RequestType::ChatCompletion => Some("/messages"),
            RequestType::CountTokens => Some("/messages/count_tokens"),
            RequestType::ListModels => Some("/models"),
            RequestType::Embedding => None,
        }
    }
}
