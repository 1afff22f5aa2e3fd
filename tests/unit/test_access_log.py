"""The access log never shows a resume URL's signature."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from gateway import logs
from gateway.access_log import log_request, redacted_target
from gateway.domain import ResumedBy
from gateway.executions import resumed

SCOPE = {"method": "POST", "path": "/x", "query_string": b"", "client": ("127.0.0.1", 1)}


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


async def test_a_request_that_resumes_a_wait_is_one_line_named_for_the_resume(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """One line per request (the issue's "one line per request"): the resume's fields are in
    the request's line, whose action is the resume's; no line of its own."""
    body = {"workflowId": "w", "wait": {"webhook": {"httpMethod": "POST"}}}
    created = (await client.post("/api/v1/executions", json=body)).json()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="waitgate"):
        assert (await anon.post(created["resumeUrl"], json={"a": 1})).status_code == 200
        assert (await anon.post(created["resumeUrl"], json={"a": 1})).status_code == 409
    lines = [r for r in caplog.records if r.name.startswith("waitgate.")]
    assert [(r.name, r.__dict__["action"]) for r in lines] == [
        ("waitgate.access", "wait.resumed"),
        ("waitgate.access", "http.request"),  # the second call resumed nothing
    ]
    resumed = lines[0].__dict__
    assert lines[0].getMessage().startswith(f"POST /webhook-waiting/{created['id']}?signature=***")
    assert (resumed["execution_id"], resumed["seq"], resumed["by"]) == (created["id"], 1, "webhook")
    assert (resumed["status"], resumed["client"]) == (200, "127.0.0.1")
    assert "written" not in resumed


async def test_a_resume_outside_a_request_has_its_own_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="waitgate"):
        resumed(7, 2, ResumedBy.TIMEOUT)
    (line,) = [r for r in caplog.records if r.name.startswith("waitgate.")]
    assert line.name == "waitgate.executions"
    assert (line.__dict__["action"], line.__dict__["execution_id"]) == ("wait.resumed", 7)


async def test_a_request_line_takes_one_event_and_none_once_written() -> None:
    async def request() -> list[bool]:
        line = logs.request_line()
        taken = [
            logs.into_request_line({"action": "wait.resumed", "execution_id": n}) for n in (1, 2)
        ]
        log_request(SCOPE, 200, 0.0, line)
        after = asyncio.create_task(later())  # started by the request, it outlives its line
        return [*taken, await after]

    async def later() -> bool:
        return logs.into_request_line({"action": "wait.resumed", "execution_id": 3})

    assert await asyncio.create_task(request()) == [True, False, False]
    assert logs.into_request_line({"action": "x"}) is False  # no request: no line
