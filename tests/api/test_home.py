"""``/`` is a small page for people that points to the dashboard and the API reference."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urljoin

import httpx
import pytest

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.pages import HEADERS
from tests.conftest import BASE_URL


def links(html: str) -> dict[str, str]:
    """Each link's text and target."""
    return {text: href for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', html)}


async def test_home_is_a_page_that_links_to_the_dashboard_and_the_reference(
    anon: httpx.AsyncClient,
) -> None:
    home = await anon.get("/")
    assert home.status_code == 200
    assert home.headers["content-type"].startswith("text/html")
    assert {name: home.headers[name] for name in HEADERS} == HEADERS
    found = links(home.text)
    assert set(found) == {"Dashboard", "API reference"}
    reference = await anon.get(urljoin(str(home.url), found["API reference"]))
    assert (reference.url.path, reference.status_code) == ("/api/v1/docs", 200)
    dashboard = await anon.get(urljoin(str(home.url), found["Dashboard"]))
    assert dashboard.url.path == "/ui"
    assert dashboard.status_code != 404


async def test_head_of_home_answers_the_headers_without_a_body(anon: httpx.AsyncClient) -> None:
    get, head = await anon.get("/"), await anon.head("/")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_home_answers_only_get_and_head(anon: httpx.AsyncClient, method: str) -> None:
    assert (await anon.request(method, "/")).status_code == 405


async def test_home_links_to_the_dashboard_on_its_own_origin(
    settings: Settings, clock: ManualClock
) -> None:
    separate = dataclasses.replace(settings, ui_origin="https://admin.example.com")
    app = create_app(separate, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
    ):
        home = await client.get("/")
    assert home.status_code == 200
    assert links(home.text)["Dashboard"] == "https://admin.example.com/ui"
