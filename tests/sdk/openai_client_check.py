#!/usr/bin/env python3
"""Client compatibility check: the official `openai` Python SDK, unmodified, against Switchboard.

Proves that an application written for OpenAI works by only changing `base_url` and `api_key`:
the SDK parses every router response (chat, streamed chat, embeddings in the SDK's default base64
encoding, the model list, errors) into its own types, Switchboard's additions (`provider`,
`usage.cost`, the final usage chunk) come through as extra fields, and errors raise the SDK's
typed exceptions with the OpenAI error envelope.

Expects the router serving `examples/quickstart.yaml` (built-in `mock` provider: chat replies
`echo: <last user message>`, embeddings are 8-dim unit vectors). Driven by
`tests/tests/openai_sdk.rs`; to run by hand against `make run`:

    python tests/sdk/openai_client_check.py http://127.0.0.1:8080/v1 sk-sb-quickstart-0123456789

Arguments (or env `SWITCHBOARD_BASE_URL`, `SWITCHBOARD_API_KEY`): base URL including `/v1`, key.
Optional env `SWITCHBOARD_EXPECT_OPENAI_VERSION`: fail unless the installed SDK is that version.

Prints one `ok` line per check; on the first failure prints `FAIL <check>: ...` and exits 1.

Request counts are deterministic, and the Rust test asserts them in the router's
`switchboard_requests_total` metric (keep both in sync; the last line prints them):
  chat 200: 3 (one plain, two streamed)   chat 401: 1 (bad key)   chat 404: 1 (unknown model)
  embeddings 200: 3                        models 200: 1
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from collections import Counter

try:
    import openai
except ImportError:
    sys.exit(
        f"FAIL setup: the `openai` package is not installed for {sys.executable}; "
        "run `make venv` (creates .venv from tests/sdk/requirements.txt)"
    )

CHAT_MODEL = "openai/gpt-4o-mini"
EMBED_MODEL = "openai/text-embedding-3-small"
PROMPT = "Hello from the official openai SDK"
# Quickstart prices of the mock models, USD per million tokens (examples/quickstart.yaml).
CHAT_PRICE_IN, CHAT_PRICE_OUT, EMBED_PRICE_IN = 0.15, 0.60, 0.02

# Requests made, by (endpoint, HTTP status); printed at the end for the Rust side to compare.
calls: Counter[tuple[str, int]] = Counter()
# Results shared between checks (the streamed text is compared with the plain one).
seen: dict[str, object] = {}


def extra(model: object) -> dict:
    """A response object as a plain dict, including fields the SDK's types do not declare."""
    return model.to_dict()  # type: ignore[attr-defined]


def assert_cost(usage: dict, price_in: float, price_out: float) -> float:
    """`usage.cost` is present, positive, and the reported tokens at the quickstart prices."""
    assert "cost" in usage, f"usage has no `cost`: {usage}"
    cost = usage["cost"]
    expected = (
        usage["prompt_tokens"] * price_in + usage.get("completion_tokens", 0) * price_out
    ) / 1e6
    assert cost > 0, f"usage.cost must be > 0, got {cost}"
    assert math.isclose(cost, expected, rel_tol=1e-9), f"usage.cost {cost} != {expected}"
    return cost


def check_chat(client: openai.OpenAI) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": PROMPT}]
    )
    calls["chat", 200] += 1
    gen_id = raw.headers.get("x-generation-id", "")
    assert gen_id.startswith("gen-"), f"X-Generation-Id header missing or odd: {gen_id!r}"
    resp = raw.parse()
    choice = resp.choices[0]
    assert choice.message.content == f"echo: {PROMPT}", f"content: {choice.message.content!r}"
    assert choice.finish_reason == "stop", f"finish_reason: {choice.finish_reason!r}"
    u = resp.usage
    assert u is not None and u.prompt_tokens > 0 and u.completion_tokens > 0, f"usage: {u}"
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, f"usage: {u}"
    body = extra(resp)
    assert body.get("provider") == "mock", f"provider: {body.get('provider')!r}"
    assert resp.model_extra and resp.model_extra.get("provider") == "mock", "provider not extra"
    cost = assert_cost(body["usage"], CHAT_PRICE_IN, CHAT_PRICE_OUT)
    seen.update(text=choice.message.content, usage=body["usage"])
    return f"{choice.message.content!r}, {u.prompt_tokens}+{u.completion_tokens} tokens, ${cost}"


