#!/usr/bin/env python3
"""Client compatibility check: the official `anthropic` Python SDK, unmodified, against
Switchboard's `/v1/messages` ingress routed to an OpenAI-compatible upstream.

Checks, each printing `ok <name>` (the first failure prints `FAIL <name>: ...` and exits 1):
  message        messages.create: text block, stop_reason, usage parsed into the SDK's types
  stream         messages.stream: text deltas and the final message assembled by the SDK
  tools          a tool round trip: tool_use block -> tool_result -> final text
  tools-stream   the tool call streamed: the SDK assembles input_json_delta into `input`
  auth-error     a bad key raises anthropic.AuthenticationError with Anthropic's error shape
  not-found      an unknown model raises anthropic.NotFoundError
  count-tokens   messages.count_tokens parses into the SDK's MessageTokensCount (an estimate here)
  batches-404    an endpoint the router does not serve raises anthropic.NotFoundError, not a
                 parse error (Anthropic's error shape on every /v1/messages* path)

Driven by `router/tests/sdk_compat.rs`. Arguments: router root URL (without /v1), key, model.
Optional env `SWITCHBOARD_EXPECT_ANTHROPIC_VERSION`: fail unless the installed SDK is that version.
"""

from __future__ import annotations

import os
import sys

import anthropic


def fail(name: str, why: str) -> None:
    print(f"FAIL {name}: {why}")
    sys.exit(1)


def check(name: str, cond: bool, why: str) -> None:
    if not cond:
        fail(name, why)


def main() -> None:
    base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    want = os.environ.get("SWITCHBOARD_EXPECT_ANTHROPIC_VERSION")
    if want and anthropic.__version__ != want:
        fail("version", f"anthropic {anthropic.__version__} installed, {want} pinned")
    client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)

    msg = client.messages.create(
        model=model,
        max_tokens=256,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hi"}],
    )
    check("message", msg.type == "message" and msg.role == "assistant", repr(msg))
    check("message", msg.content[0].type == "text" and msg.content[0].text == "Hello there!", repr(msg))
    check("message", msg.stop_reason == "end_turn", repr(msg.stop_reason))
    check("message", msg.usage.input_tokens == 112 and msg.usage.cache_read_input_tokens == 200, repr(msg.usage))
    check("message", msg.usage.output_tokens == 20, repr(msg.usage))
    print("ok message")

    texts = []
    with client.messages.stream(
        model=model, max_tokens=256, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        for text in stream.text_stream:
            texts.append(text)
        final = stream.get_final_message()
    check("stream", "".join(texts) == "Hello there!", repr(texts))
    check("stream", final.content[0].text == "Hello there!", repr(final))
    check("stream", final.stop_reason == "end_turn", repr(final.stop_reason))
    check("stream", final.usage.output_tokens == 20, repr(final.usage))
    print("ok stream")

    tools = [{
        "name": "get_weather",
        "description": "Weather by city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.messages.create(model=model, max_tokens=256, tools=tools, messages=messages)
    check("tools", first.stop_reason == "tool_use", repr(first))
    calls = [b for b in first.content if b.type == "tool_use"]
    check("tools", len(calls) == 1 and calls[0].name == "get_weather", repr(first.content))
    check("tools", calls[0].input == {"city": "Paris"}, repr(calls[0].input))
    messages.append({"role": "assistant", "content": first.content})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": calls[0].id, "content": '{"sky": "sunny"}'}]})
    second = client.messages.create(model=model, max_tokens=256, tools=tools, messages=messages)
    check("tools", second.content[0].text == "It is sunny in Paris.", repr(second))
    print("ok tools")

    with client.messages.stream(
        model=model, max_tokens=256, tools=tools,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    calls = [b for b in final.content if b.type == "tool_use"]
    check("tools-stream", len(calls) == 1 and calls[0].input == {"city": "Paris"}, repr(final))
    check("tools-stream", final.stop_reason == "tool_use", repr(final.stop_reason))
    print("ok tools-stream")

    bad = anthropic.Anthropic(base_url=base, api_key="sk-sb-wrong-0000000000", max_retries=0)
    try:
        bad.messages.create(model=model, max_tokens=16, messages=[{"role": "user", "content": "Hi"}])
        fail("auth-error", "no exception")
    except anthropic.AuthenticationError as e:
        check("auth-error", e.status_code == 401, repr(e))
        check("auth-error", e.body["error"]["type"] == "authentication_error", repr(e.body))
    print("ok auth-error")

    try:
        client.messages.create(model="no/such-model", max_tokens=16, messages=[{"role": "user", "content": "Hi"}])
        fail("not-found", "no exception")
    except anthropic.NotFoundError as e:
        check("not-found", e.body["type"] == "error", repr(e.body))
    print("ok not-found")

    count = client.messages.with_raw_response.count_tokens(
        model=model, system="Be brief.", tools=tools,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    parsed = count.parse()
    check("count-tokens", isinstance(parsed, anthropic.types.MessageTokensCount), repr(parsed))
    check("count-tokens", 10 < parsed.input_tokens < 200, repr(parsed))
    check("count-tokens", count.headers.get("x-switchboard-token-count", "").startswith("estimate"),
          repr(dict(count.headers)))
    print("ok count-tokens")

    try:
        client.messages.batches.retrieve("msgbatch_nope")
        fail("batches-404", "no exception")
    except anthropic.NotFoundError as e:
        check("batches-404", e.body["type"] == "error" and e.body["error"]["type"] == "not_found_error",
              repr(e.body))
    print("ok batches-404")


if __name__ == "__main__":
    main()
