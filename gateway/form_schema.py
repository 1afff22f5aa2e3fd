"""Forms from a JSON Schema: which schemas a form wait takes, the fields they render as, the
typed values a submission becomes, and plain-language errors naming each field.

A form schema is an object schema whose properties are strings (``minLength``, ``maxLength``,
``format: email|date``), numbers and integers (``minimum``, ``maximum``), booleans, enums (a
dropdown) and arrays of an enum (checkboxes), with ``required``. Anything else is refused at
park, naming the property and the keyword, before ``jsonschema`` walks the schema. Submissions
and API resumes are validated by ``jsonschema``'s Draft 2020-12 validator with a format checker
for ``email`` and ``date``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from gateway.domain import FormSpec
from gateway.errors import InvalidInput

if TYPE_CHECKING:
    from jsonschema import FormatChecker
    from jsonschema.exceptions import ValidationError

DIALECT = "https://json-schema.org/draft/2020-12/schema"
MAX_PROPERTIES = 50
MAX_ENUM = 100
MAX_OPTION = 200
MAX_TITLE = 200  # as form.title
MAX_DESCRIPTION = 4000  # as form.description
MAX_TEXT = 10_000
"""The most characters a text field takes (a schema's ``minLength``/``maxLength`` too)."""
MAX_DIGITS = 18  # an integer of more digits is read as a float
MAX_EMAIL = 254
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_NAME = re.compile(r"[A-Za-z0-9_]{1,50}")
_INTEGER = re.compile(rf"[-+]?\d{{1,{MAX_DIGITS}}}")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

JsonType = Literal["string", "integer", "number", "boolean", "array"]
JSON_TYPES: tuple[JsonType, ...] = get_args(JsonType)
InputKind = Literal["text", "email", "date", "number", "dropdown", "checkbox", "checkboxes"]
_TOP = frozenset(
    {"$schema", "type", "title", "description", "properties", "required", "additionalProperties"}
)
_COMMON = frozenset({"type", "title", "description"})
_KEYWORDS: dict[str, frozenset[str]] = {
    "string": _COMMON | {"enum", "minLength", "maxLength", "format"},
    "integer": _COMMON | {"enum", "minimum", "maximum"},
    "number": _COMMON | {"enum", "minimum", "maximum"},
    "boolean": _COMMON,
    "array": _COMMON | {"items", "minItems", "maxItems", "uniqueItems"},
}
_ITEMS = frozenset({"type", "enum"})
_FORMATS = ("email", "date")
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems")


@functools.cache
def format_checker() -> FormatChecker:
    """jsonschema's ``date`` (RFC 3339 full-date) and the email rule of the ``fields`` forms.

    jsonschema (with referencing, rpds and attrs: a few MB resident) is imported at the first
    form schema checked or submission validated, not when the gateway starts."""
    from jsonschema import FormatChecker  # noqa: PLC0415

    checker = FormatChecker(formats=("date",))
    checker.checks("email")(_is_email)
    return checker


def is_email(text: str) -> bool:
    """Whether ``text`` looks like an email address: at most 254 characters (RFC 5321), so the
    pattern's backtracking stays bounded."""
    return len(text) <= MAX_EMAIL and EMAIL.fullmatch(text) is not None


def _is_email(instance: object) -> bool:
    return not isinstance(instance, str) or is_email(instance)


@dataclass(frozen=True)
class SchemaField:
    """One property of a form schema, as the page shows it."""

    name: str
    label: str
    type: InputKind
    kind: JsonType
    required: bool = False
    description: str = ""
    choices: tuple[tuple[str, Any], ...] = ()
    """An enum's values as (the text the page posts, the JSON value)."""
    minimum: int | float | None = None
    maximum: int | float | None = None
    step: str = ""
    min_length: int | None = None
    max_length: int | None = None

    @property
    def options(self) -> tuple[str, ...]:
        """The texts of the choices."""
        return tuple(text for text, _ in self.choices)


@dataclass(frozen=True)
class Problem:
    """Why a value was refused: the property (``""`` for the whole object) and a sentence."""

    field: str
    message: str


@dataclass(frozen=True)
class Refused:
    """Data a form's schema does not accept."""

    problems: tuple[Problem, ...]

    def __str__(self) -> str:
        return "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in self.problems)


def form_spec(schema: dict[str, Any], title: str | None, description: str) -> FormSpec:
    """The form a park's ``form.schema`` asks for (``title`` and ``description`` default to the
    schema's); ``InvalidInput`` naming what is wrong."""
    fields = schema_fields(schema)
    own_title = _text(schema, "title", "form.schema", MAX_TITLE)
    own_description = _text(schema, "description", "form.schema", MAX_DESCRIPTION)
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - see format_checker
    from jsonschema.exceptions import SchemaError  # noqa: PLC0415

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        at = "".join(f"[{p!r}]" for p in exc.absolute_path)
        raise InvalidInput(f"form.schema{at} is not valid JSON Schema: {exc.message}") from None
    names = {f.name for f in fields}
    for name in _list(schema, "required"):
        if name not in names:
            raise InvalidInput(f"form.schema.required names {name!r}, which is not a property")
    return FormSpec(
        title=title or own_title or "Form",
        fields=(),
        description=description or own_description,
        schema=schema,
    )


def schema_fields(schema: Mapping[str, Any]) -> tuple[SchemaField, ...]:
    """The fields of a form schema, in property order; ``InvalidInput`` for a shape a form
    cannot take."""
    _only(schema, _TOP, "form.schema")
    if schema.get("type") != "object":
        raise InvalidInput("form.schema.type must be object")
    if schema.get("$schema", DIALECT) != DIALECT:
        raise InvalidInput(f"form.schema.$schema must be {DIALECT} (or left out)")
    if not isinstance(schema.get("additionalProperties", False), bool):
        raise InvalidInput("form.schema.additionalProperties must be true or false")
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not 1 <= len(properties) <= MAX_PROPERTIES:
        raise InvalidInput(f"form.schema.properties must hold 1 to {MAX_PROPERTIES} properties")
    required = set(_list(schema, "required"))
    return tuple(_field(name, raw, name in required) for name, raw in properties.items())


def _field(name: str, raw: Any, required: bool) -> SchemaField:
    where = f"form.schema.properties.{name}"
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"{where}: a property name may only hold A-Z a-z 0-9 _ (at most 50)")
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be an object")
    given = raw.get("type", "string" if "enum" in raw else None)
    kind = next((t for t in JSON_TYPES if t == given), None)
    if kind is None:
        raise InvalidInput(f"{where}.type must be one of {', '.join(JSON_TYPES)}")
    _only(raw, _KEYWORDS[kind], where)
    for key in _COUNTS:
        if key in raw and not (_is_int(raw[key]) and 0 <= raw[key] <= MAX_TEXT):
            raise InvalidInput(f"{where}.{key} must be an integer from 0 to {MAX_TEXT}")
    for key in ("minimum", "maximum"):
        if key in raw and not _is_finite(raw[key]):
            raise InvalidInput(f"{where}.{key} must be a number")
    if raw.get("format", "email") not in _FORMATS:
        raise InvalidInput(f"{where}.format must be one of {', '.join(_FORMATS)}")
    field = SchemaField(
        name,
        _text(raw, "title", where, MAX_TITLE) or name,
        _input(kind, raw),
        kind,
        required and kind != "boolean",
        _text(raw, "description", where, MAX_DESCRIPTION),
        minimum=raw.get("minimum"),
        maximum=raw.get("maximum"),
        step={"integer": "1", "number": "any"}.get(kind, ""),
        min_length=raw.get("minLength"),
        max_length=raw.get("maxLength"),
    )
    if kind == "array":
        items = raw.get("items")
        if not isinstance(items, dict) or "enum" not in items:
            raise InvalidInput(f"{where}.items must be an enum: {{enum: [...]}}")
        _only(items, _ITEMS, f"{where}.items")
        return _with_choices(field, items, f"{where}.items")
    return _with_choices(field, raw, where) if "enum" in raw else field


