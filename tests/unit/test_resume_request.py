"""What a resume reads off its request: the signature, and the payload's ``webhookUrl`` and
``query`` (Starlette's ``request.url`` without the signature), the same however the request is
addressed, including the shortcuts for URLs whose only parameter is the signature."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.requests import Request

from gateway.payloads import MAX_ORIGINS, _origins, other_params, webhook_url
from gateway.signed import signature_param


def _request(
    path: str = "/webhook-waiting/7",
    query: bytes = b"signature=1.abc.def",
    host: bytes | None = b"gw.example.com",
    **scope: Any,
) -> Request:
    headers = [] if host is None else [(b"host", host)]
    return Request(
        {
            "type": "http",
            "method": "POST",
            "scheme": "http",
            "server": ("10.0.0.1", 5678),
            "path": path,
            "query_string": query,
            "headers": [(b"accept", b"*/*"), *headers],
            **scope,
        }
    )


def _starlette(request: Request) -> tuple[str, list[tuple[str, str]]]:
    """What the payload held before the shortcut (the reference)."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "signature"]
    return str(request.url.replace(query=urlencode(query))).rstrip("?"), query


CASES = [
    _request(),
    _request(host=b"gw.example.com:8443"),
    _request(host=b"gw.example.com:80"),
    _request(scheme="https", host=b"gw.example.com:443"),
    _request(host=None),
    _request(host=None, server=("::1", 8080)),
    _request(host=None, scheme="https", server=("10.0.0.2", 443)),
    _request(host=b"[::1]:5678"),
    _request(host=b"bad host/with?junk#x"),
    _request(host=b"gw.example.com:notaport"),
    _request(path="/webhook-waiting/7/a?b#c\\d"),
    _request(path="/webhook-waiting/7/caf\u00e9 and spaces"),
    _request(path="/webhook-waiting/7/tab\there\nnewline"),
    _request(path="/prefix/webhook-waiting/7", root_path="/prefix"),
    _request(query=b""),
    _request(query=b"signature="),
    _request(query=b"signature"),
    _request(query=b"a=1&signature=x&b=%20two+three&a=4"),
    _request(query=b"sig%6Eature=x"),
    _request(query=b"signature=x&signature=y"),
    _request(query=b"signature=x;a=1"),
]


@pytest.mark.parametrize("request_", CASES)
def test_the_url_and_query_are_starlettes_without_the_signature(request_: Request) -> None:
    url, query = _starlette(request_)
    assert other_params(request_) == query
    assert webhook_url(request_, other_params(request_)) == url
    assert webhook_url(request_, other_params(request_)) == url  # from the remembered origin


def test_the_origins_remembered_are_bounded_whatever_hosts_callers_send() -> None:
    for n in range(MAX_ORIGINS * 3):
        request_ = _request(host=f"h{n}.example.com".encode())
        assert webhook_url(request_, []) == f"http://h{n}.example.com/webhook-waiting/7"
        assert len(_origins) <= MAX_ORIGINS


@pytest.mark.parametrize(
    "query",
    [
        b"signature=1.abc.def",
        b"signature=",
        b"signature",
        b"",
        b"signature=a%2Eb",
        b"signature=a+b",
        b"signature=x&signature=y",
        b"a=1&signature=x",
        b"signature=x&a=1",
        b"signature=caf\xe9",
        b"sig%6Eature=x",
        b"signaturex=1",
    ],
)
def test_the_signature_is_the_one_starlette_reads(query: bytes) -> None:
    request_ = _request(query=query)
    assert signature_param(request_) == request_.query_params.get("signature", "")
