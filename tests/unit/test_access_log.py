"""The access log never shows a resume URL's signature."""

from __future__ import annotations

import logging

import httpx
import pytest

from gateway.access_log import redacted_target


def test_signature_is_redacted_and_other_parameters_kept() -> None:
    target = redacted_target("/webhook-waiting/7", b"signature=1.abcDEF&choice=yes")
    assert target == "/webhook-waiting/7?signature=***&choice=yes"
    assert redacted_target("/healthz", b"") == "/healthz"


async def test_requests_are_logged_without_secrets(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = (await client.post("/api/v1/executions", json={"workflowId": "w"})).json()
    url = created["resumeUrl"]
    token = url.split("signature=")[1]
    with caplog.at_level(logging.INFO, logger="waitgate.access"):
        await anon.post(url)
    lines = [r for r in caplog.records if r.name == "waitgate.access"]
    assert lines
    assert all(token not in r.getMessage() for r in lines)
    assert lines[-1].getMessage().startswith(f"POST /webhook-waiting/{created['id']}?signature=***")
    assert lines[-1].__dict__["action"] == "http.request"