def _input(kind: str, raw: Mapping[str, Any]) -> InputKind:
    if kind == "array":
        return "checkboxes"
    if "enum" in raw:
        return "dropdown"
    if kind == "boolean":
        return "checkbox"
    if kind in ("integer", "number"):
        return "number"
    fmt = raw.get("format")
    return "email" if fmt == "email" else "date" if fmt == "date" else "text"


def _with_choices(field: SchemaField, raw: Mapping[str, Any], where: str) -> SchemaField:
    values = raw["enum"]
    kind = raw.get("type", "string") if field.kind == "array" else field.kind
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_ENUM:
        raise InvalidInput(f"{where}.enum must list 1 to {MAX_ENUM} values")
    if kind not in ("string", "integer", "number"):
        raise InvalidInput(f"{where}.type of an enum must be string, integer or number")
    texts = []
    for value in values:
        if kind == "string" and not (isinstance(value, str) and 0 < len(value) <= MAX_OPTION):
            raise InvalidInput(
                f"{where}.enum values must be strings of 1 to {MAX_OPTION} characters"
            )
        if kind != "string" and not (_is_int(value) or (kind == "number" and _is_finite(value))):
            raise InvalidInput(f"{where}.enum values must be of type {kind}")
        texts.append(value if isinstance(value, str) else repr(value))
    if len(set(texts)) != len(texts):
        raise InvalidInput(f"{where}.enum values must be distinct")
    return dataclasses.replace(field, choices=tuple(zip(texts, values, strict=True)))


