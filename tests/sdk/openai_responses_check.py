#!/usr/bin/env python3
"""The official `openai` Python SDK's Responses API, unmodified, against Switchboard.

Checks, each on the router's `/v1/responses`:
  create    `responses.create` with instructions; the text, `usage.cost`, the stored response
  stream    `responses.stream`: the typed events in order, the final response
  parse     `responses.parse` with a pydantic model as `text_format`
  tools     a function-tool loop continued with `previous_response_id`
  state     `responses.retrieve`, `responses.input_items.list`, `responses.delete`, then 404

Driven by `tests/tests/responses_sdks.rs` against a router whose upstream is the mock in
`tests/src/upstreams` (it answers "Hello from the mock upstream.", calls the first tool when
asked about the weather, and says "Done: the command printed hi." once a tool result is in).

Usage: openai_responses_check.py BASE_URL API_KEY MODEL
Prints one `ok` line per check; on the first failure prints `FAIL <check>: ...` and exits 1.
"""

from __future__ import annotations

import json
import sys
import traceback

import openai
import pydantic

PLAIN_TEXT = "Hello from the mock upstream."
FINAL_TEXT = "Done: the command printed hi."
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


class Weather(pydantic.BaseModel):
    city: str
    temperature_c: float


def cost_of(response) -> float:
    usage = response.usage.to_dict()
    assert usage["cost"] > 0, f"usage.cost missing or zero: {usage}"
    for field in ("cached_tokens", "cache_write_tokens"):
        assert field in usage["input_tokens_details"], usage
    assert "reasoning_tokens" in usage["output_tokens_details"], usage
    return usage["cost"]


def check_create(client: openai.OpenAI, model: str, state: dict) -> str:
    r = client.responses.create(model=model, instructions="Be brief.", input="Say hello")
    assert r.object == "response" and r.status == "completed", r
    assert r.output_text == PLAIN_TEXT, r.output_text
    state["first"] = r.id
    return f"{r.id} cost={cost_of(r)}"


def check_stream(client: openai.OpenAI, model: str, state: dict) -> str:
    with client.responses.stream(model=model, input="Say hello") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds, kinds
    assert final.output_text == PLAIN_TEXT, final.output_text
    return f"{len(kinds)} events, cost={cost_of(final)}"


def check_parse(client: openai.OpenAI, model: str, state: dict) -> str:
    r = client.responses.parse(
        model=model, input="Give me the weather in Paris as JSON", text_format=Weather
    )
    parsed = r.output_parsed
    assert isinstance(parsed, Weather), f"output_parsed: {parsed!r} ({r.output_text!r})"
    return f"{parsed!r}"


def check_tools(client: openai.OpenAI, model: str, state: dict) -> str:
    first = client.responses.create(
        model=model, input="What's the weather in Paris?", tools=[WEATHER_TOOL]
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments)["city"], call
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21C, sunny"}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == FINAL_TEXT, second.output_text
    assert second.previous_response_id == first.id or second.previous_response_id is None
    state["loop"] = second.id
    return f"{first.id} -> {second.id}"


def check_state(client: openai.OpenAI, model: str, state: dict) -> str:
    rid = state["loop"]
    got = client.responses.retrieve(rid)
    assert got.id == rid and got.output_text == FINAL_TEXT, got
    items = client.responses.input_items.list(rid, order="asc")
    kinds = [item.type for item in items.data]
    assert kinds[0] == "message" and "function_call" in kinds, kinds
    assert kinds[-1] == "function_call_output", kinds
    deleted = client.responses.delete(rid)
    try:
        client.responses.retrieve(rid)
    except openai.NotFoundError as e:
        assert e.status_code == 404
    else:
        raise AssertionError("a deleted response is still there")
    return f"{len(kinds)} input items; deleted {deleted!r}"


CHECKS = [
    ("create", check_create),
    ("stream", check_stream),
    ("parse", check_parse),
    ("tools", check_tools),
    ("state", check_state),
]


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, api_key, model = sys.argv[1:]
    print(f"openai {openai.__version__} against {base_url}, model {model}")
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    state: dict = {}
    for name, check in CHECKS:
        try:
            detail = check(client, model, state)
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            traceback.print_exc()
            print(f"FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"ok   {name}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
