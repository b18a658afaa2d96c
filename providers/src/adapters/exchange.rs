//! The per-attempt choice of translation: given the ingress wire and the upstream wire, what body
//! goes upstream and how the reply comes back. OpenAI chat is the hub: Azure and every
//! OpenAI-compatible provider speak it as is; Anthropic Messages and Gemini `generateContent` are
//! translated to and from it (an Anthropic client reaches Gemini through the hub, both ways).
//! Same body shape: the body passes through with only the model rewritten, and the reply passes
//! through verbatim. Different shapes: translate both ways.

use super::chat_stream::ChatToMessagesStream;
use super::chat_to_gemini_stream::ChatToGeminiStream;
use super::gemini_stream::GeminiToChatStream;
use super::messages_stream::MessagesToChatStream;
use super::{TranslateError, chat_to_gemini, chat_to_messages, gemini_to_chat, messages_to_chat};
use crate::formats::openai::RequestHead;
use crate::usage::{self, StreamUsage, Usage, UsageChunkFilter};
use asbru_config::catalog::Wire;

/// The body shape of a wire on the hub's two sides.
enum Shape {
    /// OpenAI chat completions (the hub).
    Chat,
    /// Anthropic Messages.
    Messages,
    /// Gemini `generateContent`.
    Gemini,
}

fn shape(wire: Wire) -> Result<Shape, TranslateError> {
    match wire {
        Wire::OpenAi | Wire::Azure => Ok(Shape::Chat),
        Wire::Anthropic => Ok(Shape::Messages),
        Wire::Gemini => Ok(Shape::Gemini),
        Wire::Bedrock | Wire::Vertex | Wire::Cohere => Err(TranslateError::InvalidRequest(format!(
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
    let UpstreamOptions {
        want_usage,
        output_cap,
        embeddings,
        count_tokens,
    } = options;
    let invalid = |e: serde_json::Error| TranslateError::InvalidRequest(e.to_string());
    let (body, reply) = match (shape(ingress)?, shape(upstream)?) {
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
            let chat = serde_json::from_slice(raw).map_err(invalid)?;
            let request = chat_to_messages::request(chat, upstream_model)?;
            (
                serde_json::to_vec(&request).map_err(invalid)?,
                ReplyTranslator::ChatFromMessages {
                    stream: MessagesToChatStream::new(created),
                    created,
                },
            )
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
            let chat: crate::formats::openai::types::ChatRequest = serde_json::from_slice(raw).map_err(invalid)?;
            let candidates = chat.n.unwrap_or(1);
            let request = chat_to_gemini::request(chat)?;
            (
                serde_json::to_vec(&request).map_err(invalid)?,
                ReplyTranslator::ChatFromGemini {
                    stream: Box::new(GeminiToChatStream::with_candidates(upstream_model, created, candidates)),
                    model: upstream_model.to_string(),
                    created,
                },
            )
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
}

impl ReplyTranslator {
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
            ReplyTranslator::Passthrough { wire, .. } => {
                Ok((None, usage::from_wire_json(*wire, body).unwrap_or_default()))
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
        }
    }

    /// The upstream stream ended as its protocol says: flush what is held back.
    pub fn stream_end(&mut self, out: &mut Vec<u8>) {
        if let ReplyTranslator::Passthrough {
            strip: Some(filter), ..
        } = self
        {
            filter.finish(out);
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
        }
    }
}
