//! The per-attempt choice of translation: given the ingress wire and the upstream wire, what body
//! goes upstream and how the reply comes back. OpenAI chat is the hub: Azure and every
//! OpenAI-compatible provider speak it as is; Anthropic Messages and Gemini `generateContent` are
//! translated to and from it (an Anthropic client reaches Gemini through the hub, both ways).
//! Same body shape: the body passes through with only the model rewritten, and the reply passes
//! through verbatim. Different shapes: translate both ways.

use super::chat_stream::ChatToMessagesStream;
use super::chat_to_converse_stream::ChatToConverseStream;
use super::chat_to_gemini_stream::ChatToGeminiStream;
use super::chat_to_responses;
use super::chat_to_responses_stream::ChatToResponsesStream;
use super::cohere_stream::CohereToChatStream;
use super::completions_to_chat::{self, ChatToCompletionStream};
use super::converse_stream::ConverseToChatStream;
use super::gemini_stream::GeminiToChatStream;
use super::invoke_stream::InvokeToMessagesStream;
use super::messages_stream::MessagesToChatStream;
use super::responses_stream::ResponsesToChatStream;
use super::responses_to_chat;
use super::{
    TranslateError, bedrock_embeddings, chat_to_cohere, chat_to_converse, chat_to_gemini, chat_to_messages,
    converse_to_chat, gemini_to_chat, messages_to_chat,
};
use crate::formats::openai::RequestHead;
use crate::formats::openai::types::ChatRequest;
use crate::usage::{Dialect, StreamUsage, Usage, UsageChunkFilter};
use asbru_config::catalog::Wire;

/// The body shape of a wire on the hub's two sides.
enum Shape {
    /// OpenAI chat completions (the hub).
    Chat,
    /// Anthropic Messages.
    Messages,
    /// Gemini `generateContent`.
    Gemini,
    /// Bedrock Converse.
    Converse,
    /// Cohere v2 chat (an upstream only: no client speaks it to the gateway).
    Cohere,
}

fn shape(wire: Wire) -> Result<Shape, TranslateError> {
    match wire {
        Wire::OpenAi | Wire::Azure => Ok(Shape::Chat),
        Wire::Anthropic => Ok(Shape::Messages),
        Wire::Gemini => Ok(Shape::Gemini),
        Wire::Bedrock => Ok(Shape::Converse),
        Wire::Cohere => Ok(Shape::Cohere),
        Wire::Vertex => Err(TranslateError::InvalidRequest(format!(
            "the {wire:?} wire is not served by this version of asbru"
        ))),
    }
}

/// What to send upstream, and how to read what comes back.
pub struct Prepared {
    /// The upstream body.
    pub body: Vec<u8>,
    /// The reply side.
    pub reply: ReplyTranslator,
}

/// What the gateway adds to a request on its way upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamOptions {
    /// Ask an OpenAI-wire stream for its final usage chunk.
    pub want_usage: bool,
    /// An output limit for a request that sets none (same-wire chat).
    pub output_cap: Option<crate::formats::openai::OutputCap>,
    /// The request is for embeddings, whose bodies translate differently from chat's.
    pub embeddings: bool,
    /// The request counts tokens (its body and reply are not chat's).
    pub count_tokens: bool,
    /// The OpenAI API the client called, when not chat (OpenAI-wire clients only).
    pub api: OpenAiApi,
    /// The upstream answers `api` itself; otherwise the request goes through chat.
    pub native: bool,
    /// The upstream serves only the Responses API (a provider configured with `responses` and
    /// without `chat_completion`): chat, and Anthropic Messages through chat, go to it as
    /// Responses requests.
    pub upstream_responses: bool,
}

/// The OpenAI APIs besides chat completions that an OpenAI client may call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenAiApi {
    /// Chat completions (or embeddings): the hub.
    #[default]
    Chat,
    /// The Responses API (`/v1/responses`).
    Responses,
    /// Legacy completions (`/v1/completions`).
    Completions,
}

