#!/usr/bin/env python3
"""Validate gateway responses against the official SDKs' own models, strictly.

Copied from the agent-compatibility research (notes/agents/validators) into the test suite, with
the kinds Switchboard also emits: legacy completions, stored-response item lists, and OpenAI's
reading of an error body; and a batch mode so one interpreter validates many files. Driven by
`tests/tests/sdk_schemas.rs` with the SDKs pinned in tests/sdk/requirements.txt.

Why "strictly": the openai and anthropic SDKs parse responses with `construct_type`, which
never raises (a missing required field just becomes a missing attribute that fails later in
user code). So this validator runs `Model.model_validate(...)` (required fields, types,
literals) and additionally lists keys the model does not declare (the SDKs keep them as
extras for openai/anthropic and silently drop them for openrouter - informational, not an
error). The OpenRouter SDK *does* validate (pydantic via `unmarshal_json`) and raises
`ResponseValidationError` - for it we call exactly the SDK's own unmarshal path.

Usage:
  sdk_validate.py KIND FILE [--strict-extra]
  sdk_validate.py KIND -            (read stdin)
  sdk_validate.py --batch LIST.json (a JSON list of [KIND, FILE]; one line per file, exit 1 if any fails)
KIND:
  openai-chat            one chat.completion JSON            (openai ChatCompletion)
  openai-chat-chunk      one chat.completion.chunk JSON      (openai ChatCompletionChunk)
  openai-chat-sse        an SSE body of chunks (data: ... / [DONE])
  openai-response        one Responses API `response` object (openai Response)
  openai-response-event  one Responses stream event JSON     (by its `type`)
  openai-responses-sse   an SSE body of Responses events
  openai-response-items  a stored response's input items list  (openai ResponseItemList)
  openai-completion      one legacy text_completion JSON     (openai Completion)
  openai-completion-sse  an SSE body of text_completion chunks (finish_reason null allowed mid-stream,
                         as OpenAI streams it; the SDK builds each chunk with construct_type)
  openai-error           an error body as the openai SDK reads it: `error` (or the body) into
                         ErrorObject after the SDK's own `str(code)`
  anthropic-message      one Messages API message JSON       (anthropic Message + BetaMessage)
  anthropic-event        one Messages stream event JSON
  anthropic-sse          an SSE body of Messages events (checks `event:` lines match `type`)
  openrouter-chat        one chat completion JSON  (openrouter ChatResult via SDK unmarshal)
  openrouter-chat-chunk  one chunk JSON            (openrouter ChatStreamingResponse.data)
  openrouter-chat-sse    an SSE body of chunks
  openrouter-error:STATUS an error body for HTTP STATUS, as the SDK maps it to a typed error
                         (400,401,402,403,404,408,413,422,429,500,502,503,524 have models)
  anthropic-count-tokens a /v1/messages/count_tokens answer ({"input_tokens": N})
  anthropic-error        an error body on /v1/messages* ({"type":"error","error":{type,message}})
  capture                a capture_server *-response.json: picks the kind from its path/body
FILE may also be a capture_server response JSON ({"body":...} or {"sse_raw":...}).
Exit status: 0 when everything validates (extras alone do not fail unless --strict-extra).
"""
from __future__ import annotations

import json
import sys

import pydantic
from strict_models import Report, extras, fmt_errors, sse_events, strict, union_by_type

# ----------------------------------------------------------------------------- openai


def openai_models():
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent

    return ChatCompletion, ChatCompletionChunk, Response, union_by_type(ResponseStreamEvent)


def check_openai_response_event(obj, label, rep, table):
    t = obj.get("type") if isinstance(obj, dict) else None
    if t not in table:
        rep.add(label, [f"unknown Responses stream event type {t!r}"], [])
        return
    strict(table[t], obj, f"{label}[{t}]", rep)


# ----------------------------------------------------------------------------- anthropic


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


# ----------------------------------------------------------------------------- openrouter


def openrouter_unmarshal(obj, typ, label, rep):
    """Exactly the SDK's parsing path (openrouter.utils.unmarshal_json_response)."""
    from openrouter.utils.serializers import unmarshal_json

    raw = json.dumps(obj)
    try:
        inst = unmarshal_json(raw, typ)
    except pydantic.ValidationError as e:
        rep.add(label, fmt_errors(e), [])
        return None
    except Exception as e:  # noqa: BLE001
        rep.add(label, [f"{type(e).__name__}: {e}"], [])
        return None
    rep.add(label, [], extras(inst, obj))
    return inst


