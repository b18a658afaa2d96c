//! The built-in provider catalog: which provider names are known and which wire each speaks.
//! What is particular to each wire (default host, paths, auth) lives in the provider modules of
//! `asbru-providers`.

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
        match self {
            Wire::OpenAi
            | Wire::Anthropic
            | Wire::Azure
            | Wire::Gemini
            | Wire::Vertex
            | Wire::Bedrock
            | Wire::Cohere => true,
        }
    }
}

/// A built-in provider.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinProvider {
    /// The provider name as used in `provider/model`.
    pub name: &'static str,
    /// The wire it speaks.
    pub wire: Wire,
    /// Whether the provider needs no key.
    pub keyless: bool,
}

const fn keyed(name: &'static str, wire: Wire) -> BuiltinProvider {
    BuiltinProvider {
        name,
        wire,
        keyless: false,
    }
}

/// Every built-in provider name.
pub const BUILTIN_PROVIDERS: &[BuiltinProvider] = &[
    keyed("openai", Wire::OpenAi),
    keyed("groq", Wire::OpenAi),
    keyed("mistral", Wire::OpenAi),
    keyed("together", Wire::OpenAi),
    keyed("deepseek", Wire::OpenAi),
    keyed("xai", Wire::OpenAi),
    keyed("openrouter", Wire::OpenAi),
    keyed("fireworks", Wire::OpenAi),
    keyed("cerebras", Wire::OpenAi),
    keyed("nebius", Wire::OpenAi),
    keyed("parasail", Wire::OpenAi),
    keyed("perplexity", Wire::OpenAi),
    BuiltinProvider {
        name: "ollama",
        wire: Wire::OpenAi,
        keyless: true,
    },
    keyed("vllm", Wire::OpenAi),
    keyed("sgl", Wire::OpenAi),
    keyed("anthropic", Wire::Anthropic),
    keyed("azure", Wire::Azure),
    keyed("bedrock", Wire::Bedrock),
    keyed("gemini", Wire::Gemini),
    keyed("vertex", Wire::Vertex),
    keyed("cohere", Wire::Cohere),
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
    /// OpenAI `POST /v1/responses` (the Responses API).
    Responses,
    /// The legacy `POST /v1/completions` (a prompt, not messages).
    TextCompletion,
    /// OpenAI `POST /v1/audio/speech`: text in, audio out.
    Speech,
    /// OpenAI `POST /v1/audio/transcriptions` (a multipart upload).
    Transcription,
    /// OpenAI `POST /v1/audio/translations` (a multipart upload).
    Translation,
    /// OpenAI `POST /v1/images/generations`.
    ImageGeneration,
    /// OpenAI `POST /v1/moderations`.
    Moderation,
    /// OpenAI `/v1/files` (upload, list, read, content, delete).
    Files,
    /// OpenAI `/v1/batches` (create, list, read, cancel).
    Batches,
}

impl RequestType {
    /// Whether a provider bills this request (listing models and counting tokens are free).
    pub fn is_billable(self) -> bool {
        matches!(
            self,
            RequestType::ChatCompletion
                | RequestType::Embedding
                | RequestType::Responses
                | RequestType::TextCompletion
                | RequestType::Speech
                | RequestType::Transcription
                | RequestType::Translation
                | RequestType::ImageGeneration
                | RequestType::Moderation
        )
    }

    /// Whether the provider bills this request per unit (image, character, second of audio)
    /// rather than per token alone, so its price comes from a per-unit entry.
    pub fn is_priced_per_unit(self) -> bool {
        matches!(
            self,
            RequestType::Speech | RequestType::Transcription | RequestType::Translation | RequestType::ImageGeneration
        )
    }

    /// Bifrost's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::ChatCompletion => "chat_completion",
            RequestType::Embedding => "embedding",
            RequestType::ListModels => "list_models",
            RequestType::CountTokens => "count_tokens",
            RequestType::Responses => "responses",
            RequestType::TextCompletion => "text_completion",
            RequestType::Speech => "speech",
            RequestType::Transcription => "transcription",
            RequestType::Translation => "translation",
            RequestType::ImageGeneration => "image_generation",
            RequestType::Moderation => "moderation",
            RequestType::Files => "file",
            RequestType::Batches => "batch",
        }
    }

    /// The streamed variant's wire name.
    pub fn stream_name(self) -> &'static str {
        match self {
            RequestType::ChatCompletion => "chat_completion_stream",
            RequestType::Responses => "responses_stream",
            RequestType::TextCompletion => "text_completion_stream",
            other => other.as_str(),
        }
    }
}

/// Provider names Bifrost's config schema knows (`providers.<name>`), served by asbru or not.
pub const BIFROST_PROVIDERS: &[&str] = &[
    "anthropic",
    "azure",
    "bedrock",
    "bedrock_mantle",
    "cerebras",
    "cohere",
    "databricks",
    "deepgram",
    "deepseek",
    "elevenlabs",
    "fireworks",
    "gemini",
    "groq",
    "huggingface",
    "mistral",
    "nebius",
    "ollama",
    "openai",
    "opencode-go",
    "opencode-zen",
    "openrouter",
    "parasail",
    "perplexity",
    "replicate",
    "runware",
    "runway",
    "sarvam",
    "sgl",
    "vertex",
    "vllm",
    "xai",
];

/// Whether `name` is one of Bifrost's providers (so a config naming it is not a typo).
pub fn is_bifrost_provider(name: &str) -> bool {
    BIFROST_PROVIDERS.contains(&name)
}