/// Builds the upstream body for one attempt. `created` stamps translated OpenAI replies.
///
/// With `want_usage`, an OpenAI-wire stream is asked for its final usage chunk
/// (`stream_options.include_usage`); if the client had not asked for it, that chunk is dropped
/// from the reply.
pub fn prepare(
    ingress: Wire,
    upstream: Wire,
    head: &RequestHead,
    raw: &[u8],
    upstream_model: &str,
    created: u64,
    options: UpstreamOptions,
) -> Result<Prepared, TranslateError> {
    if ingress == Wire::OpenAi && options.api != OpenAiApi::Chat {
        return prepare_api(upstream, head, raw, upstream_model, created, options);
    }
    if options.upstream_responses && !options.embeddings && !options.count_tokens {
        return prepare_for_responses(ingress, head, raw, upstream_model, created, options);
    }
    let UpstreamOptions {
        want_usage,
        output_cap,
        embeddings,
        count_tokens,
        ..
    } = options;
    let invalid = |e: serde_json::Error| TranslateError::InvalidRequest(e.to_string());
    let (body, reply) = match (shape(ingress)?, shape(upstream)?) {
        (Shape::Cohere, _) => {
            return Err(TranslateError::InvalidRequest(
                "Cohere's own API is not served to clients: call Cohere models on /v1/chat/completions".into(),
            ));
        }
        (_, Shape::Cohere) if count_tokens => {
            return Err(TranslateError::InvalidRequest(
                "counting tokens is not available for Cohere models".into(),
            ));
        }
        (Shape::Chat, Shape::Cohere) if embeddings => {
            let body: serde_json::Value = serde_json::from_slice(raw).map_err(invalid)?;
            (
                serde_json::to_vec(&chat_to_cohere::embeddings_request(&body, upstream_model)?).map_err(invalid)?,
                ReplyTranslator::EmbeddingsFromCohere {
                    model: upstream_model.to_string(),
                    base64: body.get("encoding_format").and_then(serde_json::Value::as_str) == Some("base64"),
                },
            )
        }
        (Shape::Chat, Shape::Cohere) => {
            let chat = capped(serde_json::from_slice(raw).map_err(invalid)?, output_cap);
            return chat_to_cohere_prepared(chat, upstream_model, created);
        }
        (Shape::Messages, Shape::Cohere) => {
            let chat = messages_to_chat::request(serde_json::from_slice(raw).map_err(invalid)?, upstream_model)?;
            let inner = chat_to_cohere_prepared(chat, upstream_model, created)?;
            (
                inner.body,
                ReplyTranslator::MessagesOverChat {
                    inner: Box::new(inner.reply),
                    stream: ChatToMessagesStream::new(upstream_model),
                    between: Vec::new(),
                },
            )
        }
        (Shape::Gemini, Shape::Cohere) => {
            if embeddings {
                return Err(TranslateError::InvalidRequest(
                    "embeddings in Gemini's format reach Gemini models only; other providers' embeddings are on /v1/embeddings"
                        .into(),
                ));
            }
            let gemini = serde_json::from_slice(raw).map_err(invalid)?;
            let mut chat = gemini_to_chat::request(gemini, upstream_model, head.stream)?;
            if chat.max_tokens.is_none() {
                chat.max_tokens = output_cap.and_then(|cap| u32::try_from(cap.tokens).ok());
            }
            let inner = chat_to_cohere_prepared(chat, upstream_model, created)?;
            (
                inner.body,
                ReplyTranslator::GeminiOverChat {
                    inner: Box::new(inner.reply),
                    stream: Box::new(ChatToGeminiStream::new(upstream_model)),
                    between: Vec::new(),
                },
            )
        }
        (Shape::Chat | Shape::Messages | Shape::Gemini | Shape::Converse, Shape::Converse) if count_tokens => {
            return Err(TranslateError::InvalidRequest(
                "counting tokens is not available for Bedrock models".into(),
            ));
        }
        (Shape::Converse, _) if count_tokens || embeddings => {
            return Err(TranslateError::InvalidRequest(
                "the /bedrock routes serve converse and converse-stream".into(),
            ));
        }
        (Shape::Chat, Shape::Converse) if embeddings => {
            let body: serde_json::Value = serde_json::from_slice(raw).map_err(invalid)?;
            (
                bedrock_embeddings::request(&body, upstream_model)?,
                ReplyTranslator::EmbeddingsFromBedrock {
                    model: upstream_model.to_string(),
                    base64: body.get("encoding_format").and_then(serde_json::Value::as_str) == Some("base64"),
                },
            )
        }
        (Shape::Chat, Shape::Converse) => {
            let extra = chat_to_converse::additional_fields(raw)?;
            let chat = capped(serde_json::from_slice(raw).map_err(invalid)?, output_cap);
            return chat_to_bedrock(chat, extra, upstream_model, created);
        }
        (Shape::Messages, Shape::Converse) => {
            let chat = messages_to_chat::request(serde_json::from_slice(raw).map_err(invalid)?, upstream_model)?;
            let inner = chat_to_bedrock(chat, None, upstream_model, created)?;
            (
                inner.body,
                ReplyTranslator::MessagesOverChat {
                    inner: Box::new(inner.reply),
                    stream: ChatToMessagesStream::new(upstream_model),
                    between: Vec::new(),
                },
            )
        }
        (Shape::Converse, Shape::Converse) => (
            // The model is in the path: the body goes byte for byte, with an output cap when one
            // must be added.
            output_cap
                .and_then(|cap| crate::formats::bedrock::with_output_cap(raw, cap.tokens))
                .unwrap_or_else(|| raw.to_vec()),
            ReplyTranslator::Passthrough {
                usage: StreamUsage::new(upstream),
                wire: upstream,
                strip: None,
            },
        ),
        (Shape::Converse, _) => {
            let mut chat = converse_to_chat::request(raw, upstream_model, head.stream)?;
            if chat.max_tokens.is_none() {
                chat.max_tokens = output_cap.and_then(|cap| u32::try_from(cap.tokens).ok());
            }
            let inner = prepare_chat_value(upstream, &chat, upstream_model, created, options)?;
            (
                inner.body,
                ReplyTranslator::ConverseOverChat {
                    inner: Box::new(inner.reply),
                    stream: ChatToConverseStream::new(),
                    between: Vec::new(),
                },
            )
        }
        (Shape::Chat | Shape::Messages, Shape::Gemini) if count_tokens => {
            return Err(TranslateError::InvalidRequest(
                "counting tokens for a Gemini model is done on /genai/v1beta/models/{model}:countTokens".into(),
            ));
        }
        (Shape::Chat, Shape::Chat) => {
            let inject = want_usage && head.stream && !head.include_usage;
            (
                head.upstream_body_capped(raw, upstream_model, inject, output_cap),
                ReplyTranslator::Passthrough {
                    usage: StreamUsage::new(upstream),
                    wire: upstream,
                    strip: inject.then(UsageChunkFilter::new),
                },
            )
        }
        (Shape::Messages, Shape::Messages) => (
            head.upstream_body(raw, upstream_model),
            ReplyTranslator::Passthrough {
                usage: StreamUsage::new(upstream),
                wire: upstream,
                strip: None,
            },
        ),
        (Shape::Chat, Shape::Messages) => {
            let chat = capped(serde_json::from_slice(raw).map_err(invalid)?, output_cap);
            return chat_to_anthropic(chat, upstream_model, created);
        }
        (Shape::Chat, Shape::Gemini) if embeddings => {
            let body: serde_json::Value = serde_json::from_slice(raw).map_err(invalid)?;
            let request = chat_to_gemini::embeddings_request(&body, upstream_model)?;
            (
                serde_json::to_vec(&request).map_err(invalid)?,
                ReplyTranslator::EmbeddingsFromGemini {
                    model: upstream_model.to_string(),
                    base64: body.get("encoding_format").and_then(serde_json::Value::as_str) == Some("base64"),
                },
            )
        }
        (Shape::Chat, Shape::Gemini) => {
            let chat = capped(serde_json::from_slice(raw).map_err(invalid)?, output_cap);
            return chat_to_google(chat, upstream_model, created);
        }
        (Shape::Messages, Shape::Gemini) => {
            let messages = serde_json::from_slice(raw).map_err(invalid)?;
            let chat = messages_to_chat::request(messages, upstream_model)?;
            let request = chat_to_gemini::request(chat)?;
            (
                serde_json::to_vec(&request).map_err(invalid)?,
                ReplyTranslator::MessagesFromGemini {
                    gemini: Box::new(GeminiToChatStream::new(upstream_model, created)),
                    chat: Box::new(ChatToMessagesStream::new(upstream_model)),
                    between: Vec::new(),
                    model: upstream_model.to_string(),
                    created,
                },
            )
        }
        (Shape::Gemini, Shape::Gemini) => (
            // The model is in the path; the body goes byte for byte but for Bifrost's own
            // members (`fallbacks`, `provider`, which Google refuses), and an output cap when one
            // must be added.
            {
                let body = head.upstream_body(raw, upstream_model);
                output_cap
                    .filter(|_| !embeddings && !count_tokens)
                    .and_then(|cap| crate::formats::gemini::with_output_cap(&body, cap.tokens))
                    .unwrap_or(body)
            },
            ReplyTranslator::Passthrough {
                usage: StreamUsage::new(upstream),
                wire: upstream,
                strip: None,
            },
        ),
        (Shape::Gemini, _) if count_tokens => {
            return Err(TranslateError::InvalidRequest(
                "countTokens reaches Gemini models only (Anthropic's count_tokens is on /anthropic/v1/messages/count_tokens)"
                    .into(),
            ));
        }
        (Shape::Gemini, _) if embeddings => {
            return Err(TranslateError::InvalidRequest(
                "embeddings in Gemini's format reach Gemini models only; other providers' embeddings are on /v1/embeddings"
                    .into(),
            ));
        }
        (Shape::Gemini, Shape::Converse) => {
            let gemini = serde_json::from_slice(raw).map_err(invalid)?;
            let mut chat = gemini_to_chat::request(gemini, upstream_model, head.stream)?;
            if chat.max_tokens.is_none() {
                chat.max_tokens = output_cap.and_then(|cap| u32::try_from(cap.tokens).ok());
            }
            let inner = chat_to_bedrock(chat, None, upstream_model, created)?;
            (
                inner.body,
                ReplyTranslator::GeminiOverChat {
                    inner: Box::new(inner.reply),
                    stream: Box::new(ChatToGeminiStream::new(upstream_model)),
                    between: Vec::new(),
                },
            )
        }
        (Shape::Gemini, Shape::Chat) => {
            let gemini = serde_json::from_slice(raw).map_err(invalid)?;
            let mut chat = gemini_to_chat::request(gemini, upstream_model, head.stream)?;
            if chat.max_tokens.is_none() {
                chat.max_tokens = output_cap.and_then(|cap| u32::try_from(cap.tokens).ok());
            }
            (
                serde_json::to_vec(&chat).map_err(invalid)?,
                ReplyTranslator::GeminiFromChat {
                    stream: Box::new(ChatToGeminiStream::new(upstream_model)),
                },
            )
        }
        (Shape::Gemini, Shape::Messages) => {
            let gemini = serde_json::from_slice(raw).map_err(invalid)?;
            let mut chat = gemini_to_chat::request(gemini, upstream_model, head.stream)?;
            if chat.max_tokens.is_none() {
                chat.max_tokens = output_cap.and_then(|cap| u32::try_from(cap.tokens).ok());
            }
            let messages = chat_to_messages::request(chat, upstream_model)?;
            (
                serde_json::to_vec(&messages).map_err(invalid)?,
                ReplyTranslator::GeminiFromMessages {
                    messages: Box::new(MessagesToChatStream::new(created)),
                    chat: Box::new(ChatToGeminiStream::new(upstream_model)),
                    between: Vec::new(),
                    created,
                },
            )
        }
        (Shape::Messages, Shape::Chat) => {
            let messages = serde_json::from_slice(raw).map_err(invalid)?;
            let request = messages_to_chat::request(messages, upstream_model)?;
            (
                serde_json::to_vec(&request).map_err(invalid)?,
                ReplyTranslator::MessagesFromChat {
                    stream: ChatToMessagesStream::new(upstream_model),
                },
            )
        }
    };
    Ok(Prepared { body, reply })
}

