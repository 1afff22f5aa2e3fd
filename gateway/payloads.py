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
from starlette.requests import Request

from gateway.http import ApiError
from gateway.stored import clip_headers

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

REDACTED_QUERY = "signature"
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
    if _depth(value) > MAX_JSON_DEPTH:
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

        try:
            root = ET.fromstring(body)  # noqa: S314 - expat refuses entity expansion attacks
        except ET.ParseError as exc:
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
    query = [(k, v) for k, v in request.query_params.multi_items() if k != REDACTED_QUERY]
    url = str(request.url.replace(query=urlencode(query)))
    return {
        "headers": dict(clip_headers(request.headers.items())),
        "params": {"suffix": suffix} if suffix else {},
        "query": dict(query),
        "body": parse_body(request.headers.get("content-type", ""), body),
        "webhookUrl": url.rstrip("?"),
        "executionMode": "production",
    }
