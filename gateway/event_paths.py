"""Paths into an event: ``a.b.0.c`` into its parsed JSON body, or ``header:Name``.

Used for a source's ``eventIdPath`` / ``eventNamePath`` and for the keys of a wait's
``match``. ``check_path`` judges a path when it is declared (``InvalidInput`` naming the
rule); ``lookup`` reads one from an event and never raises: a path that does not resolve is
``None``, so the event simply matches nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.errors import InvalidInput

HEADER_PREFIX = "header:"
MAX_PATH_LENGTH = 200
MAX_PATH_DEPTH = 16
MAX_INDEX_DIGITS = 9
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_path(path: str, where: str = "eventIdPath") -> str:
    """``path`` if it is a usable path; ``InvalidInput`` naming ``where`` and the rule
    otherwise: at most ``MAX_PATH_LENGTH`` characters and ``MAX_PATH_DEPTH`` segments, no
    empty segment, no control character; ``header:`` followed by an HTTP header name."""
    if not path or len(path) > MAX_PATH_LENGTH:
        raise InvalidInput(f"{where} must be 1 to {MAX_PATH_LENGTH} characters")
    if path.startswith(HEADER_PREFIX):
        if not _HEADER_NAME.fullmatch(path.removeprefix(HEADER_PREFIX)):
            raise InvalidInput(f"{where} must name an HTTP header after {HEADER_PREFIX}")
        return path
    segments = path.split(".")
    if len(segments) > MAX_PATH_DEPTH:
        raise InvalidInput(f"{where} may have at most {MAX_PATH_DEPTH} segments")
    if "" in segments or _CONTROL.search(path):
        raise InvalidInput(
            f"{where} must be dot-separated names or list indexes, none empty, "
            "without control characters"
        )
    return path


def _index(segment: str) -> int | None:
    """A list index written canonically (``0``, ``12``; not ``012``, ``-1`` or non-ASCII digits)."""
    canonical = segment == "0" or not segment.startswith("0")
    if segment.isascii() and segment.isdigit() and len(segment) <= MAX_INDEX_DIGITS:
        return int(segment) if canonical else None
    return None


def _text(value: Any) -> str | None:
    """A leaf as text: a string as it is, ``true``/``false``, a number as JSON writes it;
    ``None`` for null, objects, lists and anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int | float):
        try:
            return msgspec.json.encode(value).decode()
        except (ValueError, OverflowError, TypeError):  # an int too large for JSON
            return None
    return None


def lookup(path: str, body: Any, headers: Mapping[str, str]) -> str | None:
    """The value at ``path`` in ``body`` (parsed JSON; ``None`` when it did not parse) or,
    for ``header:Name``, the header (looked up by lower-case name); ``None`` when the path
    does not resolve to a string, number or boolean. Never raises."""
    if path.startswith(HEADER_PREFIX):
        name = path.removeprefix(HEADER_PREFIX)
        return headers.get(name.lower()) if _HEADER_NAME.fullmatch(name) else None
    value = body
    for segment in path.split("."):
        if isinstance(value, dict):
            if segment not in value:
                return None
            value = value[segment]
        elif isinstance(value, list):
            index = _index(segment)
            if index is None or index >= len(value):
                return None
            value = value[index]
        else:
            return None
    return _text(value)