/// An OpenAI chat request for an Anthropic upstream, and its reply back as chat.
fn chat_to_anthropic(chat: ChatRequest, upstream_model: &str, created: u64) -> Result<Prepared, TranslateError> {
    let request = chat_to_messages::request(chat, upstream_model)?;
    Ok(Prepared {
        body: serde_json::to_vec(&request).map_err(|e| TranslateError::InvalidRequest(e.to_string()))?,
        reply: ReplyTranslator::ChatFromMessages {
            stream: MessagesToChatStream::new(created),
            created,
        },
    })
}

/// `chat` with the gateway's output cap as `max_tokens` when it sets no output limit: a
/// reservation assumed that cap, so the translated request must carry it.
fn capped(mut chat: ChatRequest, cap: Option<crate::formats::openai::OutputCap>) -> ChatRequest {
    if chat.max_tokens.is_none() && chat.max_completion_tokens.is_none() {
        chat.max_tokens = cap.and_then(|cap| u32::try_from(cap.tokens).ok());
    }
    chat
}

/// An OpenAI chat request for a Bedrock upstream (Converse), and its reply back as chat.
fn chat_to_bedrock(
    chat: ChatRequest,
    extra: Option<serde_json::Map<String, serde_json::Value>>,
    upstream_model: &str,
    created: u64,
) -> Result<Prepared, TranslateError> {
    let request = chat_to_converse::request(chat, upstream_model, extra)?;
    Ok(Prepared {
        body: serde_json::to_vec(&request).map_err(|e| TranslateError::InvalidRequest(e.to_string()))?,
        reply: ReplyTranslator::ChatFromConverse {
            stream: Box::new(ConverseToChatStream::new(upstream_model, created)),
            model: upstream_model.to_string(),
            created,
        },
    })
}

/// An OpenAI chat request for a Cohere upstream (v2 chat), and its reply back as chat.
fn chat_to_cohere_prepared(chat: ChatRequest, upstream_model: &str, created: u64) -> Result<Prepared, TranslateError> {
    let request = chat_to_cohere::request(chat, upstream_model)?;
    Ok(Prepared {
        body: serde_json::to_vec(&request).map_err(|e| TranslateError::InvalidRequest(e.to_string()))?,
        reply: ReplyTranslator::ChatFromCohere {
            stream: Box::new(CohereToChatStream::new(upstream_model, created)),
            model: upstream_model.to_string(),
            created,
        },
    })
}

