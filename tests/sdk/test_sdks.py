"""Official SDKs against asbru: every call must succeed and decode into the SDK's own types."""

import json
import os
import sys
import time

import anthropic
import openai

BASE = os.environ["ASBRU_URL"]
TOOLS_OPENAI = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
TOOLS_ANTHROPIC = [{"name": "get_weather", "description": "Weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
failures = []


def check(name, fn):
    try:
        fn()
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - report every failure, then fail the run
        failures.append(name)
        print(f"FAIL {name}: {type(e).__name__}: {e}")


def wait_ready(client):
    # The in-process mock starts alongside the gateway; retry briefly.
    for _ in range(100):
        try:
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            return
        except openai.APIError:
            time.sleep(0.05)


oai = openai.OpenAI(base_url=f"{BASE}/v1", api_key="not-needed", max_retries=0)
ant = anthropic.Anthropic(base_url=f"{BASE}/anthropic", api_key="not-needed", max_retries=0)
wait_ready(oai)


def openai_chat(model):
    def run():
        r = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content.startswith("Hello"), r
        assert r.usage.total_tokens > 0, r.usage
    return run


def openai_stream(model):
    def run():
        text, usage = "", None
        stream = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                             stream=True, stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            usage = chunk.usage or usage
        assert text.startswith("Hello"), text
        assert usage is not None and usage.completion_tokens > 0, usage
    return run


def openai_tools(model, stream):
    def run():
        kwargs = dict(model=model, messages=[{"role": "user", "content": "weather in Paris?"}], tools=TOOLS_OPENAI)
        if not stream:
            call = oai.chat.completions.create(**kwargs).choices[0].message.tool_calls[0]
            name, args = call.function.name, call.function.arguments
        else:
            name, args = None, ""
            for chunk in oai.chat.completions.create(stream=True, **kwargs):
                for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                    assert tc.index == 0
                    name = name or (tc.function.name if tc.function else None)
                    args += (tc.function.arguments or "") if tc.function else ""
        assert name == "get_weather", name
        assert json.loads(args) == {"city": "Paris"}, args
    return run


def anthropic_message(model):
    def run():
        r = ant.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
        assert r.content[0].type == "text" and r.content[0].text.startswith("Hello"), r
        assert r.usage.output_tokens > 0, r.usage
    return run


def anthropic_stream(model):
    def run():
        with ant.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert text.startswith("Hello"), text
        assert final.stop_reason == "end_turn", final.stop_reason
    return run


def anthropic_tools(model, stream):
    def run():
        kwargs = dict(model=model, max_tokens=64, tools=TOOLS_ANTHROPIC,
                      messages=[{"role": "user", "content": "weather in Paris?"}])
        if stream:
            with ant.messages.stream(**kwargs) as s:
                message = s.get_final_message()
        else:
            message = ant.messages.create(**kwargs)
        uses = [b for b in message.content if b.type == "tool_use"]
        assert uses and uses[0].name == "get_weather", message
        assert uses[0].input == {"city": "Paris"}, uses[0].input
        assert message.stop_reason == "tool_use", message.stop_reason
    return run


def anthropic_error():
    try:
        ant.messages.create(model="groq/llama-3.1-8b-instant", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    except anthropic.BadRequestError as e:
        assert e.status_code == 400
        return
    raise AssertionError("expected a 400")


from google import genai
from google.genai import types as genai_types

gem = genai.Client(api_key="sdk-client-key",
                   http_options=genai_types.HttpOptions(base_url=f"{BASE}/genai"))


def genai_generate(model):
    def run():
        reply = gem.models.generate_content(model=model, contents="Say hello",
                                            config=genai_types.GenerateContentConfig(max_output_tokens=32))
        assert reply.text and "Hello" in reply.text, reply
        assert reply.usage_metadata.prompt_token_count > 0, reply.usage_metadata
        assert reply.candidates[0].finish_reason == genai_types.FinishReason.STOP, reply.candidates[0]
    return run


def genai_stream(model):
    def run():
        text = "".join(chunk.text or "" for chunk in gem.models.generate_content_stream(model=model, contents="Say hello"))
        assert text.startswith("Hello from the asbru"), text
    return run


def genai_tools(model):
    def run():
        tool = genai_types.Tool(function_declarations=[genai_types.FunctionDeclaration(
            name="get_weather", description="Weather for a city",
            parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}})])
        config = genai_types.GenerateContentConfig(
            tools=[tool], automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True))
        reply = gem.models.generate_content(model=model, contents="weather in Paris?", config=config)
        calls = reply.function_calls
        assert calls and calls[0].name == "get_weather" and calls[0].args == {"city": "Paris"}, reply
    return run


