//! The stream translators (OpenAI chunks -> Anthropic events, Anthropic events -> OpenAI
//! chunks, Gemini events -> OpenAI chunks, OpenAI chunks <-> Responses events, OpenAI chunks ->
//! text completions, Bedrock event streams <-> OpenAI chunks, Cohere events -> OpenAI chunks, Claude's events unwrapped from Bedrock invoke frames), fed arbitrary upstream bytes in
//! arbitrary cuts: every SSE event they write is on its own line and carries JSON (or `[DONE]`),
//! and every event-stream frame decodes with its CRCs and carries JSON, so a client can always
//! parse the stream.
#![no_main]

use asbru_providers::adapters::chat_stream::ChatToMessagesStream;
use asbru_providers::adapters::chat_to_converse_stream::ChatToConverseStream;
use asbru_providers::adapters::cohere_stream::CohereToChatStream;
use asbru_providers::adapters::invoke_stream::InvokeToMessagesStream;
use asbru_providers::adapters::converse_stream::ConverseToChatStream;
use asbru_providers::eventstream::EventStreamDecoder;
use asbru_providers::adapters::chat_to_responses_stream::ChatToResponsesStream;
use asbru_providers::adapters::completions_to_chat::ChatToCompletionStream;
use asbru_providers::adapters::responses_stream::ResponsesToChatStream;
use asbru_providers::adapters::gemini_stream::GeminiToChatStream;
use asbru_providers::adapters::messages_stream::MessagesToChatStream;
use asbru_providers::sse::SseSplitter;
use libfuzzer_sys::fuzz_target;

fn assert_parseable(out: &[u8]) {
    let mut splitter = SseSplitter::new();
    splitter.feed(out);
    splitter.finish();
    while let Some(event) = splitter.next_event() {
        if event.data.as_ref() as &str == "[DONE]" {
            continue;
        }
        serde_json::from_str::<serde_json::Value>(&event.data)
            .unwrap_or_else(|e| panic!("unparseable event {:?}: {e}", event.data));
    }
    assert!(out.is_empty() || out.ends_with(b"\n\n"), "output ends mid-event");
}

fn assert_frames(out: &[u8]) {
    let mut decoder = EventStreamDecoder::new();
    decoder.feed(out);
    while let Some(frame) = decoder.next_frame() {
        let frame = frame.unwrap_or_else(|e| panic!("a frame written does not decode: {e}"));
        serde_json::from_slice::<serde_json::Value>(&frame.payload)
            .unwrap_or_else(|e| panic!("a frame carries no JSON: {e}"));
    }
    assert!(!decoder.has_partial(), "output ends mid-frame");
}

fuzz_target!(|input: &[u8]| {
    let Some((&stride, bytes)) = input.split_first() else {
        return;
    };
    let stride = usize::from(stride).max(1);

    let mut to_messages = ChatToMessagesStream::new("claude-test");
    let mut out = Vec::new();
    for chunk in bytes.chunks(stride) {
        to_messages.feed(chunk, &mut out);
    }
    if to_messages.completed() {
        to_messages.finish(&mut out);
    }
    let _ = to_messages.usage();
    assert_parseable(&out);

    let mut to_chat = MessagesToChatStream::new(1_700_000_000);
    let mut out = Vec::new();
    for chunk in bytes.chunks(stride) {
        to_chat.feed(chunk, &mut out);
    }
    let _ = (to_chat.usage(), to_chat.is_done(), to_chat.completed());
    assert_parseable(&out);

    let mut from_gemini = GeminiToChatStream::new("gemini-test", 1_700_000_000);
    let mut out = Vec::new();
    for chunk in bytes.chunks(stride) {
        from_gemini.feed(chunk, &mut out);
    }
    let _ = (from_gemini.usage(), from_gemini.completed());
    assert_parseable(&out);

    let mut to_responses = ChatToResponsesStream::new("gpt-test", 1_700_000_000);
    let mut out = Vec::new();
    for chunk in bytes.chunks(stride) {
        to_responses.feed(chunk, &mut out);
    }
    let _ = (to_responses.usage(), to_responses.completed());
    assert_parseable(&out);

    let mut from_responses = ResponsesToChatStream::new("gpt-test", 1_700_000_000, true);
    let mut out = Vec::new();
    for chunk in bytes.chunks(stride) {
        from_responses.feed(chunk, &mut out);
    }
    let _ = (from_responses.usage(), from_responses.completed());
    assert_parseable(&out);

    let mut to_completions = ChatToCompletionStream::new(true);
    let mut out = Vec::new();
    for chunk in bytes.chunks(stride) {
        to_completions.feed(chunk, &mut out);
    }
    let _ = (to_completions.usage(), to_completions.completed());
    assert_parseable(&out);

    let mut from_converse = ConverseToChatStream::new("bedrock-test", 1_700_000_000);
    let mut out = Vec::new();
    for chunk in bytes.chunks(stride) {
        from_converse.feed(chunk, &mut out);
    }
    let _ = (from_converse.usage(), from_converse.completed());
    assert_parseable(&out);

    let mut from_cohere = CohereToChatStream::new("command-test", 1_700_000_000);
    let mut out = Vec::new();
    for chunk in bytes.chunks(stride) {
        from_cohere.feed(chunk, &mut out);
    }
    let _ = (from_cohere.usage(), from_cohere.completed());
    assert_parseable(&out);

    let mut from_invoke = InvokeToMessagesStream::new();
    let mut out = Vec::new();
    for chunk in bytes.chunks(stride) {
        from_invoke.feed(chunk, &mut out);
    }
    let _ = (from_invoke.usage(), from_invoke.completed());
    assert_parseable(&out);

    let mut to_converse = ChatToConverseStream::new();
    let mut out = Vec::new();
    for chunk in bytes.chunks(stride) {
        to_converse.feed(chunk, &mut out);
    }
    let _ = (to_converse.usage(), to_converse.completed());
    assert_frames(&out);
});