/// A chat request made by a translation, prepared for `upstream` as a chat client's would be.
fn prepare_chat_value(
    upstream: Wire,
    chat: &ChatRequest,
    upstream_model: &str,
    created: u64,
    options: UpstreamOptions,
) -> Result<Prepared, TranslateError> {
    let chat_body = serde_json::to_vec(chat).map_err(|e| TranslateError::InvalidRequest(e.to_string()))?;
    let chat_head = RequestHead::parse(&chat_body).map_err(|e| TranslateError::InvalidRequest(e.to_string()))?;
    prepare(
        Wire::OpenAi,
        upstream,
        &chat_head,
        &chat_body,
        upstream_model,
        created,
        UpstreamOptions {
            api: OpenAiApi::Chat,
            native: false,
            ..options
        },
    )
}

/// An OpenAI chat request for a Gemini upstream, and its reply back as chat.
fn chat_to_google(chat: ChatRequest, upstream_model: &str, created: u64) -> Result<Prepared, TranslateError> {
    let candidates = chat.n.unwrap_or(1);
    let request = chat_to_gemini::request(chat)?;
    Ok(Prepared {
        body: serde_json::to_vec(&request).map_err(|e| TranslateError::InvalidRequest(e.to_string()))?,
        reply: ReplyTranslator::ChatFromGemini {
            stream: Box::new(GeminiToChatStream::with_candidates(upstream_model, created, candidates)),
            model: upstream_model.to_string(),
            created,
        },
    })
}

/// [`prepare`] for an upstream that serves only the Responses API: the chat request (an
/// Anthropic one translated to chat first) becomes a Responses request, and the Responses reply
/// comes back as chat (then as Messages).
fn prepare_for_responses(
    ingress: Wire,
    head: &RequestHead,
    raw: &[u8],
    upstream_model: &str,
    created: u64,
    options: UpstreamOptions,
) -> Result<Prepared, TranslateError> {
    let invalid = |e: serde_json::Error| TranslateError::InvalidRequest(e.to_string());
    let chat: ChatRequest = match shape(ingress)? {
        Shape::Chat => serde_json::from_slice(raw).map_err(invalid)?,
        Shape::Messages => messages_to_chat::request(serde_json::from_slice(raw).map_err(invalid)?, upstream_model)?,
        Shape::Converse => converse_to_chat::request(raw, upstream_model, head.stream)?,
        Shape::Gemini | Shape::Cohere => {
            return Err(TranslateError::InvalidRequest(
                "this model's provider serves only the OpenAI Responses API: call it on /v1/responses, /v1/chat/completions or /anthropic/v1/messages".into(),
            ));
        }
    };
    let mut body = chat_to_responses::request(chat, upstream_model)?;
    if body.max_output_tokens.is_none() {
        body.max_output_tokens = options.output_cap.map(|cap| cap.tokens);
    }
    let anthropic = ingress == Wire::Anthropic;
    let as_chat = ReplyTranslator::ChatFromResponses {
        // The Messages translation needs the usage chunk; a chat client gets it if it asked.
        stream: Box::new(ResponsesToChatStream::new(
            upstream_model,
            created,
            anthropic || head.include_usage,
        )),
        model: upstream_model.to_string(),
        created,
    };
    let reply = if anthropic {
        ReplyTranslator::MessagesOverChat {
            inner: Box::new(as_chat),
            stream: ChatToMessagesStream::new(upstream_model),
            between: Vec::new(),
        }
    } else {
        as_chat
    };
    Ok(Prepared {
        body: serde_json::to_vec(&body).map_err(invalid)?,
        reply,
    })
}

/// [`prepare`] for the Responses API and legacy completions: passed through to an upstream that
/// answers them itself (with the model rewritten, and the output cap under the API's own name),
/// else translated to chat, prepared for the upstream as chat, and the reply translated back.
fn prepare_api(
    upstream: Wire,
    head: &RequestHead,
    raw: &[u8],
    upstream_model: &str,
    created: u64,
    options: UpstreamOptions,
) -> Result<Prepared, TranslateError> {
    if options.native {
        // A background response's usage arrives after the reply, on reads that are not
        // charged: a metered request cannot be run that way.
        if options.want_usage
            && options.api == OpenAiApi::Responses
            && crate::formats::openai::responses::state_fields(raw).background == Some(true)
        {
            return Err(TranslateError::InvalidRequest(
                "`background: true` cannot be metered (its usage arrives after the reply), and this request is under a budget or token limit: send it without `background`".into(),
            ));
        }
        let (field, dialect, inject) = match options.api {
            OpenAiApi::Responses => ("max_output_tokens", Dialect::Responses, false),
            _ => (
                "max_tokens",
                Dialect::Wire(upstream),
                options.want_usage && head.stream && !head.include_usage,
            ),
        };
        let cap = options
            .output_cap
            .map(|cap| crate::formats::openai::OutputCap { field, ..cap });
        return Ok(Prepared {
            body: head.upstream_body_capped(raw, upstream_model, inject, cap),
            reply: ReplyTranslator::Passthrough {
                usage: StreamUsage::of(dialect),
                wire: upstream,
                strip: inject.then(UsageChunkFilter::new),
            },
        });
    }
    let mut chat = match options.api {
        OpenAiApi::Responses => responses_to_chat::request(raw, upstream_model)?,
        _ => completions_to_chat::request(raw, upstream_model)?,
    };
    // The reservation assumed the gateway's output cap: send it when the client set none.
    if chat.max_tokens.is_none() && chat.max_completion_tokens.is_none() {
        chat.max_tokens = options.output_cap.and_then(|cap| u32::try_from(cap.tokens).ok());
    }
    // The translated request goes on as a value: serialised once, for the upstream.
    let inner = match shape(upstream)? {
        Shape::Messages => chat_to_anthropic(chat, upstream_model, created)?,
        Shape::Gemini => chat_to_google(chat, upstream_model, created)?,
        Shape::Converse => chat_to_bedrock(chat, None, upstream_model, created)?,
        Shape::Cohere => chat_to_cohere_prepared(chat, upstream_model, created)?,
        Shape::Chat => prepare_chat_value(upstream, &chat, upstream_model, created, options)?,
    };
    let reply = match options.api {
        OpenAiApi::Responses => ReplyTranslator::ResponsesFromChat {
            inner: Box::new(inner.reply),
            stream: Box::new(ChatToResponsesStream::new(upstream_model, created)),
            between: Vec::new(),
        },
        _ => ReplyTranslator::CompletionsFromChat {
            inner: Box::new(inner.reply),
            stream: ChatToCompletionStream::new(head.include_usage),
            between: Vec::new(),
        },
    };
    Ok(Prepared {
        body: inner.body,
        reply,
    })
}