def genai_embed():
    reply = gem.models.embed_content(model="text-embedding-004", contents=["one", "two"])
    assert len(reply.embeddings) == 2 and reply.embeddings[0].values == [0.0125, -0.25, 0.5], reply


def openai_retrieve_model():
    model = oai.models.retrieve("openai/mock-gpt")
    assert model.id == "openai/mock-gpt", model
    try:
        oai.models.retrieve("openai/no-such-model")
    except openai.NotFoundError:
        return
    raise AssertionError("expected a 404")


def genai_count_tokens():
    reply = gem.models.count_tokens(model="gemini-2.0-flash", contents="hi")
    assert reply.total_tokens == 42, reply


def genai_list_models():
    names = [m.name for m in gem.models.list()]
    assert "models/gemini-2.0-flash" in names, names


def genai_error():
    try:
        gem.models.generate_content(model="groq/llama-3.1-8b-instant", contents="hi")
    except genai.errors.ClientError as e:
        assert e.code == 400, e
        return
    raise AssertionError("expected a 400")


for model in ["gemini-2.0-flash", "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"]:
    check(f"google-genai generate {model}", genai_generate(model))
    check(f"google-genai stream {model}", genai_stream(model))
    check(f"google-genai tools {model}", genai_tools(model))
check("google-genai embed gemini", genai_embed)
check("google-genai count tokens gemini", genai_count_tokens)
check("google-genai list models", genai_list_models)
check("openai sdk models.retrieve", openai_retrieve_model)
check("google-genai error shape", genai_error)

for model in ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"]:
    check(f"openai sdk chat {model}", openai_chat(model))
    check(f"openai sdk stream {model}", openai_stream(model))
    check(f"openai sdk tools {model}", openai_tools(model, stream=False))
    check(f"openai sdk tools stream {model}", openai_tools(model, stream=True))
for model in ["claude-3-5-haiku", "openai/gpt-4o-mini"]:
    check(f"anthropic sdk message {model}", anthropic_message(model))
    check(f"anthropic sdk stream {model}", anthropic_stream(model))
    check(f"anthropic sdk tools {model}", anthropic_tools(model, stream=False))
    check(f"anthropic sdk tools stream {model}", anthropic_tools(model, stream=True))
check("anthropic sdk error shape", anthropic_error)

