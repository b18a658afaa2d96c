//! Exact prompt token counts, for model families whose tokenizer is public and whose chat
//! overhead is documented (OpenAI's GPT-4o, GPT-4.1, GPT-4 and GPT-3.5, through `tiktoken-rs`), so a reservation near a budget's edge can be the prompt's real size instead
//! of its byte length. The counting follows OpenAI's documented chat format: 3 tokens per
//! message, the role's and content's tokens, 1 more for a `name`, and 3 to prime the reply.
//!
//! A request the count cannot be exact for (tools, images, audio, tool calls, another wire) gets
//! `None`, and the byte bound stays: a guess that could undercount is never used.
//!
//! A tokenizer's tables are loaded on first need, on a thread of their own at the lowest CPU
//! priority: building one takes about 150 ms of CPU and 40 MiB, which on a worker thread would
//! hold up every request it serves. Until they are loaded the byte bound stays: a request it
//! refuses waits for them ([`until_built`]) and is counted again, and none is ever admitted on a
//! guess.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use asbru_config::catalog::Wire;
use serde_json::Value;
use tiktoken_rs::CoreBPE;

/// The encodings asbru counts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GPT-4o, GPT-4.1, GPT-5 and the o-series.
    O200k,
    /// GPT-4 and GPT-3.5.
    Cl100k,
}

/// The encoding of `model` (an upstream model name), when it is an OpenAI model.
pub fn encoding_for(model: &str) -> Option<Encoding> {
    let name = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    // The per-message overhead is documented for these families only (not for the o-series or
    // GPT-5, nor for gpt-3.5-turbo-0301, which used another one): others keep the byte bound.
    if name.starts_with("gpt-3.5-turbo-0301") {
        return None;
    }
    let o200k = ["gpt-4o", "chatgpt-4o", "gpt-4.1"];
    if o200k.iter().any(|p| name.starts_with(p)) {
        Some(Encoding::O200k)
    } else if name.starts_with("gpt-4") || name.starts_with("gpt-3.5") {
        Some(Encoding::Cl100k)
    } else {
        None
    }
}

/// A table built once, in the background, the first time it is asked for.
struct Lazy<T: 'static> {
    value: OnceLock<Option<T>>,
    /// A thread building the table was started.
    started: AtomicBool,
    build: fn() -> Option<T>,
    /// The building thread's name.
    name: &'static str,
}

impl<T: Send + Sync + 'static> Lazy<T> {
    const fn new(name: &'static str, build: fn() -> Option<T>) -> Lazy<T> {
        Lazy {
            value: OnceLock::new(),
            started: AtomicBool::new(false),
            build,
            name,
        }
    }

    /// The table when it is built; otherwise starts building it and returns `None` at once.
    fn get(&'static self) -> Option<&'static T> {
        if let Some(value) = self.value.get() {
            return value.as_ref();
        }
        if !self.started.swap(true, Ordering::AcqRel) {
            let spawned = std::thread::Builder::new().name(self.name.to_string()).spawn(move || {
                lowest_priority();
                self.wait();
            });
            if let Err(e) = spawned {
                tracing::warn!("cannot start the {} thread: {e}", self.name);
                self.started.store(false, Ordering::Release);
            }
        }
        None
    }

    /// The table, built on this thread if no one built it yet.
    fn wait(&self) -> Option<&T> {
        self.value
            .get_or_init(|| {
                // A build that panics counts as one that failed, so no one waits for it again.
                let built = std::panic::catch_unwind(self.build).ok().flatten();
                if built.is_none() {
                    tracing::warn!("{}: the tables could not be built; byte bounds stay", self.name);
                }
                built
            })
            .as_ref()
    }
}

/// Puts the calling thread at the lowest CPU priority (nice 19): building tables is background
/// work that must not slow the threads serving requests, nor the cluster lease fetch a cold
/// node's first requests wait for (at nice 10 a cold node's first fetch, slowed by the build,
/// outlasted its 50 ms wait in CI). The few requests waiting for the tables wait at most
/// [`BUILD_WAIT`]. On Linux the nice value is the thread's own.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; `who` 0 is the calling thread.
        #[allow(unsafe_code)]
        let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        if done != 0 {
            tracing::debug!(
                "tokenizer thread keeps its priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn table(encoding: Encoding) -> &'static Lazy<CoreBPE> {
    static O200K: Lazy<CoreBPE> = Lazy::new("asbru tokenizer o200k", || tiktoken_rs::o200k_base().ok());
    static CL100K: Lazy<CoreBPE> = Lazy::new("asbru tokenizer cl100k", || tiktoken_rs::cl100k_base().ok());
    match encoding {
        Encoding::O200k => &O200K,
        Encoding::Cl100k => &CL100K,
    }
}

fn tokenizer(encoding: Encoding) -> Option<&'static CoreBPE> {
    table(encoding).get()
}