def stream_chat(client: openai.OpenAI, **kwargs: object) -> tuple[str, list]:
    """Streams the chat request and checks the chunk sequence; returns (text, chunks)."""
    stream = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True, **kwargs
    )
    chunks = list(stream)
    calls["chat", 200] += 1
    assert len(chunks) >= 3, f"only {len(chunks)} chunks"
    without_choices = [i for i, c in enumerate(chunks) if not c.choices]
    assert without_choices == [len(chunks) - 1], (
        f"expected exactly one chunk with empty `choices`, the last; found at {without_choices} "
        f"of {len(chunks)}"
    )
    assert all(c.usage is None for c in chunks[:-1]), "usage on a content chunk"
    finishes = [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason]
    assert finishes == ["stop"], f"finish reasons: {finishes}"
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    last = extra(chunks[-1])
    assert last.get("provider") == "mock", f"provider on the usage chunk: {last.get('provider')!r}"
    usage = last.get("usage")
    assert usage and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0, usage
    assert_cost(usage, CHAT_PRICE_IN, CHAT_PRICE_OUT)
    # Same request, same answer: streaming must not change tokens or price.
    assert usage == seen["usage"], f"streamed usage {usage} != non-streamed {seen['usage']}"
    return text, chunks


def check_stream_with_usage(client: openai.OpenAI) -> str:
    text, chunks = stream_chat(client, stream_options={"include_usage": True})
    assert text == seen["text"], f"streamed {text!r} != non-streamed {seen['text']!r}"
    return f"{len(chunks)} chunks reassemble to the same text; one final usage chunk"


def check_stream_without_options(client: openai.OpenAI) -> str:
    text, chunks = stream_chat(client)
    assert text == seen["text"], f"streamed {text!r} != non-streamed {seen['text']!r}"
    return f"{len(chunks)} chunks; usage chunk sent although not asked for"


def check_embeddings(client: openai.OpenAI) -> str:
    # The SDK asks for `encoding_format=base64` by default and decodes the vectors itself.
    resp = client.embeddings.create(model=EMBED_MODEL, input=["alpha", "beta"])
    calls["embeddings", 200] += 1
    vectors = [d.embedding for d in resp.data]
    assert [d.index for d in resp.data] == [0, 1], f"indexes: {[d.index for d in resp.data]}"
    assert [len(v) for v in vectors] == [8, 8], f"lengths: {[len(v) for v in vectors]}"
    for v in vectors:
        norm = math.sqrt(sum(x * x for x in v))
        assert abs(norm - 1) <= 1e-5, f"norm {norm} is not 1"
    assert vectors[0] != vectors[1], "different inputs gave the same vector"
    body = extra(resp)
    assert body.get("provider") == "mock", f"provider: {body.get('provider')!r}"
    assert resp.usage.prompt_tokens > 0, f"usage: {resp.usage}"
    assert_cost(body["usage"], EMBED_PRICE_IN, 0)

    again = client.embeddings.create(model=EMBED_MODEL, input="alpha")
    calls["embeddings", 200] += 1
    assert again.data[0].embedding == vectors[0], "same input, different vector (base64)"

    floats = client.embeddings.create(model=EMBED_MODEL, input="alpha", encoding_format="float")
    calls["embeddings", 200] += 1
    assert all(
        abs(a - b) <= 1e-6 for a, b in zip(floats.data[0].embedding, vectors[0], strict=True)
    ), "float encoding disagrees with base64 encoding"
    return "2 unit vectors of 8 dims; deterministic; base64 and float encodings agree"


