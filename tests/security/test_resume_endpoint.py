"""The resume endpoint below Starlette's router: it matches its own paths and answers its own
errors exactly as the router and the app's handlers would, every answer sandboxed."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from gateway.errors import StoreUnavailable
from tests.conftest import BASE_URL, create, get, http_scope, park
from tests.security.test_answers import sandboxed


@pytest.mark.parametrize(
    "path", ["/webhook-waiting/", "/webhook-waiting//", "/webhook-waiting//1?signature=x"]
)
async def test_a_resume_path_without_an_execution_id_is_404(
    anon: httpx.AsyncClient, path: str
) -> None:
    answer = await anon.post(path, json={})
    assert answer.status_code == 404
    assert answer.json() == {"message": "Not Found", "code": 404}
    sandboxed(answer)


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "CONNECT"])
async def test_a_method_no_resume_url_takes_is_405_with_the_ones_it_takes(
    anon: httpx.AsyncClient, method: str
) -> None:
    answer = await anon.request(method, "/webhook-waiting/1/suffix?signature=x")
    assert answer.status_code == 405
    assert answer.json() == {"message": "Method Not Allowed", "code": 405}
    allowed = {m.strip() for m in answer.headers["allow"].split(",")}
    assert allowed == {"DELETE", "GET", "HEAD", "PATCH", "POST", "PUT", "OPTIONS"}
    sandboxed(answer)


async def test_a_trailing_slash_is_the_url_without_a_suffix(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    url = urlsplit(parked["resumeUrl"])
    answer = await anon.post(f"{url.path}/?{url.query}", json={"ok": True})
    assert answer.status_code == 200, answer.text
    assert (await get(client, execution["id"]))["status"] == "running"


async def test_an_unavailable_database_is_a_503_that_names_no_driver_detail(
    app: Starlette,
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    execution = await create(client)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})

    async def down(*_: object, **__: object) -> None:
        raise StoreUnavailable("database unavailable: disk I/O error at /secret/path")

    monkeypatch.setattr(app.state.services.store, "resume_by_call", down)
    answer = await anon.post(parked["resumeUrl"], json={})
    assert answer.status_code == 503
    assert answer.json()["message"] == "database unavailable, try again later"
    assert answer.headers["retry-after"] == "1"
    assert "/secret/path" not in answer.text
    sandboxed(answer)


async def test_a_caller_gone_before_its_body_resumes_nothing_and_logs_no_error(
    app: Starlette, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    execution = await create(client)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    url = urlsplit(parked["resumeUrl"])
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    host = (b"host", urlsplit(BASE_URL).netloc.encode())
    scope = http_scope(url.path, url.query, [host, (b"content-length", b"9")])
    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 408  # what the access line says; nobody receives it
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    access = [r for r in caplog.records if getattr(r, "action", None) == "http.request"]
    assert [r.status for r in access] == [408]  # type: ignore[attr-defined]
    assert (await get(client, execution["id"]))["status"] == "waiting"