/// Turns the upstream's successful reply into the ingress format, and reads its usage.
pub enum ReplyTranslator {
    /// Same wire: bytes go through untouched; usage is read on the side.
    Passthrough {
        /// Usage seen in the stream.
        usage: StreamUsage,
        /// The wire.
        wire: Wire,
        /// Drops the usage chunk the gateway asked for on the client's behalf.
        strip: Option<UsageChunkFilter>,
    },
    /// Anthropic reply to an OpenAI client.
    ChatFromMessages {
        /// Stream state.
        stream: MessagesToChatStream,
        /// Timestamp for the translated reply.
        created: u64,
    },
    /// OpenAI reply to an Anthropic client.
    MessagesFromChat {
        /// Stream state.
        stream: ChatToMessagesStream,
    },
    /// Gemini reply to an OpenAI client.
    ChatFromGemini {
        /// Stream state.
        stream: Box<GeminiToChatStream>,
        /// The model asked for (a reply may name its version instead).
        model: String,
        /// Timestamp for the translated reply.
        created: u64,
    },
    /// Gemini reply to an Anthropic client, through the hub.
    MessagesFromGemini {
        /// Gemini events into OpenAI chunks.
        gemini: Box<GeminiToChatStream>,
        /// OpenAI chunks into Anthropic events.
        chat: Box<ChatToMessagesStream>,
        /// The OpenAI chunks of the latest piece.
        between: Vec<u8>,
        /// The model asked for.
        model: String,
        /// Timestamp for the translated reply.
        created: u64,
    },
    /// OpenAI reply to a Gemini client.
    GeminiFromChat {
        /// OpenAI chunks into Gemini events.
        stream: Box<ChatToGeminiStream>,
    },
    /// Anthropic reply to a Gemini client, through the hub.
    GeminiFromMessages {
        /// Anthropic events into OpenAI chunks.
        messages: Box<MessagesToChatStream>,
        /// OpenAI chunks into Gemini events.
        chat: Box<ChatToGeminiStream>,
        /// The OpenAI chunks of the latest piece.
        between: Vec<u8>,
        /// Timestamp for the intermediate chat reply.
        created: u64,
    },
    /// Gemini embeddings to an OpenAI client.
    EmbeddingsFromGemini {
        /// The model asked for.
        model: String,
        /// `encoding_format: base64` was asked for.
        base64: bool,
    },
    /// A Responses-only provider's reply to a chat client.
    ChatFromResponses {
        /// Responses events into OpenAI chunks.
        stream: Box<ResponsesToChatStream>,
        /// The model asked for.
        model: String,
        /// Timestamp for the translated reply.
        created: u64,
    },
    /// A Bedrock Converse reply to an OpenAI client.
    ChatFromConverse {
        /// Converse event-stream frames into OpenAI chunks.
        stream: Box<ConverseToChatStream>,
        /// The model asked for.
        model: String,
        /// Timestamp for the translated reply.
        created: u64,
    },
    /// Claude on Bedrock's `invoke-with-response-stream` to an Anthropic client: the events,
    /// unwrapped from their frames.
    MessagesFromInvoke {
        /// Frames into Anthropic SSE events.
        stream: Box<InvokeToMessagesStream>,
    },
    /// A Cohere v2 chat reply to an OpenAI client.
    ChatFromCohere {
        /// Cohere events into OpenAI chunks.
        stream: Box<CohereToChatStream>,
        /// The model asked for.
        model: String,
        /// Timestamp for the translated reply.
        created: u64,
    },
    /// Cohere v2 embeddings to an OpenAI client.
    EmbeddingsFromCohere {
        /// The model asked for.
        model: String,
        /// `encoding_format: base64` was asked for.
        base64: bool,
    },
    /// A Bedrock embedding model's `invoke` reply to an OpenAI client.
    EmbeddingsFromBedrock {
        /// The model asked for.
        model: String,
        /// `encoding_format: base64` was asked for.
        base64: bool,
    },
    /// A reply made chat by `inner`, to a Gemini client.
    GeminiOverChat {
        /// The upstream's reply as chat.
        inner: Box<ReplyTranslator>,
        /// OpenAI chunks into Gemini events.
        stream: Box<ChatToGeminiStream>,
        /// The chat chunks of the latest piece.
        between: Vec<u8>,
    },
    /// A reply made chat by `inner`, to a Bedrock Converse client.
    ConverseOverChat {
        /// The upstream's reply as chat.
        inner: Box<ReplyTranslator>,
        /// OpenAI chunks into Converse event-stream frames.
        stream: ChatToConverseStream,
        /// The chat chunks of the latest piece.
        between: Vec<u8>,
    },
    /// A reply made chat by `inner`, to an Anthropic client.
    MessagesOverChat {
        /// The upstream's reply as chat.
        inner: Box<ReplyTranslator>,
        /// OpenAI chunks into Anthropic events.
        stream: ChatToMessagesStream,
        /// The chat chunks of the latest piece.
        between: Vec<u8>,
    },
    /// Any provider's reply, as chat, to a Responses client.
    ResponsesFromChat {
        /// The upstream's reply as chat.
        inner: Box<ReplyTranslator>,
        /// OpenAI chunks into Responses events.
        stream: Box<ChatToResponsesStream>,
        /// The chat chunks of the latest piece.
        between: Vec<u8>,
    },
    /// Any provider's reply, as chat, to a legacy completions client.
    CompletionsFromChat {
        /// The upstream's reply as chat.
        inner: Box<ReplyTranslator>,
        /// OpenAI chunks into `text_completion` chunks.
        stream: ChatToCompletionStream,
        /// The chat chunks of the latest piece.
        between: Vec<u8>,
    },
}

