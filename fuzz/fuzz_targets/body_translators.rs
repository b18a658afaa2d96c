//! The body translators: an OpenAI chat request to Anthropic Messages and to Gemini (and
//! embeddings to Gemini), an Anthropic request to OpenAI chat, Responses and legacy completions to chat and chat to Responses,
//! chat to Bedrock Converse (and embeddings to Bedrock's models) and Converse to chat, chat and embeddings to Cohere, and the reply directions. Any input is translated or refused with
//! an error, never a panic, and what is translated serialises.
#![no_main]

use asbru_providers::adapters::{
    bedrock_embeddings, chat_to_cohere, chat_to_converse, chat_to_gemini, chat_to_messages, chat_to_responses, completions_to_chat,
    converse_to_chat, messages_to_chat, responses_to_chat,
};
use asbru_providers::formats::bedrock::types::ConverseResponse;
use asbru_providers::formats::anthropic::types::{MessagesRequest, MessagesResponse};
use asbru_providers::formats::gemini::types::{BatchEmbedResponse, GenerateResponse};
use asbru_providers::formats::openai::types::{ChatRequest, ChatResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(chat) = serde_json::from_slice::<ChatRequest>(body)
        && let Ok(cohere) = chat_to_cohere::request(chat, "command-test")
    {
        serde_json::to_vec(&cohere).expect("a translated request serialises");
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        serde_json::to_vec(&chat_to_cohere::response(&value, "command-test", 1_700_000_000)).expect("reply serialises");
        let _ = chat_to_cohere::embeddings_request(&value, "embed-test");
        if let Ok((list, _)) = chat_to_cohere::embeddings_response(&value, "embed-test", true) {
            serde_json::to_vec(&list).expect("reply serialises");
        }
    }
    if let Ok(chat) = serde_json::from_slice::<ChatRequest>(body)
        && let Ok(extra) = chat_to_converse::additional_fields(body)
        && let Ok(converse) = chat_to_converse::request(chat, "anthropic.claude-test", extra)
    {
        serde_json::to_vec(&converse).expect("a translated request serialises");
    }
    if let Ok(reply) = serde_json::from_slice::<ConverseResponse>(body) {
        serde_json::to_vec(&chat_to_converse::response(reply, "bedrock-test", 1_700_000_000)).expect("reply serialises");
    }
    if let Ok(chat) = converse_to_chat::request(body, "gpt-test", true) {
        serde_json::to_vec(&chat).expect("a translated request serialises");
    }
    if let Ok(reply) = serde_json::from_slice::<ChatResponse>(body) {
        serde_json::to_vec(&converse_to_chat::response(reply)).expect("reply serialises");
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        for model in ["amazon.titan-embed-text-v2:0", "cohere.embed-english-v3"] {
            let _ = bedrock_embeddings::request(&value, model);
            if let Ok((list, _)) = bedrock_embeddings::response(&value, model, true) {
                serde_json::to_vec(&list).expect("reply serialises");
            }
        }
    }
    if let Ok(chat) = serde_json::from_slice::<ChatRequest>(body)
        && let Ok(messages) = chat_to_messages::request(chat, "claude-test")
    {
        serde_json::to_vec(&messages).expect("a translated request serialises");
    }
    if let Ok(messages) = serde_json::from_slice::<MessagesRequest>(body)
        && let Ok(chat) = messages_to_chat::request(messages, "gpt-test")
    {
        serde_json::to_vec(&chat).expect("a translated request serialises");
    }
    if let Ok(reply) = serde_json::from_slice::<MessagesResponse>(body) {
        serde_json::to_vec(&chat_to_messages::response(reply, 1_700_000_000)).expect("reply serialises");
    }
    if let Ok(reply) = serde_json::from_slice::<ChatResponse>(body)
        && let Ok(messages) = messages_to_chat::response(reply)
    {
        serde_json::to_vec(&messages).expect("reply serialises");
    }
    if let Ok(chat) = serde_json::from_slice::<ChatRequest>(body)
        && let Ok(gemini) = chat_to_gemini::request(chat)
    {
        serde_json::to_vec(&gemini).expect("a translated request serialises");
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Ok(embed) = chat_to_gemini::embeddings_request(&value, "models/e")
    {
        serde_json::to_vec(&embed).expect("a translated request serialises");
    }
    if let Ok(reply) = serde_json::from_slice::<GenerateResponse>(body) {
        serde_json::to_vec(&chat_to_gemini::response(reply, "gemini-test", 1_700_000_000)).expect("reply serialises");
    }
    if let Ok(chat) = responses_to_chat::request(body, "gpt-test") {
        serde_json::to_vec(&chat).expect("a translated request serialises");
    }
    if let Ok(chat) = completions_to_chat::request(body, "gpt-test") {
        serde_json::to_vec(&chat).expect("a translated request serialises");
    }
    if let Ok(chat) = serde_json::from_slice::<ChatRequest>(body)
        && let Ok(responses) = chat_to_responses::request(chat, "gpt-test")
    {
        serde_json::to_vec(&responses).expect("a translated request serialises");
    }
    if let Ok(reply) = serde_json::from_slice::<ChatResponse>(body) {
        serde_json::to_vec(&responses_to_chat::response(reply.clone())).expect("reply serialises");
        serde_json::to_vec(&completions_to_chat::response(reply)).expect("reply serialises");
    }
    if let Ok(object) = serde_json::from_slice::<serde_json::Value>(body) {
        serde_json::to_vec(&chat_to_responses::response(&object, "gpt-test", 1_700_000_000)).expect("reply serialises");
    }
    if let Ok(reply) = serde_json::from_slice::<BatchEmbedResponse>(body) {
        serde_json::to_vec(&chat_to_gemini::embeddings_response(reply, "e", body.first() == Some(&b'{'))).expect("reply serialises");
    }
});
