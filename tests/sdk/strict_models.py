"""Strict validation helpers shared by the SDK validators (sdk_validate.py, anthropic_validate.py):
SSE framing, `model_validate` with the errors and undeclared keys collected in a `Report`, and a
discriminated union's `type` -> model table."""
from __future__ import annotations

import json
import typing
from typing import Any

import pydantic
from pydantic import BaseModel


def sse_events(text: str):
    """Yield (event_name, data_str) per SSE block (WHATWG framing, comments skipped)."""
    for block in text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            yield name, "\n".join(data)


def extras(instance: Any, raw: Any, path: str = "$") -> list[str]:
    """Keys present in `raw` that the validated model type does not declare (recursive)."""
    out: list[str] = []
    if isinstance(instance, BaseModel) and isinstance(raw, dict):
        fields = type(instance).model_fields
        known = set(fields) | {f.alias for f in fields.values() if f.alias}
        for k, v in raw.items():
            if k not in known:
                out.append(f"{path}.{k}")
                continue
            name = k if k in fields else next(n for n, f in fields.items() if f.alias == k)
            out += extras(getattr(instance, name, None), v, f"{path}.{k}")
    elif isinstance(instance, list) and isinstance(raw, list):
        for i, (a, b) in enumerate(zip(instance, raw)):
            out += extras(a, b, f"{path}[{i}]")
    elif isinstance(instance, dict) and isinstance(raw, dict):
        for k in raw:
            if k in instance:
                out += extras(instance[k], raw[k], f"{path}.{k}")
    return out


def fmt_errors(e: pydantic.ValidationError) -> list[str]:
    res = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(x) for x in err["loc"])
        res.append(f"{loc}: {err['type']}: {err['msg']} (input={json.dumps(err.get('input'), default=str)[:120]})")
    return res


class Report:
    def __init__(self):
        self.errors: list[str] = []
        self.extras: list[str] = []
        self.checked = 0

    def add(self, label: str, errs: list[str], extra: list[str]):
        self.checked += 1
        self.errors += [f"{label}: {x}" for x in errs]
        self.extras += [f"{label}: {x}" for x in extra]


def strict(model: type[BaseModel], obj: Any, label: str, rep: Report):
    try:
        inst = model.model_validate(obj)
    except pydantic.ValidationError as e:
        rep.add(label, fmt_errors(e), [])
        return None
    rep.add(label, [], extras(inst, obj))
    return inst


def union_by_type(union) -> dict[str, type[BaseModel]]:
    """Map `type` literal -> model for an (Annotated) discriminated union of models."""
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    table = {}
    for m in typing.get_args(union):
        ann = m.model_fields["type"].annotation
        for lit in typing.get_args(ann):
            table[lit] = m
    return table