/// The chat reply under a translation: the inner translator's body (or the upstream's own).
fn chat_reply(
    inner: &ReplyTranslator,
    body: &[u8],
) -> Result<(crate::formats::openai::types::ChatResponse, Usage), TranslateError> {
    let (translated, usage) = inner.body(body)?;
    let chat: crate::formats::openai::types::ChatResponse =
        serde_json::from_slice(translated.as_deref().unwrap_or(body))
            .map_err(|e| TranslateError::InvalidReply(e.to_string()))?;
    let usage = if usage == Usage::default() {
        chat.usage.as_ref().map(Usage::from_openai).unwrap_or_default()
    } else {
        usage
    };
    Ok((chat, usage))
}

/// Feeds a piece to an inner translator, then its chat output to `outer`.
fn feed_through(inner: &mut ReplyTranslator, between: &mut Vec<u8>, bytes: &[u8], outer: impl FnOnce(&[u8])) {
    if inner.relays_verbatim() {
        // The upstream speaks chat: the inner translator only watches.
        inner.stream(bytes, between);
        outer(bytes);
    } else {
        between.clear();
        inner.stream(bytes, between);
        outer(between);
    }
}

impl ReplyTranslator {
    /// The reply to a call on a stored Responses object (read, delete, cancel): relayed as is,
    /// its usage (the stored response's own) never read, so nothing is billed twice.
    pub fn stored(wire: Wire) -> ReplyTranslator {
        ReplyTranslator::Passthrough {
            usage: StreamUsage::of(Dialect::StoredResponses),
            wire,
            strip: None,
        }
    }

    /// The reply of Claude on Bedrock's `invoke` to an Anthropic client: a stream's events are
    /// unwrapped from their frames; a whole reply is Anthropic's JSON, relayed as is.
    pub fn bedrock_invoke(stream: bool) -> ReplyTranslator {
        if stream {
            ReplyTranslator::MessagesFromInvoke {
                stream: Box::new(InvokeToMessagesStream::new()),
            }
        } else {
            ReplyTranslator::Passthrough {
                usage: StreamUsage::new(Wire::Anthropic),
                wire: Wire::Anthropic,
                strip: None,
            }
        }
    }

    /// The reply of OpenAI's audio, images and moderations APIs: relayed as is (audio as it
    /// streams), its usage read where the reply reports one.
    pub fn media(wire: Wire) -> ReplyTranslator {
        ReplyTranslator::Passthrough {
            usage: StreamUsage::of(Dialect::Media),
            wire,
            strip: None,
        }
    }

    /// Whether the reply passes through untranslated (same wire).
    pub fn is_passthrough(&self) -> bool {
        matches!(self, ReplyTranslator::Passthrough { .. })
    }

    /// Whether streamed bytes go to the client exactly as read (the caller relays them itself).
    pub fn relays_verbatim(&self) -> bool {
        matches!(self, ReplyTranslator::Passthrough { strip: None, .. })
    }

    /// Translates a complete non-stream reply body; returns the body to send and its usage.
    pub fn body(&self, body: &[u8]) -> Result<(Option<Vec<u8>>, Usage), TranslateError> {
        let invalid = |e: serde_json::Error| TranslateError::InvalidReply(e.to_string());
        match self {
            ReplyTranslator::Passthrough { usage, .. } => {
                Ok((None, usage.dialect().usage_json(body).unwrap_or_default()))
            }
            ReplyTranslator::ChatFromMessages { created, .. } => {
                let reply = serde_json::from_slice(body).map_err(invalid)?;
                let chat = chat_to_messages::response(reply, *created);
                let usage = chat.usage.as_ref().map(Usage::from_openai).unwrap_or_default();
                Ok((Some(serde_json::to_vec(&chat).map_err(invalid)?), usage))
            }
            ReplyTranslator::MessagesFromChat { .. } => {
                let reply = serde_json::from_slice(body).map_err(invalid)?;
                let messages = messages_to_chat::response(reply)?;
                let usage = Usage::from_anthropic(&messages.usage);
                Ok((Some(serde_json::to_vec(&messages).map_err(invalid)?), usage))
            }
            ReplyTranslator::ChatFromGemini { model, created, .. } => {
                let reply = serde_json::from_slice(body).map_err(invalid)?;
                let chat = chat_to_gemini::response(reply, model, *created);
                let usage = chat.usage.as_ref().map(Usage::from_openai).unwrap_or_default();
                Ok((Some(serde_json::to_vec(&chat).map_err(invalid)?), usage))
            }
            ReplyTranslator::MessagesFromGemini { model, created, .. } => {
                let reply = serde_json::from_slice(body).map_err(invalid)?;
                let chat = chat_to_gemini::response(reply, model, *created);
                let usage = chat.usage.as_ref().map(Usage::from_openai).unwrap_or_default();
                let messages = messages_to_chat::response(chat)?;
                Ok((Some(serde_json::to_vec(&messages).map_err(invalid)?), usage))
            }
            ReplyTranslator::GeminiFromChat { .. } => {
                let chat: crate::formats::openai::types::ChatResponse =
                    serde_json::from_slice(body).map_err(invalid)?;
                let usage = chat.usage.as_ref().map(Usage::from_openai).unwrap_or_default();
                let gemini = gemini_to_chat::response(chat);
                Ok((Some(serde_json::to_vec(&gemini).map_err(invalid)?), usage))
            }
            ReplyTranslator::GeminiFromMessages { created, .. } => {
                let reply = serde_json::from_slice(body).map_err(invalid)?;
                let chat = chat_to_messages::response(reply, *created);
                let usage = chat.usage.as_ref().map(Usage::from_openai).unwrap_or_default();
                let gemini = gemini_to_chat::response(chat);
                Ok((Some(serde_json::to_vec(&gemini).map_err(invalid)?), usage))
            }
            ReplyTranslator::EmbeddingsFromGemini { model, base64 } => {
                let reply = serde_json::from_slice(body).map_err(invalid)?;
                let list = chat_to_gemini::embeddings_response(reply, model, *base64);
                Ok((Some(serde_json::to_vec(&list).map_err(invalid)?), Usage::default()))
            }
            ReplyTranslator::ChatFromResponses { model, created, .. } => {
                let object: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
                let chat = chat_to_responses::response(&object, model, *created);
                let usage = chat.usage.as_ref().map(Usage::from_openai).unwrap_or_default();
                Ok((Some(serde_json::to_vec(&chat).map_err(invalid)?), usage))
            }
            ReplyTranslator::ChatFromConverse { model, created, .. } => {
                let reply = serde_json::from_slice(body).map_err(invalid)?;
                let chat = chat_to_converse::response(reply, model, *created);
                let usage = chat.usage.as_ref().map(Usage::from_openai).unwrap_or_default();
                Ok((Some(serde_json::to_vec(&chat).map_err(invalid)?), usage))
            }
            // A non-stream invoke reply is Anthropic's own JSON.
            ReplyTranslator::MessagesFromInvoke { .. } => {
                Ok((None, crate::usage::from_anthropic_json(body).unwrap_or_default()))
            }
            ReplyTranslator::ChatFromCohere { model, created, .. } => {
                let reply: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
                // Cohere reports a failed generation inside a 200.
                if reply["finish_reason"] == "ERROR" {
                    return Err(TranslateError::InvalidReply("the generation failed".into()));
                }
                let chat = chat_to_cohere::response(&reply, model, *created);
                let usage = chat.usage.as_ref().map(Usage::from_openai).unwrap_or_default();
                Ok((Some(serde_json::to_vec(&chat).map_err(invalid)?), usage))
            }
            ReplyTranslator::EmbeddingsFromCohere { model, base64 } => {
                let reply: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
                let (list, tokens) = chat_to_cohere::embeddings_response(&reply, model, *base64)?;
                let usage = Usage {
                    input_tokens: tokens,
                    ..Usage::default()
                };
                Ok((Some(serde_json::to_vec(&list).map_err(invalid)?), usage))
            }
            ReplyTranslator::EmbeddingsFromBedrock { model, base64 } => {
                let reply: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
                let (list, usage) = bedrock_embeddings::response(&reply, model, *base64)?;
                Ok((Some(serde_json::to_vec(&list).map_err(invalid)?), usage))
            }
            ReplyTranslator::GeminiOverChat { inner, .. } => {
                let (chat, usage) = chat_reply(inner, body)?;
                let gemini = gemini_to_chat::response(chat);
                Ok((Some(serde_json::to_vec(&gemini).map_err(invalid)?), usage))
            }
            ReplyTranslator::ConverseOverChat { inner, .. } => {
                let (chat, usage) = chat_reply(inner, body)?;
                let converse = converse_to_chat::response(chat);
                Ok((Some(serde_json::to_vec(&converse).map_err(invalid)?), usage))
            }
            ReplyTranslator::MessagesOverChat { inner, .. } => {
                let (chat, usage) = chat_reply(inner, body)?;
                let messages = messages_to_chat::response(chat)?;
                Ok((Some(serde_json::to_vec(&messages).map_err(invalid)?), usage))
            }
            ReplyTranslator::ResponsesFromChat { inner, .. } => {
                let (chat, usage) = chat_reply(inner, body)?;
                let response = responses_to_chat::response(chat);
                Ok((Some(serde_json::to_vec(&response).map_err(invalid)?), usage))
            }
            ReplyTranslator::CompletionsFromChat { inner, .. } => {
                let (chat, usage) = chat_reply(inner, body)?;
                let completion = completions_to_chat::response(chat);
                Ok((Some(serde_json::to_vec(&completion).map_err(invalid)?), usage))
            }
        }
    }

