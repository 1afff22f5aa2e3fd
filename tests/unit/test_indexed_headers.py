"""The resume path's indexed headers answer every lookup as Starlette's ``Headers`` does."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from gateway.http import IndexedHeaders, IndexedRequest

RAW = [
    (b"host", b"gw.example"),
    (b"content-type", b"application/json"),
    (b"x-repeated", b"first"),
    (b"x-repeated", b"second"),
    (b"x-latin", "caf\xe9".encode("latin-1")),
    (b"x-empty", b""),
]
NAMES = ["host", "Host", "CONTENT-TYPE", "x-repeated", "X-Repeated", "x-latin", "x-empty", "nope"]


@pytest.mark.parametrize("name", NAMES)
def test_each_lookup_answers_as_starlette_does(name: str) -> None:
    ours, theirs = IndexedHeaders(raw=RAW), Headers(raw=RAW)
    assert ours.get(name) == theirs.get(name)
    assert ours.get(name, "fallback") == theirs.get(name, "fallback")
    assert (name in ours) == (name in theirs)
    if name in theirs:
        assert ours[name] == theirs[name]
    else:
        with pytest.raises(KeyError):
            ours[name]


def test_the_rest_of_the_mapping_is_starlettes() -> None:
    ours, theirs = IndexedHeaders(raw=RAW), Headers(raw=RAW)
    assert ours.items() == theirs.items()
    assert ours.getlist("x-repeated") == ["first", "second"]
    assert ours == theirs
    assert 42 not in ours  # type: ignore[comparison-overlap]


def test_an_indexed_request_reads_its_scope_headers_once() -> None:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": RAW}
    request = IndexedRequest(scope)
    assert isinstance(request.headers, IndexedHeaders)
    assert request.headers is request.headers
    assert request.headers["x-repeated"] == "first"