def openrouter_chat(obj, label, rep):
    from openrouter import components

    openrouter_unmarshal(obj, components.ChatResult, label + "(ChatResult)", rep)


def openrouter_chunk(obj, label, rep):
    from openrouter import components

    # the SDK decodes each SSE event as ChatStreamingResponse {"data": <chunk>}
    openrouter_unmarshal(obj, components.ChatStreamChunk, label + "(ChatStreamChunk)", rep)


# ----------------------------------------------------------------------------- driver


def load(path: str):
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None, text
    if isinstance(obj, dict) and "sse_raw" in obj and "seq" in obj:
        return None, obj["sse_raw"]
    if isinstance(obj, dict) and "body" in obj and "seq" in obj and "status" in obj:
        return obj["body"], None
    return obj, None


def run(kind: str, obj, text, rep: Report):
    if kind == "openai-chat":
        strict(openai_models()[0], obj, "chat.completion", rep)
    elif kind == "openai-chat-chunk":
        strict(openai_models()[1], obj, "chunk", rep)
    elif kind == "openai-chat-sse":
        cc = openai_models()[1]
        done = False
        for i, (_, data) in enumerate(sse_events(text)):
            if data == "[DONE]":
                done = True
                continue
            strict(cc, json.loads(data), f"sse#{i}", rep)
        if not done:
            rep.add("sse", ["stream did not end with data: [DONE]"], [])
    elif kind == "openai-response":
        strict(openai_models()[2], obj, "response", rep)
    elif kind == "openai-response-event":
        check_openai_response_event(obj, "event", rep, openai_models()[3])
    elif kind == "openai-responses-sse":
        table = openai_models()[3]
        seqs, types = [], []
        for i, (name, data) in enumerate(sse_events(text)):
            ev = json.loads(data)
            types.append(ev.get("type"))
            seqs.append(ev.get("sequence_number"))
            if name is not None and name != ev.get("type"):
                rep.add(f"sse#{i}", [f"event line {name!r} != type {ev.get('type')!r}"], [])
            check_openai_response_event(ev, f"sse#{i}", rep, table)
        errs = []
        if seqs != list(range(len(seqs))):
            errs.append(f"sequence_number not 0..n-1: {seqs[:12]}")
        term = {"response.completed", "response.failed", "response.incomplete", "error"}
        if not types or types[-1] not in term:
            errs.append(f"last event {types[-1] if types else None!r} is not terminal (Codex retries: "
                        "'stream closed before response.completed')")
        if types and types[0] != "response.created":
            errs.append("first event is not response.created")
        added = types.count("response.output_item.added")
        done = types.count("response.output_item.done")
        if added != done:
            errs.append(f"output_item.added x{added} != output_item.done x{done} (Codex only acts on .done)")
        rep.add("sse-sequence", errs, [])
    elif kind == "openai-response-items":
        from openai.types.responses import ResponseItemList
        strict(ResponseItemList, obj, "input_items", rep)
    elif kind == "openai-completion":
        from openai.types import Completion
        strict(Completion, obj, "text_completion", rep)
    elif kind == "openai-completion-sse":
        from openai.types import Completion
        done = False
        for i, (_, data) in enumerate(sse_events(text)):
            if data == "[DONE]":
                done = True
                continue
            chunk = json.loads(data)
            try:
                Completion.model_validate(chunk)
                rep.add(f"sse#{i}", [], [])
            except pydantic.ValidationError as e:
                errs = [x for x in fmt_errors(e) if not (".finish_reason:" in x and "input=null" in x)]
                rep.add(f"sse#{i}", errs, [])
        if not done:
            rep.add("sse", ["stream did not end with data: [DONE]"], [])
    elif kind == "openai-error":
        from openai.types.shared import ErrorObject
        error = obj.get("error", obj) if isinstance(obj, dict) else obj
        if isinstance(error, dict) and error.get("code") is not None:
            # openai._exceptions.APIError: `self.code = str(code) if code is not None else None`
            error = {**error, "code": str(error["code"])}
        strict(ErrorObject, error, "error", rep)
    elif kind == "anthropic-message":
        anthropic_check_message(obj, "message", rep)
    elif kind == "anthropic-event":
        anthropic_check_event(obj, "event", rep)
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
    elif kind == "openrouter-chat":
        openrouter_chat(obj, "chat", rep)
    elif kind == "openrouter-chat-chunk":
        openrouter_chunk(obj, "chunk", rep)
    elif kind == "openrouter-chat-sse":
        done = False
        for i, (_, data) in enumerate(sse_events(text)):
            if data == "[DONE]":
                done = True
                continue
            openrouter_chunk(json.loads(data), f"sse#{i}", rep)
        if not done:
            rep.add("sse", ["stream did not end with data: [DONE] (the SDK's sentinel)"], [])
    elif kind.startswith("openrouter-error:"):
        status = kind.split(":", 1)[1]
        from openrouter import errors as orerr
        names = {"400": "BadRequest", "401": "Unauthorized", "402": "PaymentRequired", "403": "Forbidden",
                 "404": "NotFound", "408": "RequestTimeout", "413": "PayloadTooLarge",
                 "422": "UnprocessableEntity", "429": "TooManyRequests", "500": "InternalServer",
                 "502": "BadGateway", "503": "ServiceUnavailable", "524": "EdgeNetworkTimeout"}
        if status not in names:
            rep.add("error", [f"the SDK has no typed error for {status}: it raises OpenRouterDefaultError "
                              "with the raw body (no validation)"], [])
        else:
            typ = getattr(orerr, names[status] + "ResponseErrorData")
            inst = openrouter_unmarshal(obj, typ, f"error({names[status]})", rep)
            if inst is not None and str(inst.error.code) != status:
                rep.add("error", [f"error.code {inst.error.code} != HTTP status {status}"], [])
    elif kind == "anthropic-count-tokens":
        from anthropic.types import MessageTokensCount
        strict(MessageTokensCount, obj, "count_tokens", rep)
    elif kind == "anthropic-error":
        from anthropic.types import ErrorResponse
        strict(ErrorResponse, obj, "error", rep)
    else:
        raise SystemExit(f"unknown kind {kind}")


