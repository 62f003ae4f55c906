#!/usr/bin/env python3
"""The official OpenRouter Python SDK, unmodified, against Switchboard's `/api/v1`.

The SDK validates every body it parses (pydantic, through its `unmarshal_json`): a chat
completion without `system_fingerprint`, a chunk without `finish_reason`, an error whose `code`
is not the HTTP status as an integer all raise `ResponseValidationError` instead of the result.
Checks: chat (non-streamed, with `usage.cost`), streamed chat with usage, and the typed errors
for a bad key (401), an unknown model (404) and a malformed request (400).

Usage: openrouter_check.py BASE_URL API_KEY MODEL   (BASE_URL like http://host/api/v1)
Driven by `tests/tests/responses_sdks.rs`. Prints `ok` lines; on a failure `FAIL ...`, exit 1.
"""

from __future__ import annotations

import sys
import traceback

import openrouter
from openrouter import OpenRouter, errors

MESSAGES = [{"role": "user", "content": "Say hello"}]


def check_chat(client: OpenRouter, model: str) -> str:
    res = client.chat.send(model=model, messages=MESSAGES)
    content = res.choices[0].message.content
    assert content, res
    assert res.usage.cost and res.usage.cost > 0, res.usage
    return f"{content!r} cost={res.usage.cost}"


def check_stream(client: OpenRouter, model: str) -> str:
    parts, usage = [], None
    with client.chat.send(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as events:
        for chunk in events:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            if chunk.usage:
                usage = chunk.usage
    assert parts, "no content chunks"
    assert usage is not None and usage.cost and usage.cost > 0, usage
    return f"{''.join(parts)!r} cost={usage.cost}"


def expect(error_type: type, status: int, call) -> None:
    try:
        call()
    except error_type as e:
        assert e.data.error.code == status, e.data
        assert e.data.error.message, e.data
    else:
        raise AssertionError(f"no {error_type.__name__}")


def check_errors(client: OpenRouter, model: str, base: str) -> str:
    with OpenRouter(api_key="sk-sb-not-a-valid-key-000000000", server_url=base) as bad:
        expect(errors.UnauthorizedResponseError, 401, lambda: bad.chat.send(model=model, messages=MESSAGES))
    expect(
        errors.NotFoundResponseError, 404,
        lambda: client.chat.send(model="no/such-model", messages=MESSAGES),
    )
    expect(
        errors.BadRequestResponseError, 400,
        lambda: client.chat.send(model=model, messages=[]),
    )
    return "401, 404 and 400 raise the SDK's typed errors"


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base, key, model = sys.argv[1:]
    print(f"openrouter {openrouter.VERSION if hasattr(openrouter, 'VERSION') else ''} against {base}")
    with OpenRouter(api_key=key, server_url=base) as client:
        for name, check in [
            ("chat", lambda: check_chat(client, model)),
            ("chat stream", lambda: check_stream(client, model)),
            ("errors", lambda: check_errors(client, model, base)),
        ]:
            try:
                detail = check()
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                print(f"FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr)
                return 1
            print(f"ok   {name}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
