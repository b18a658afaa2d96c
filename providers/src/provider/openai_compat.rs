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
}

const fn v1(name: &'static str, base_url: &'static str) -> Host {
    Host {
        name,
        base_url,
        api_prefix: "/v1",
    }
}

/// Every OpenAI-wire provider with a default host (OpenAI itself included).
pub const HOSTS: &[Host] = &[
    v1("openai", super::openai::DEFAULT_BASE_URL),
    v1("groq", "https://api.groq.com/openai"),
    v1("mistral", "https://api.mistral.ai"),
    v1("together", "https://api.together.xyz"),
    v1("deepseek", "https://api.deepseek.com"),
    v1("xai", "https://api.x.ai"),
    v1("openrouter", "https://openrouter.ai/api"),
    v1("fireworks", "https://api.fireworks.ai/inference"),
    v1("cerebras", "https://api.cerebras.ai"),
    v1("nebius", "https://api.studio.nebius.com"),
    v1("parasail", "https://api.parasail.io"),
    Host {
        name: "perplexity",
        base_url: "https://api.perplexity.ai",
        api_prefix: "",
    },
    v1("ollama", "http://localhost:11434"),
    v1("vllm", "http://localhost:8000"),
    v1("sgl", "http://localhost:30000"),
];

/// The host of provider `name`, when it is a built-in of this family.
pub fn host(name: &str) -> Option<&'static Host> {
    HOSTS.iter().find(|h| h.name == name)
}