TOOLS_RESPONSES = [{"type": "function", "name": "get_weather", "description": "Weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def responses_create(model):
    def run():
        r = oai.responses.create(model=model, instructions="Be brief.", input="hi", max_output_tokens=64,
                                 store=False)
        assert r.status == "completed", r
        assert r.output_text.startswith("Hello"), r.output_text
        assert r.usage.output_tokens > 0 and r.usage.input_tokens > 0, r.usage
    return run


def responses_stream(model):
    def run():
        text, kinds, final = "", [], None
        for event in oai.responses.create(model=model, input="hi", stream=True, store=False):
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.completed":
                final = event.response
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
        assert text.startswith("Hello"), text
        assert final.output_text == text, (final.output_text, text)
        assert final.usage.output_tokens > 0, final.usage
        # The SDK's stream helper folds the same events into the final response.
        with oai.responses.stream(model=model, input="hi", store=False) as helper:
            done = helper.get_final_response()
        assert done.output_text.startswith("Hello"), done
    return run


def responses_tools(model):
    def run():
        r = oai.responses.create(model=model, input="weather in Paris?", tools=TOOLS_RESPONSES, store=False)
        calls = [item for item in r.output if item.type == "function_call"]
        assert calls and calls[0].name == "get_weather", r.output
        assert json.loads(calls[0].arguments) == {"city": "Paris"}, calls[0].arguments
        follow = oai.responses.create(model=model, store=False, tools=TOOLS_RESPONSES, input=[
            {"role": "user", "content": "weather in Paris?"},
            {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather",
             "arguments": calls[0].arguments},
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}])
        assert follow.status == "completed", follow
        args = ""
        with oai.responses.stream(model=model, input="weather in Paris?", tools=TOOLS_RESPONSES, store=False) as s:
            for event in s:
                if event.type == "response.function_call_arguments.delta":
                    args += event.delta
        assert json.loads(args) == {"city": "Paris"}, args
    return run


def responses_stored():
    created = oai.responses.create(model="openai/gpt-4o-mini", input="hi")
    read = oai.responses.retrieve(created.id)
    assert read.id == created.id and read.output_text.startswith("Hello"), read
    follow = oai.responses.create(model="openai/gpt-4o-mini", input="and then?", previous_response_id=created.id)
    assert follow.status == "completed", follow
    oai.responses.delete(created.id)
    try:
        oai.responses.retrieve(created.id)
    except openai.NotFoundError:
        pass
    else:
        raise AssertionError("expected a 404 after delete")


def responses_refused():
    try:
        oai.responses.create(model="anthropic/claude-3-5-haiku", input="hi", previous_response_id="resp_x")
    except openai.BadRequestError as e:
        assert "previous_response_id" in e.message, e.message
        return
    raise AssertionError("expected a 400")


def text_completion(model):
    def run():
        r = oai.completions.create(model=model, prompt="Say hello", max_tokens=16)
        assert r.object == "text_completion" and r.choices[0].text.startswith("Hello"), r
        text = "".join(c.choices[0].text for c in oai.completions.create(model=model, prompt="Say hello",
                                                                         max_tokens=16, stream=True) if c.choices)
        assert text.startswith("Hello"), text
    return run


def langchain_responses(model):
    def run():
        from langchain_openai import ChatOpenAI
        llm = ChatOpenAI(model=model, base_url=f"{BASE}/v1", api_key="not-needed", use_responses_api=True,
                         max_retries=0)
        reply = llm.invoke("hi")
        assert reply.text.startswith("Hello"), reply
        streamed = "".join(chunk.text for chunk in llm.stream("hi"))
        assert streamed.startswith("Hello"), streamed
        call = llm.bind_tools([TOOLS_OPENAI[0]]).invoke("weather in Paris?").tool_calls[0]
        assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"}, call
    return run


for model in ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku", "gemini/gemini-2.0-flash"]:
    check(f"openai sdk responses {model}", responses_create(model))
    check(f"openai sdk responses stream {model}", responses_stream(model))
    check(f"openai sdk responses tools {model}", responses_tools(model))
    check(f"langchain-openai responses {model}", langchain_responses(model))
check("openai sdk responses retrieve/previous/delete", responses_stored)
check("openai sdk responses refusal", responses_refused)
for model in ["openai/gpt-3.5-turbo-instruct", "anthropic/claude-3-5-haiku"]:
    check(f"openai sdk completions {model}", text_completion(model))

import boto3  # noqa: E402
from botocore.config import Config as BotoConfig  # noqa: E402

CLAUDE_ON_BEDROCK = "anthropic.claude-3-haiku-20240307-v1:0"
TOOLS_CONVERSE = {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather",
                                          "inputSchema": {"json": {"type": "object",
                                                                   "properties": {"city": {"type": "string"}}}}}}]}
brt = boto3.client("bedrock-runtime", endpoint_url=f"{BASE}/bedrock", region_name="us-east-1",
                   aws_access_key_id="AKIDCLIENT", aws_secret_access_key="client-secret",
                   config=BotoConfig(retries={"max_attempts": 1}))


def boto_converse(model):
    def run():
        r = brt.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "hi"}]}],
                         inferenceConfig={"maxTokens": 64})
        assert r["output"]["message"]["content"][0]["text"].startswith("Hello"), r
        assert r["stopReason"] == "end_turn", r
        assert r["usage"]["totalTokens"] > 0, r["usage"]
    return run


def boto_converse_stream(model):
    def run():
        r = brt.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": "hi"}]}])
        text, stop, usage = "", None, None
        for event in r["stream"]:
            if "contentBlockDelta" in event:
                text += event["contentBlockDelta"]["delta"].get("text", "")
            if "messageStop" in event:
                stop = event["messageStop"]["stopReason"]
            if "metadata" in event:
                usage = event["metadata"]["usage"]
        assert text.startswith("Hello"), text
        assert stop == "end_turn" and usage and usage["outputTokens"] > 0, (stop, usage)
    return run


def boto_converse_tools(model):
    def run():
        r = brt.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "weather in Paris?"}]}],
                         toolConfig=TOOLS_CONVERSE)
        assert r["stopReason"] == "tool_use", r
        call = next(b["toolUse"] for b in r["output"]["message"]["content"] if "toolUse" in b)
        assert call["name"] == "get_weather" and call["input"] == {"city": "Paris"}, call
    return run


def boto_error():
    # Bedrock's own refusal, relayed; and the gateway's, in AWS's shape.
    for model, messages in [(CLAUDE_ON_BEDROCK, []), ("openai/gpt-4o-mini", [{"role": "system", "content": []}])]:
        try:
            brt.converse(modelId=model, messages=messages)
        except brt.exceptions.ValidationException as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
            assert e.response["Error"]["Message"], e.response
            continue
        raise AssertionError(f"expected a ValidationException for {model}")


