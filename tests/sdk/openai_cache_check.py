#!/usr/bin/env python3
"""Response cache check with the official `openai` Python SDK: a complete answer fills the cache,
then the same request streamed is a cache hit replayed as a normal stream.

Checks, each printing `ok <name>` (the first failure prints `FAIL <name>: ...` and exits 1):
  fill          the first request is a miss (`X-Switchboard-Cache: miss`)
  stream-hit    the streamed request is a hit, parses chunk by chunk with the SDK, carries the
                same text, and ends with the usage chunk (no choices, `cost` 0)

Driven by `router/tests/response_cache.rs`. Arguments: base URL including /v1, key, model.
"""

from __future__ import annotations

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
    messages = [{"role": "user", "content": "Cache this answer, please."}]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    check("fill", raw.headers.get("x-switchboard-cache") == "miss", repr(raw.headers))
    first = raw.parse()
    text = first.choices[0].message.content
    print("ok fill")

    with client.chat.completions.with_streaming_response.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    ) as resp:
        check("stream-hit", resp.headers.get("x-switchboard-cache") == "hit", repr(resp.headers))
        chunks = list(resp.parse())
    check("stream-hit", len(chunks) >= 3, repr(chunks))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check("stream-hit", streamed == text, f"{streamed!r} != {text!r}")
    last = chunks[-1]
    check("stream-hit", last.choices == [] and last.usage is not None, repr(last))
    check("stream-hit", last.usage.model_extra.get("cost") == 0, repr(last.usage))
    check("stream-hit", chunks[-2].choices[0].finish_reason == "stop", repr(chunks[-2]))
    print("ok stream-hit")


if __name__ == "__main__":
    main()