def _only(raw: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in raw:
        if key not in allowed:
            raise InvalidInput(
                f"{where}: {key!r} is not supported here (use {', '.join(sorted(allowed))})"
            )


def _text(raw: Mapping[str, Any], key: str, where: str, limit: int) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{where}.{key} must be a string of at most {limit} characters")
    return value


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"form.schema.{key} must be a list of property names")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: object) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def typed_values(fields: tuple[SchemaField, ...], posted: Callable[[str], list[str]]) -> Any:
    """A submission's values as its schema's types: numbers, a boolean (ticked or not), the
    choices ticked as a list. An empty field is left out, checkboxes with nothing ticked too
    (so ``required`` refuses them, and ``minItems`` applies only to what was ticked). Text
    that is not of its field's type is kept as text, for the validator to refuse."""
    data: dict[str, Any] = {}
    for field in fields:
        texts = posted(field.name)
        if field.type == "checkbox":
            data[field.name] = bool(texts)
        elif field.type == "checkboxes":
            if texts:
                data[field.name] = [_choice(field, text) for text in texts]
        elif texts and texts[0].strip():
            text = texts[0] if field.choices else texts[0].strip()
            data[field.name] = _choice(field, text) if field.choices else _typed(field.kind, text)
    return data


def _choice(field: SchemaField, text: str) -> Any:
    return dict(field.choices).get(text, text)


def _typed(kind: JsonType, text: str) -> Any:
    if kind not in ("integer", "number"):
        return text
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return int(value) if kind == "integer" and value.is_integer() else value
    return text


def refusal(schema: Mapping[str, Any], data: Any) -> Refused | None:
    """Why ``data`` does not match a form's schema (one sentence per problem, each naming its
    property), or ``None`` when it does."""
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - see format_checker

    validator = Draft202012Validator(schema, format_checker=format_checker())
    try:
        errors = list(validator.iter_errors(data))
    except RecursionError:
        return Refused((Problem("", "The data is nested too deeply."),))
    lists = [
        Problem(name, f"Choose at most {_count(MAX_ENUM, 'option')}.")
        for name, value in (data.items() if isinstance(data, dict) else ())
        if name in schema["properties"] and isinstance(value, list) and len(value) > MAX_ENUM
    ]
    if lists:  # refused before uniqueItems compares every pair
        return Refused(tuple(lists))
    missing = [n for n in schema.get("required", ()) if not isinstance(data, dict) or n not in data]
    problems: list[Problem] = []
    for error in errors:
        if error.validator == "required":
            field = missing.pop(0) if missing else ""
        else:
            field = str(error.absolute_path[0]) if error.absolute_path else ""
        problem = Problem(field, _message(error))
        if problem not in problems:
            problems.append(problem)
    return Refused(tuple(problems)) if problems else None


_TYPES = {
    "object": "Send a JSON object.",
    "integer": "Enter a whole number.",
    "number": "Enter a number.",
    "string": "Enter text.",
    "boolean": "Must be true or false.",
    "array": "Choose from the options.",
}


def _message(error: ValidationError) -> str:
    """A plain-language sentence for one validation error."""
    keyword, value = error.validator, error.validator_value
    if keyword == "type":
        return _TYPES.get(str(value), error.message)
    if keyword == "format":
        return "Enter an email address." if value == "email" else "Enter a date as YYYY-MM-DD."
    fixed = {
        "required": "This field is required.",
        "enum": "Choose one of the options.",
        "uniqueItems": "Choose each option only once.",
        "minimum": f"Enter a number of at least {value}.",
        "maximum": f"Enter a number of at most {value}.",
        "minLength": f"Enter at least {_count(value, 'character')}.",
        "maxLength": f"Enter at most {_count(value, 'character')}.",
        "minItems": f"Choose at least {_count(value, 'option')}.",
        "maxItems": f"Choose at most {_count(value, 'option')}.",
    }
    return fixed.get(str(keyword), error.message[:MAX_OPTION])


def _count(n: object, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