    /// Feeds a piece of a streamed reply. When [`ReplyTranslator::relays_verbatim`], the caller
    /// relays `bytes` itself and nothing is appended to `out`; otherwise `out` receives what the
    /// client gets.
    pub fn stream(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        match self {
            ReplyTranslator::Passthrough { usage, strip, .. } => {
                usage.observe(bytes);
                if let Some(filter) = strip {
                    filter.feed(bytes, out);
                }
            }
            ReplyTranslator::ChatFromMessages { stream, .. } => stream.feed(bytes, out),
            ReplyTranslator::MessagesFromChat { stream } => stream.feed(bytes, out),
            ReplyTranslator::ChatFromGemini { stream, .. } => stream.feed(bytes, out),
            ReplyTranslator::MessagesFromGemini {
                gemini, chat, between, ..
            } => {
                between.clear();
                gemini.feed(bytes, between);
                chat.feed(between, out);
            }
            ReplyTranslator::GeminiFromChat { stream } => stream.feed(bytes, out),
            ReplyTranslator::GeminiFromMessages {
                messages,
                chat,
                between,
                ..
            } => {
                between.clear();
                messages.feed(bytes, between);
                chat.feed(between, out);
            }
            // Embeddings are never streamed.
            ReplyTranslator::EmbeddingsFromGemini { .. } => {}
            ReplyTranslator::ChatFromResponses { stream, .. } => stream.feed(bytes, out),
            ReplyTranslator::ChatFromConverse { stream, .. } => stream.feed(bytes, out),
            ReplyTranslator::EmbeddingsFromBedrock { .. } | ReplyTranslator::EmbeddingsFromCohere { .. } => {}
            ReplyTranslator::ChatFromCohere { stream, .. } => stream.feed(bytes, out),
            ReplyTranslator::MessagesFromInvoke { stream } => stream.feed(bytes, out),
            ReplyTranslator::GeminiOverChat { inner, stream, between } => {
                feed_through(inner, between, bytes, |chat| stream.feed(chat, out));
            }
            ReplyTranslator::ConverseOverChat { inner, stream, between } => {
                feed_through(inner, between, bytes, |chat| stream.feed(chat, out));
            }
            ReplyTranslator::MessagesOverChat { inner, stream, between } => {
                feed_through(inner, between, bytes, |chat| stream.feed(chat, out));
            }
            ReplyTranslator::ResponsesFromChat { inner, stream, between } => {
                feed_through(inner, between, bytes, |chat| stream.feed(chat, out));
            }
            ReplyTranslator::CompletionsFromChat { inner, stream, between } => {
                feed_through(inner, between, bytes, |chat| stream.feed(chat, out));
            }
        }
    }