def batch(list_path: str, strict_extra: bool) -> int:
    failed = 0
    for kind, path in json.load(open(list_path, encoding="utf-8")):
        obj, text = load(path)
        rep = Report()
        for k in kind.split("+"):
            run(k, obj, text, rep)
        ok = not rep.errors and not (strict_extra and rep.extras)
        failed += not ok
        print(f"{'OK' if ok else 'FAIL'} {kind} {path}: {rep.checked} checks, {len(rep.errors)} errors, "
              f"{len(rep.extras)} undeclared keys")
        for e in rep.errors:
            print("  ERROR", e)
    print(f"{failed} of the files failed")
    return 1 if failed else 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "--batch":
        return batch(argv[2], "--strict-extra" in argv)
    if len(argv) < 3:
        print(__doc__)
        return 2
    kind, path = argv[1], argv[2]
    strict_extra = "--strict-extra" in argv
    obj, text = load(path)
    kinds = [kind]
    if kind == "capture":
        req_path = path.replace("-response.json", "-request.json")
        p = json.load(open(req_path))["path"]
        status = json.load(open(path)).get("status", 200)
        if status >= 400:
            kinds = ["anthropic-error"] if "/messages" in p else [f"openrouter-error:{status}"]
        elif p.endswith("/messages"):
            kinds = ["anthropic-sse" if text is not None else "anthropic-message"]
        elif p.endswith("/messages/count_tokens"):
            kinds = ["anthropic-count-tokens"]
        elif p.endswith("/responses"):
            kinds = ["openai-responses-sse" if text is not None else "openai-response"]
        elif p.endswith("/chat/completions"):
            kinds = (["openai-chat-sse", "openrouter-chat-sse"] if text is not None
                     else ["openai-chat", "openrouter-chat"])
        else:
            print(f"SKIP {path}: no model for {p}")
            return 0
        kind = "+".join(kinds)
    rep = Report()
    for k in kinds:
        run(k, obj, text, rep)
    ok = not rep.errors and not (strict_extra and rep.extras)
    print(f"{'OK' if ok else 'FAIL'} {kind} {path}: {rep.checked} checks, {len(rep.errors)} errors, "
          f"{len(rep.extras)} undeclared keys")
    for e in rep.errors:
        print("  ERROR", e)
    for x in rep.extras[:50]:
        print("  extra", x)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
