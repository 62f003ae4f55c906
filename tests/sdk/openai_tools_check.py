#!/usr/bin/env python3
"""Client compatibility check: the official `openai` Python SDK with tools, routed to an
Anthropic Messages upstream (the router translates both ways).

Checks, each printing `ok <name>` (the first failure prints `FAIL <name>: ...` and exits 1):
  tools          tool call -> tool result -> final answer, parsed into the SDK's types
  tools-stream   the tool call streamed: arguments reassemble from the deltas
  json-schema    response_format json_schema (emulated with a forced tool) parses as JSON

Driven by `router/tests/sdk_compat.rs`. Arguments: base URL including /v1, key, model.
"""

from __future__ import annotations

import json
import sys

import openai


def fail(name: str, why: str) -> None:
    print(f"FAIL {name}: {why}")
    sys.exit(1)


def check(name: str, cond: bool, why: str) -> None:
    if not cond:
        fail(name, why)


def main() -> None:
    base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=tools)
    choice = first.choices[0]
    check("tools", choice.finish_reason == "tool_calls", repr(first))
    call = choice.message.tool_calls[0]
    check("tools", call.function.name == "get_weather", repr(call))
    check("tools", json.loads(call.function.arguments) == {"city": "Paris"}, repr(call))
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'})
    second = client.chat.completions.create(model=model, messages=messages, tools=tools)
    check("tools", second.choices[0].message.content == "It is sunny in Paris.", repr(second))
    check("tools", second.usage.prompt_tokens_details.cached_tokens == 200, repr(second.usage))
    print("ok tools")

    args, finish = "", None
    for chunk in client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather?"}], tools=tools, stream=True
    ):
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                args += tc.function.arguments or ""
            finish = c.finish_reason or finish
    check("tools-stream", json.loads(args) == {"city": "Paris"}, repr(args))
    check("tools-stream", finish == "tool_calls", repr(finish))
    print("ok tools-stream")

    out = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather as JSON"}],
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": {
            "type": "object", "properties": {"city": {"type": "string"}, "temperature_c": {"type": "integer"}},
            "required": ["city", "temperature_c"]}}},
    )
    check("json-schema", json.loads(out.choices[0].message.content) == {"city": "Paris", "temperature_c": 21}, repr(out))
    print("ok json-schema")


if __name__ == "__main__":
    main()