for model in [CLAUDE_ON_BEDROCK, "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"]:
    check(f"boto3 converse {model}", boto_converse(model))
    check(f"boto3 converse_stream {model}", boto_converse_stream(model))
    check(f"boto3 converse tools {model}", boto_converse_tools(model))
check("boto3 error shape", boto_error)
for model in [f"bedrock/{CLAUDE_ON_BEDROCK}", "cohere/command-r-plus"]:
    check(f"anthropic sdk message {model}", anthropic_message(model))
    check(f"anthropic sdk stream {model}", anthropic_stream(model))
    check(f"anthropic sdk tools stream {model}", anthropic_tools(model, stream=True))
    check(f"openai sdk chat {model}", openai_chat(model))
    check(f"openai sdk stream {model}", openai_stream(model))
    check(f"openai sdk tools {model}", openai_tools(model, stream=False))

import io  # noqa: E402


def openai_audio():
    audio = io.BytesIO(b"RIFF\x24\x00\x00\x00WAVEfmt mock audio")
    audio.name = "hello.wav"
    r = oai.audio.transcriptions.create(model="openai/whisper-1", file=audio)
    assert r.text.startswith("Hello"), r
    audio.seek(0)
    r = oai.audio.translations.create(model="openai/whisper-1", file=audio)
    assert r.text.startswith("Hello"), r
    speech = oai.audio.speech.create(model="openai/tts-1", voice="alloy", input="Hello")
    assert speech.content.startswith(b"ID3"), speech.content[:10]


def openai_images():
    r = oai.images.generate(model="openai/gpt-image-1", prompt="a cat", n=2)
    assert len(r.data) == 2 and r.data[0].b64_json, r
    assert r.usage.output_tokens > 0, r.usage


def openai_moderations():
    r = oai.moderations.create(model="openai/omni-moderation-latest", input=["hi", "there"])
    assert len(r.results) == 2 and r.results[0].flagged is False, r


def openai_files_and_batches():
    upload = io.BytesIO(b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n')
    upload.name = "batch.jsonl"
    f = oai.files.create(file=upload, purpose="batch")
    assert f.id.startswith("file-"), f
    assert oai.files.retrieve(f.id).id == f.id
    assert oai.files.content(f.id).read(), "content"
    assert any(x.id == f.id for x in oai.files.list().data)
    b = oai.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert oai.batches.retrieve(b.id).id == b.id
    assert oai.batches.cancel(b.id).status == "cancelling"
    assert oai.files.delete(f.id).deleted is True


check("openai sdk audio transcriptions, translations, speech", openai_audio)
check("openai sdk images.generate", openai_images)
check("openai sdk moderations.create", openai_moderations)
check("openai sdk files and batches", openai_files_and_batches)

# TLS: the gateway's HTTPS listener, with a certificate from a CA made for the run.
TLS_URL = os.environ.get("ASBRU_TLS_URL")
TLS_CA = os.environ.get("ASBRU_TLS_CA")
if TLS_URL and TLS_CA:
    import httpx

    secure = openai.OpenAI(base_url=f"{TLS_URL}/v1", api_key="not-needed", max_retries=0,
                           http_client=httpx.Client(verify=TLS_CA))

    def tls_chat():
        r = secure.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content.startswith("Hello"), r

    def tls_stream():
        text = ""
        for chunk in secure.chat.completions.create(model="openai/gpt-4o-mini", stream=True,
                                                    messages=[{"role": "user", "content": "hi"}]):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
        assert text.startswith("Hello"), text

    def tls_untrusted():
        # Without the test CA the certificate is not trusted, and the SDK refuses to talk.
        plain_trust = openai.OpenAI(base_url=f"{TLS_URL}/v1", api_key="not-needed", max_retries=0)
        try:
            plain_trust.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        except openai.APIConnectionError:
            return
        raise AssertionError("a certificate from an unknown CA was accepted")

    check("openai sdk over TLS (httpx verify=test CA): chat", tls_chat)
    check("openai sdk over TLS: stream", tls_stream)
    check("openai sdk over TLS: an untrusted certificate is refused", tls_untrusted)
else:
    failures.append("tls")
    print("FAIL tls: ASBRU_TLS_URL and ASBRU_TLS_CA are not set")

if failures:
    print(f"{len(failures)} SDK check(s) failed")
    sys.exit(1)
print("all SDK checks passed")