/// When this request's prompt could be counted exactly but the tables are still being built: a
/// future that completes once they are, or after [`BUILD_WAIT`]. It holds no thread (it looks
/// again every few milliseconds). `None` when there is nothing to wait for: the prompt cannot be
/// counted (another wire or family, tools, images), or the tables are there (or failed).
pub fn until_built(model: &str, wire: Wire, body: &[u8]) -> Option<crate::ctx::WaitFuture> {
    let Count::TablesPending(encoding) = count(model, wire, body) else {
        return None;
    };
    let table = table(encoding);
    Some(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + BUILD_WAIT;
        while table.value.get().is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }))
}

/// The longest a refused request waits for tables being built (once per request).
pub const BUILD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Builds `encoding`'s tables now, on the calling thread, unless they are built already: for
/// callers that must count exactly from their first request (tests, a warm-up off the request
/// path). Returns whether they could be built.
pub fn load(encoding: Encoding) -> bool {
    table(encoding).wait().is_some()
}

/// What counting a prompt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// The prompt's tokens, exactly.
    Exact(u64),
    /// The prompt can be counted once this encoding's tables are built (they are being built).
    TablesPending(Encoding),
    /// The prompt cannot be counted exactly: another wire or family, tools, images, audio.
    Uncountable,
}

/// The prompt tokens `model` will bill for a chat request `body` in the client's `wire`, when
/// they can be counted exactly (and the tables are built).
pub fn prompt_tokens(model: &str, wire: Wire, body: &[u8]) -> Option<u64> {
    match count(model, wire, body) {
        Count::Exact(tokens) => Some(tokens),
        Count::TablesPending(_) | Count::Uncountable => None,
    }
}

/// Counts `body`'s prompt tokens for `model` in `wire`. The body is checked whole before the
/// tables are asked for, so [`Count::TablesPending`] means a count will be possible.
pub fn count(model: &str, wire: Wire, body: &[u8]) -> Count {
    let Some((encoding, request)) = countable(model, wire, body) else {
        return Count::Uncountable;
    };
    let Some(bpe) = tokenizer(encoding) else {
        return if table(encoding).started.load(Ordering::Acquire) {
            Count::TablesPending(encoding)
        } else {
            Count::Uncountable
        };
    };
    let tokens = |text: &str| bpe.encode_ordinary(text).len() as u64;
    // 3 to prime the reply, 3 per message, 1 more for a name.
    let mut total: u64 = 3;
    for message in request.get("messages").and_then(Value::as_array).into_iter().flatten() {
        let Some(texts) = message_texts(message) else {
            return Count::Uncountable;
        };
        total += 3 + tokens(texts.role);
        if let Some(name) = texts.name {
            total += tokens(name) + 1;
        }
        if let Some(content) = texts.content {
            total += tokens(content);
        }
    }
    Count::Exact(total)
}

/// The parts of one message that are counted.
struct MessageTexts<'a> {
    role: &'a str,
    name: Option<&'a str>,
    content: Option<&'a str>,
}

/// A message's counted texts, when it is of a shape the documented formula covers: only
/// `role`, `content` and `name` (tool calls, tool results, refusals and audio keep the byte
/// bound), and text content, as a string or one text part.
fn message_texts(message: &Value) -> Option<MessageTexts<'_>> {
    let fields = message.as_object()?;
    if fields
        .iter()
        .any(|(k, v)| !v.is_null() && !matches!(k.as_str(), "role" | "content" | "name"))
    {
        return None;
    }
    let content = match message.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.as_str()),
        // One text part reads as a string; how several are joined is not documented.
        Some(Value::Array(parts)) if parts.len() == 1 => {
            let part = &parts[0];
            if part.get("type").and_then(Value::as_str) != Some("text") {
                return None;
            }
            Some(part.get("text")?.as_str()?)
        }
        Some(_) => return None,
    };
    Some(MessageTexts {
        role: message.get("role")?.as_str()?,
        name: message.get("name").and_then(Value::as_str),
        content,
    })
}

