"""A Pydantic model as a waitgate form: the JSON Schema a form wait takes, and the model's
defaults as the data a deadline resumes with.

Pydantic writes enums as ``$ref`` to ``$defs``, ``Optional[X]`` as ``anyOf: [X, null]``, a
one-value ``Literal`` as ``const`` and every default as ``default``; a waitgate form schema
(``gateway.form_schema``) has none of these. ``form_schema`` rewrites them into the shapes a
form takes and refuses, naming the field, what a form cannot show (nested models, patterns,
date-times …), so the mistake shows when the flow is written, not when the wait is parked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

_KEEP: dict[str, frozenset[str]] = {
    "string": frozenset({"title", "description", "enum", "minLength", "maxLength", "format"}),
    "integer": frozenset({"title", "description", "enum", "minimum", "maximum"}),
    "number": frozenset({"title", "description", "enum", "minimum", "maximum"}),
    "boolean": frozenset({"title", "description"}),
    "array": frozenset({"title", "description", "items", "minItems", "maxItems", "uniqueItems"}),
}
_DROP = frozenset({"default", "examples", "type", "$ref", "anyOf", "const"})
_FORMATS = frozenset({"email", "date"})


class NotAFormError(ValueError):
    """The model has a field a waitgate form cannot show or validate."""


def form_schema(model: type[BaseModel], title: str | None = None) -> dict[str, Any]:
    """The waitgate form schema (Draft 2020-12, the subset ``gateway.form_schema`` takes) of
    ``model``; ``NotAFormError`` naming the first field a form cannot take."""
    raw = model.model_json_schema()
    defs: Mapping[str, Any] = raw.get("$defs", {})
    properties = {
        name: _property(model.__name__, name, prop, defs)
        for name, prop in raw.get("properties", {}).items()
    }
    if not properties:
        raise NotAFormError(f"{model.__name__} has no fields to ask for")
    schema: dict[str, Any] = {
        "type": "object",
        "title": (title or raw.get("title") or model.__name__)[:200],
        "properties": properties,
        "additionalProperties": False,
    }
    if raw.get("description"):
        schema["description"] = raw["description"]
    if raw.get("required"):
        schema["required"] = list(raw["required"])
    return schema


def _property(model: str, name: str, prop: Mapping[str, Any], defs: Mapping[str, Any]) -> Any:
    where = f"{model}.{name}"
    resolved = _resolve(where, prop, defs)
    kind = resolved.get("type", "string" if "enum" in resolved else None)
    if kind not in _KEEP:
        raise NotAFormError(f"{where}: a form field is a string, number, boolean or enum list")
    out: dict[str, Any] = {"type": kind}
    for key, value in resolved.items():
        if key in _DROP:
            continue
        if key not in _KEEP[kind] or (key == "format" and value not in _FORMATS):
            shown = f"format {value!r}" if key == "format" else repr(key)
            raise NotAFormError(f"{where}: {shown} cannot be shown on a waitgate form")
        out[key] = value
    if kind == "array":
        out["items"] = _items(where, resolved.get("items"), defs)
    out.setdefault("title", name.replace("_", " ").capitalize())
    return out


def _resolve(where: str, prop: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """The property without ``$ref``, ``Optional``'s ``anyOf`` and ``const``."""
    out = dict(prop)
    options = out.pop("anyOf", None)
    if options is not None:
        others = [o for o in options if o.get("type") != "null"]
        if len(others) != 1:
            raise NotAFormError(f"{where}: a form field has one type (Optional[X] at most)")
        out = {**others[0], **out}
    ref = out.pop("$ref", None)
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1], {})
        out = {**{k: v for k, v in target.items() if k != "title"}, **out}
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


def _items(where: str, items: Any, defs: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(items, Mapping):
        raise NotAFormError(f"{where}: a list field is a list of Literal or Enum choices")
    resolved = _resolve(where, items, defs)
    if "enum" not in resolved:
        raise NotAFormError(f"{where}: a list field is a list of Literal or Enum choices")
    return {"type": resolved.get("type", "string"), "enum": resolved["enum"]}


def defaults(model: type[BaseModel]) -> dict[str, Any] | None:
    """The model built from its defaults alone, as JSON data; ``None`` if a field has none."""
    try:
        built: dict[str, Any] = model().model_dump(mode="json")
        return built
    except ValidationError:
        return None