    /// Whether the upstream stream reached the end its protocol defines (`[DONE]`,
    /// `message_stop`) with no error event. A stream that did not must end, for the client, with
    /// an error event and never with a success terminator.
    pub fn completed(&self) -> bool {
        match self {
            ReplyTranslator::Passthrough { usage, .. } => usage.completed(),
            ReplyTranslator::ChatFromMessages { stream, .. } => stream.completed(),
            ReplyTranslator::MessagesFromChat { stream } => stream.completed(),
            ReplyTranslator::ChatFromGemini { stream, .. } => stream.completed(),
            ReplyTranslator::MessagesFromGemini { gemini, chat, .. } => gemini.completed() && chat.completed(),
            ReplyTranslator::GeminiFromChat { stream } => stream.completed(),
            ReplyTranslator::GeminiFromMessages { messages, chat, .. } => messages.completed() && chat.completed(),
            ReplyTranslator::EmbeddingsFromGemini { .. } => false,
            ReplyTranslator::ChatFromResponses { stream, .. } => stream.completed(),
            ReplyTranslator::ChatFromConverse { stream, .. } => stream.completed(),
            ReplyTranslator::EmbeddingsFromBedrock { .. } | ReplyTranslator::EmbeddingsFromCohere { .. } => false,
            ReplyTranslator::ChatFromCohere { stream, .. } => stream.completed(),
            ReplyTranslator::MessagesFromInvoke { stream } => stream.completed(),
            ReplyTranslator::GeminiOverChat { inner, stream, .. } => inner.completed() && stream.completed(),
            ReplyTranslator::ConverseOverChat { inner, stream, .. } => inner.completed() && stream.completed(),
            ReplyTranslator::MessagesOverChat { inner, stream, .. } => inner.completed() && stream.completed(),
            ReplyTranslator::ResponsesFromChat { inner, stream, .. } => inner.completed() && stream.completed(),
            ReplyTranslator::CompletionsFromChat { inner, stream, .. } => inner.completed() && stream.completed(),
        }
    }

    /// The upstream stream ended as its protocol says: flush what is held back.
    pub fn stream_end(&mut self, out: &mut Vec<u8>) {
        match self {
            ReplyTranslator::Passthrough {
                strip: Some(filter), ..
            } => filter.finish(out),
            ReplyTranslator::MessagesOverChat { inner, stream, between } => {
                between.clear();
                inner.stream_end(between);
                stream.feed(between, out);
            }
            ReplyTranslator::GeminiOverChat { inner, stream, between } => {
                between.clear();
                inner.stream_end(between);
                stream.feed(between, out);
            }
            ReplyTranslator::ConverseOverChat { inner, stream, between } => {
                between.clear();
                inner.stream_end(between);
                stream.feed(between, out);
            }
            ReplyTranslator::ResponsesFromChat { inner, stream, between } => {
                between.clear();
                inner.stream_end(between);
                stream.feed(between, out);
            }
            ReplyTranslator::CompletionsFromChat { inner, stream, between } => {
                between.clear();
                inner.stream_end(between);
                stream.feed(between, out);
            }
            _ => {}
        }
    }

    /// The id of a Responses object relayed as is (stored by the provider): from the body of a
    /// whole reply, or from a stream's first event.
    pub fn stored_response_id(&self, body: Option<&[u8]>) -> Option<String> {
        match self {
            ReplyTranslator::Passthrough { usage, .. }
                if matches!(usage.dialect(), Dialect::Responses | Dialect::StoredResponses) =>
            {
                match body {
                    Some(body) => crate::formats::openai::responses::id_of(body),
                    None => usage.response_id().map(str::to_string),
                }
            }
            _ => None,
        }
    }

    /// The usage the provider reported, if it reported any.
    pub fn reported_usage(&self) -> Option<Usage> {
        self.usage().reported()
    }

    /// Usage seen so far in a stream.
    pub fn usage(&self) -> Usage {
        match self {
            ReplyTranslator::Passthrough { usage, .. } => usage.usage(),
            ReplyTranslator::ChatFromMessages { stream, .. } => stream.usage(),
            ReplyTranslator::MessagesFromChat { stream } => stream.usage(),
            ReplyTranslator::ChatFromGemini { stream, .. } => stream.usage(),
            ReplyTranslator::MessagesFromGemini { gemini, .. } => gemini.usage(),
            ReplyTranslator::GeminiFromChat { stream } => stream.usage(),
            ReplyTranslator::GeminiFromMessages { messages, .. } => messages.usage(),
            ReplyTranslator::EmbeddingsFromGemini { .. } => Usage::default(),
            ReplyTranslator::ChatFromResponses { stream, .. } => stream.usage(),
            ReplyTranslator::ChatFromConverse { stream, .. } => stream.usage(),
            ReplyTranslator::EmbeddingsFromBedrock { .. } | ReplyTranslator::EmbeddingsFromCohere { .. } => {
                Usage::default()
            }
            ReplyTranslator::ChatFromCohere { stream, .. } => stream.usage(),
            ReplyTranslator::MessagesFromInvoke { stream } => stream.usage(),
            ReplyTranslator::GeminiOverChat { inner, stream, .. } => {
                let mut usage = inner.usage();
                usage.merge_max(stream.usage());
                usage
            }
            ReplyTranslator::ConverseOverChat { inner, stream, .. } => {
                let mut usage = inner.usage();
                usage.merge_max(stream.usage());
                usage
            }
            ReplyTranslator::MessagesOverChat { inner, stream, .. } => {
                let mut usage = inner.usage();
                usage.merge_max(stream.usage());
                usage
            }
            ReplyTranslator::ResponsesFromChat { inner, stream, .. } => {
                let mut usage = inner.usage();
                usage.merge_max(stream.usage());
                usage
            }
            ReplyTranslator::CompletionsFromChat { inner, stream, .. } => {
                let mut usage = inner.usage();
                usage.merge_max(stream.usage());
                usage
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_cohere_generation_is_an_error_not_a_reply() {
        let raw = br#"{"model":"cohere/command-r","messages":[{"role":"user","content":"hi"}]}"#;
        let head = RequestHead::parse(raw).expect("head");
        let prepared = prepare(
            Wire::OpenAi,
            Wire::Cohere,
            &head,
            raw,
            "command-r",
            1,
            UpstreamOptions::default(),
        )
        .expect("prepared");
        let failed = br#"{"id":"c","finish_reason":"ERROR","message":{"role":"assistant","content":[]}}"#;
        assert!(prepared.reply.body(failed).is_err());
        let ok = br#"{"id":"c","finish_reason":"COMPLETE","message":{"role":"assistant","content":[{"type":"text","text":"hi"}]}}"#;
        assert!(prepared.reply.body(ok).is_ok());
    }
}