/// The encoding and the parsed request, when the whole prompt is of a shape the documented
/// formula covers (checked before any table is asked for).
fn countable(model: &str, wire: Wire, body: &[u8]) -> Option<(Encoding, Value)> {
    if wire != Wire::OpenAi {
        return None;
    }
    let encoding = encoding_for(model)?;
    let request: Value = serde_json::from_slice(body).ok()?;
    let present = |key: &str| request.get(key).is_some_and(|v| !v.is_null());
    // Prompt tokens the formula does not cover: tools, a response schema, audio.
    if ["tools", "functions", "audio", "response_format", "prediction"]
        .iter()
        .any(|k| present(k))
    {
        return None;
    }
    let messages = request.get("messages")?.as_array()?;
    if !messages.iter().all(|m| message_texts(m).is_some()) {
        return None;
    }
    Some((encoding, request))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_prompts_count_as_openai_documents() {
        assert!(load(Encoding::O200k));
        // 3 to prime + 3 per message + "user" (1) + "Say hello to everyone." (5).
        let body = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Say hello to everyone."}]}"#;
        assert_eq!(prompt_tokens("gpt-4o-mini", Wire::OpenAi, body), Some(12));
        let parts = br#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","name":"ann","content":[{"type":"text","text":"Say hello to everyone."}]}]}"#;
        let two_parts =
            br#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#;
        assert_eq!(prompt_tokens("gpt-4o", Wire::OpenAi, two_parts), None);
        let schema = br#"{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema"}}"#;
        assert_eq!(prompt_tokens("gpt-4o", Wire::OpenAi, schema), None);
        let tool_result = br#"{"messages":[{"role":"tool","tool_call_id":"c1","content":"42"}]}"#;
        assert_eq!(prompt_tokens("gpt-4o", Wire::OpenAi, tool_result), None);
        let counted = prompt_tokens("gpt-4o", Wire::OpenAi, parts).expect("countable");
        assert!(counted > 12, "{counted}");
    }

    /// A table not built yet is built on a thread of its own: the first asker gets `None` at
    /// once (the byte bound) instead of waiting, and a later one gets the table.
    #[test]
    fn the_first_need_builds_the_table_in_the_background() {
        use std::sync::{Condvar, Mutex};
        static GATE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());
        fn build() -> Option<u32> {
            let (open, turned) = &GATE;
            let mut open = open.lock().expect("gate");
            while !*open {
                open = turned.wait(open).expect("gate");
            }
            Some(7)
        }
        static TABLE: Lazy<u32> = Lazy::new("test table", build);
        // The builder is held at the gate: a `get` that waited for it would never return.
        let (sent, asked) = std::sync::mpsc::channel();
        std::thread::spawn(move || sent.send((TABLE.get(), TABLE.get())));
        let first = asked
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("get returned");
        assert_eq!(first, (None, None), "not built yet: no table, no wait");
        *GATE.0.lock().expect("gate") = true;
        GATE.1.notify_all();
        assert_eq!(TABLE.wait(), Some(&7), "built once, by the background thread");
        assert_eq!(TABLE.get(), Some(&7));
    }

    #[test]
    fn what_cannot_be_counted_exactly_is_not() {
        let tools =
            br#"{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#;
        assert_eq!(prompt_tokens("gpt-4o", Wire::OpenAi, tools), None);
        // A prompt that cannot be counted never waits for tables, built or not.
        assert!(countable("gpt-4o", Wire::OpenAi, tools).is_none());
        assert!(until_built("gpt-4o", Wire::OpenAi, tools).is_none());
        assert!(load(Encoding::O200k));
        let plain_chat = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(count("gpt-4o", Wire::OpenAi, plain_chat), Count::Exact(8));
        assert!(
            until_built("gpt-4o", Wire::OpenAi, plain_chat).is_none(),
            "built: nothing to wait for"
        );
        let image = br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:x"}}]}]}"#;
        assert_eq!(prompt_tokens("gpt-4o", Wire::OpenAi, image), None);
        let plain = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(
            prompt_tokens("claude-sonnet-4", Wire::OpenAi, plain),
            None,
            "no public tokenizer"
        );
        assert_eq!(prompt_tokens("gpt-4o", Wire::Anthropic, plain), None);
        assert_eq!(prompt_tokens("gpt-4o", Wire::OpenAi, b"not json"), None);
        assert_eq!(encoding_for("openai/gpt-4-turbo"), Some(Encoding::Cl100k));
        assert_eq!(encoding_for("o3-mini"), None, "no documented chat overhead");
        assert_eq!(encoding_for("gpt-3.5-turbo-0301"), None);
    }
}
