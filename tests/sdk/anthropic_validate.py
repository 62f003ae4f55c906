#!/usr/bin/env python3
"""Strict validation of the router's Anthropic-format answers against the official `anthropic`
SDK's own models (pinned in tests/sdk/requirements.txt).

Why strictly: the SDK parses responses with `construct_type`, which never raises (a missing
required field only fails later in user code), so this runs `Model.model_validate(...)` on
each answer, and for streams checks every event against `RawMessageStreamEvent` and
`BetaRawMessageStreamEvent` (Claude Code uses the beta path) and that each `event:` line names
its data's `type` (the TypeScript SDK dispatches on it; without it Claude Code repeats every
call non-streamed). Keys the models do not declare (`usage.cost`) are listed, not failed.

Adapted from the research validator (notes/agents/validators/sdk_validate.py), Anthropic kinds only.

Usage: anthropic_validate.py KIND=FILE [KIND=FILE ...]
KIND: anthropic-message | anthropic-sse | anthropic-count-tokens | anthropic-error
Prints `OK <kind> <file>` or `FAIL ...` with the errors per file; exit 1 when any failed.
"""
from __future__ import annotations

import json
import sys

from strict_models import Report, extras, sse_events, strict, union_by_type


def anthropic_check_message(obj, label, rep):
    from anthropic.types import Message
    from anthropic.types.beta import BetaMessage

    strict(Message, obj, label + "(Message)", rep)
    strict(BetaMessage, obj, label + "(BetaMessage)", rep)


def anthropic_check_event(obj, label, rep, sse_name=None):
    from anthropic.types import RawMessageStreamEvent
    from anthropic.types.beta import BetaRawMessageStreamEvent

    t = obj.get("type") if isinstance(obj, dict) else None
    if t in ("ping",):
        rep.add(label, [] if sse_name in (None, "ping") else [f"event line {sse_name!r} != type 'ping'"], [])
        return
    if t == "error":
        ok = isinstance(obj.get("error"), dict) and {"type", "message"} <= set(obj["error"])
        rep.add(label, [] if ok else ["error event needs error.type and error.message"], [])
        return
    errs = []
    if sse_name is not None and sse_name != t:
        errs.append(f"SSE `event: {sse_name}` does not match data.type {t!r} "
                    "(the TS SDK used by Claude Code dispatches on the event line)")
    if sse_name is None and label.startswith("sse"):
        errs.append("missing `event:` line: Anthropic TS SDK ignores the event, Claude Code then "
                    "retries the request non-streamed")
    rep.add(label, errs, [])
    for name, table in (("", union_by_type(RawMessageStreamEvent)), ("Beta", union_by_type(BetaRawMessageStreamEvent))):
        if t not in table:
            rep.add(label, [f"unknown {name}RawMessageStreamEvent type {t!r}"], [])
        else:
            strict(table[t], obj, f"{label}[{name}{t}]", rep)



def run(kind: str, text: str, rep: Report):
    if kind == "anthropic-message":
        anthropic_check_message(json.loads(text), "message", rep)
    elif kind == "anthropic-sse":
        types = []
        for i, (name, data) in enumerate(sse_events(text)):
            ev = json.loads(data)
            types.append(ev.get("type"))
            anthropic_check_event(ev, f"sse#{i}", rep, sse_name=name)
        errs = []
        if not types or types[0] != "message_start":
            errs.append("first event is not message_start")
        if "message_stop" not in types and "error" not in types:
            errs.append("no message_stop")
        rep.add("sse-sequence", errs, [])
    elif kind == "anthropic-count-tokens":
        from anthropic.types import MessageTokensCount
        strict(MessageTokensCount, json.loads(text), "count_tokens", rep)
    elif kind == "anthropic-error":
        from anthropic.types import ErrorResponse
        strict(ErrorResponse, json.loads(text), "error", rep)
    else:
        raise SystemExit(f"unknown kind {kind}")


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    failed = False
    for arg in argv[1:]:
        kind, _, path = arg.partition("=")
        rep = Report()
        run(kind, open(path, encoding="utf-8").read(), rep)
        ok = not rep.errors
        failed |= not ok
        print(f"{'OK' if ok else 'FAIL'} {kind} {path}: {rep.checked} checks, {len(rep.errors)} errors, "
              f"{len(rep.extras)} undeclared keys")
        for e in rep.errors:
            print("  ERROR", e)
        for x in rep.extras[:20]:
            print("  extra", x)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
