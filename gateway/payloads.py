"""The resume payload: what the engine receives when a resume URL is called.

The shape of n8n's Wait node output item: ``{headers, params, query, body, webhookUrl,
executionMode}``. JSON, text, urlencoded and XML bodies are parsed; anything else becomes
binary data (base64 with its mime type). The ``signature`` parameter never appears; header
values are kept only up to a fixed size (see ``gateway.stored``).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import msgspec
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.types import Scope

from gateway.http import ApiError
from gateway.stored import clip_headers

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

REDACTED_QUERY = "signature"
SIGNATURE_PARAM = b"signature="
MAX_JSON_DEPTH = 64


def _parse_error(hint: str) -> ApiError:
    return ApiError(422, "Failed to parse request body", hint=hint)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _xml_to_value(element: ET.Element, level: int = 0) -> Any:
    if level > MAX_JSON_DEPTH:
        raise _parse_error(f"XML is nested deeper than {MAX_JSON_DEPTH} levels")
    children = list(element)
    if not children and not element.attrib:
        return element.text or ""
    value: dict[str, Any] = {f"@{k}": v for k, v in element.attrib.items()}
    for child in children:
        converted = _xml_to_value(child, level + 1)
        if child.tag in value:
            existing = value[child.tag]
            value[child.tag] = (
                [*existing, converted] if isinstance(existing, list) else [existing, converted]
            )
        else:
            value[child.tag] = converted
    text = (element.text or "").strip()
    if text:
        value["#text"] = text
    return value


def _json(body: bytes) -> Any:
    too_deep = f"JSON is nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise _parse_error(str(exc)) from None
    except RecursionError:  # msgspec gives up on thousands of levels before we can count
        raise _parse_error(too_deep) from None
    # Each level is an opening bracket or brace: a body with few cannot be too deep.
    openings = body.count(b"[") + body.count(b"{")
    if openings > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise _parse_error(too_deep)
    return value


def parse_body(content_type: str, body: bytes) -> Any:
    """The body as the engine sees it; a 422 when a declared format does not parse."""
    if not body:
        return {}
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        return _json(body)
    if mime == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise _parse_error("form data is not valid UTF-8") from None
    if mime in {"application/xml", "text/xml"} or mime.endswith("+xml"):
        import xml.etree.ElementTree as ET  # noqa: PLC0415 - loaded at the first XML body

        from defusedxml import DefusedXmlException  # noqa: PLC0415
        from defusedxml.ElementTree import fromstring  # noqa: PLC0415

        try:
            # No entity declarations: expat's own limit lets 12 KB expand to 8 MB of text.
            root = fromstring(body)
        except (ET.ParseError, DefusedXmlException) as exc:
            raise _parse_error(f"XML: {exc}") from None
        return {root.tag: _xml_to_value(root)}
    if mime.startswith("text/") or mime == "":
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            if mime == "":
                return _binary(body, "application/octet-stream")
            raise _parse_error("text body is not valid UTF-8") from None
    return _binary(body, mime)


def _binary(body: bytes, mime: str) -> dict[str, Any]:
    return {
        "binary": {
            "data": base64.b64encode(body).decode("ascii"),
            "mimeType": mime,
            "fileSize": len(body),
        }
    }


def build_payload(request: Request, body: bytes, suffix: str) -> dict[str, Any]:
    """The resume payload for a call of a resume URL."""
    query = other_params(request)
    headers = request.headers
    return {
        "headers": dict(clip_headers(headers.items())),
        "params": {"suffix": suffix} if suffix else {},
        "query": dict(query),
        "body": parse_body(headers.get("content-type", ""), body),
        "webhookUrl": webhook_url(request, query),
        "executionMode": "production",
    }


def other_params(request: Request) -> list[tuple[str, str]]:
    """The query parameters but the signature (most resume URLs have no others: read without
    parsing)."""
    raw: bytes = request.scope.get("query_string", b"")
    if not raw or (raw.startswith(SIGNATURE_PARAM) and b"&" not in raw):
        return []
    return [(k, v) for k, v in request.query_params.multi_items() if k != REDACTED_QUERY]


def webhook_url(request: Request, query: list[tuple[str, str]]) -> str:
    """The URL that was called, without its signature: Starlette's ``request.url`` with the
    other parameters re-encoded. The scheme, host and port are Starlette's, looked up once for
    each ``Host`` a few callers use (most gateways see one); the path is escaped as it does."""
    scope = request.scope
    path: str = scope["path"]
    if query or not path.isprintable():  # urlsplit drops tabs and newlines: leave it to it
        return str(request.url.replace(query=urlencode(query))).rstrip("?")
    host = next((value for key, value in scope["headers"] if key == b"host"), None)
    key = (scope.get("scheme", "http"), host, scope.get("server"))
    origin = _origins.get(key)
    if origin is None:
        url = URL(
            scope={"path": "/", "headers": [(b"host", host)] if host else [], **_parts(scope)}
        )
        if not url.netloc:
            return str(request.url.replace(query="")).rstrip("?")
        origin = f"{url.scheme}://{url.netloc}"
        if len(_origins) >= MAX_ORIGINS:
            _origins.clear()
        _origins[key] = origin
    return origin + path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def _parts(scope: Scope) -> dict[str, Any]:
    return {k: scope[k] for k in ("scheme", "server") if k in scope}


MAX_ORIGINS = 64
"""Distinct origins remembered (the ``Host`` header is the caller's: the memory is bounded)."""
_origins: dict[tuple[str, bytes | None, Any], str] = {}