def check_models(client: openai.OpenAI) -> str:
    models = client.models.list().data
    calls["models", 200] += 1
    ids = {m.id for m in models}
    assert {CHAT_MODEL, EMBED_MODEL} <= ids, f"model ids: {sorted(ids)}"
    chat = extra(next(m for m in models if m.id == CHAT_MODEL))
    assert chat.get("context_length") and chat.get("pricing"), f"OpenRouter fields lost: {chat}"
    return f"{sorted(ids)}"


def expect_error(exc_type: type, status: int, err_type: str, code: str, call) -> None:
    """`call()` raises `exc_type` with `status` and the error envelope of `err_type`: OpenRouter's
    `code` (the HTTP status, an int; the SDK hands it over as a string), Switchboard's reason
    `code` in `metadata.error_code`."""
    try:
        call()
    except exc_type as e:
        assert e.status_code == status, f"status {e.status_code}, expected {status}"
        envelope = e.response.json()
        assert set(envelope) == {"error"}, f"not an OpenAI envelope: {envelope}"
        error = envelope["error"]
        assert {"message", "type", "code", "param"} <= set(error), f"envelope fields: {error}"
        assert error["type"] == err_type and error["code"] == status, f"error: {error}"
        assert error["metadata"]["error_code"] == code, f"error: {error}"
        # The SDK unwraps `error` into its exception's fields.
        assert isinstance(e.body, dict) and e.body["type"] == err_type, f"e.body: {e.body!r}"
        assert e.type == err_type and e.code == str(status) and e.message, (e.type, e.code)
    else:
        raise AssertionError(f"no {exc_type.__name__} raised")


def check_errors(client: openai.OpenAI) -> str:
    bad = client.with_options(api_key="sk-sb-not-a-valid-key-0000000000")
    messages = [{"role": "user", "content": PROMPT}]
    expect_error(
        openai.AuthenticationError, 401, "authentication_error", "invalid_api_key",
        lambda: bad.chat.completions.create(model=CHAT_MODEL, messages=messages),
    )
    calls["chat", 401] += 1
    expect_error(
        openai.NotFoundError, 404, "not_found_error", "model_not_found",
        lambda: client.chat.completions.create(model="openai/no-such-model", messages=messages),
    )
    calls["chat", 404] += 1
    return "bad key -> AuthenticationError 401; unknown model -> NotFoundError 404"


CHECKS = [
    ("chat", check_chat),
    ("chat stream (include_usage)", check_stream_with_usage),
    ("chat stream (no stream_options)", check_stream_without_options),
    ("embeddings", check_embeddings),
    ("models", check_models),
    ("errors", check_errors),
]


def main() -> int:
    args = sys.argv[1:]
    base_url = args[0] if args else os.environ.get("SWITCHBOARD_BASE_URL")
    api_key = args[1] if len(args) > 1 else os.environ.get("SWITCHBOARD_API_KEY")
    if not base_url or not api_key:
        print("usage: openai_client_check.py BASE_URL API_KEY", file=sys.stderr)
        return 2
    print(f"openai {openai.__version__} against {base_url}")
    expected = os.environ.get("SWITCHBOARD_EXPECT_OPENAI_VERSION")
    if expected and openai.__version__ != expected:
        print(
            f"FAIL setup: openai {openai.__version__} is installed, tests/sdk/requirements.txt "
            f"pins {expected}; rebuild the venv (`make venv`)",
            file=sys.stderr,
        )
        return 1
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    for name, check in CHECKS:
        try:
            detail = check(client)
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            traceback.print_exc()
            print(f"FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"ok   {name}: {detail}")
    print("CALLS " + " ".join(f"{ep}:{status}={n}" for (ep, status), n in sorted(calls.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
