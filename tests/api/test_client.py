"""The Python SDK against the real app, and callback verification as an engine does it."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette

from gateway.client import (
    CallbackVerificationError,
    WaitgateClient,
    WaitgateError,
    _error,
    verify_callback,
)
from gateway.delivery import sign
from gateway.errors import InvalidInput
from tests.conftest import BASE_URL

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.fixture
async def gate(app: Starlette, admin_key: str) -> WaitgateClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    return WaitgateClient(BASE_URL, admin_key, http=http)


async def test_engine_round_trip(gate: WaitgateClient, anon: httpx.AsyncClient) -> None:
    execution = await gate.create("order-approval", custom_data={"orderId": "A-1"})
    assert execution.status == "running"
    assert execution.resumeUrl == execution.resume_url
    assert execution.resume_url is not None
    await execution.customData.set("step", "approval")
    assert execution.custom_data.get_all() == {"orderId": "A-1", "step": "approval"}
    await execution.custom_data.setAll({"only": "this"})
    assert execution.customData.getAll() == {"only": "this"}
    assert execution.custom_data.get("only") == "this"
    parked = await gate.wait(execution.id, wait_till="2030-01-01T00:00:00Z", webhook={})
    assert parked.status == "waiting"
    assert (await anon.get(execution.resume_url)).status_code == 200
    fetched = await gate.get(execution.id, include_data=True)
    assert fetched.raw["data"]["waits"][0]["resumedBy"] == "webhook"
    done = await gate.finish(execution.id, data={"ok": True})
    assert done.status == "success"
    page, cursor = await gate.list(status="success")
    assert [e.id for e in page] == [execution.id]
    assert cursor is None


async def test_create_parks_in_the_same_call(gate: WaitgateClient, anon: httpx.AsyncClient) -> None:
    wait = {"waitTill": datetime(2030, 1, 1, tzinfo=UTC), "webhook": {"httpMethod": "POST"}}
    parked = await gate.create("order-approval", custom_data={"orderId": "A-2"}, wait=wait)
    assert parked.status == "waiting"
    assert parked.raw["waitTill"] == "2030-01-01T00:00:00.000Z"
    assert parked.resume_url is not None
    assert (await anon.post(parked.resume_url, json={"ok": 1})).status_code == 200
    with pytest.raises(WaitgateError) as refused:
        await gate.create("order-approval", wait={"webhook": {"httpMethod": "BREW"}})
    assert refused.value.status == 400
    page, _ = await gate.list(status="running")
    assert [e.id for e in page] == [parked.id]  # resumed; the refused one was never made


async def test_an_approval_wait_has_the_url_of_its_page(
    gate: WaitgateClient, anon: httpx.AsyncClient
) -> None:
    execution = await gate.create("order-approval")
    assert execution.approval_url is None
    parked = await gate.wait(execution.id, approval={"title": "Ship order A-1?"})
    assert parked.approvalUrl == parked.approval_url
    assert parked.approval_url is not None
    assert (await gate.get(execution.id)).approval_url == parked.approval_url  # not only at park
    page = await anon.get(parked.approval_url)
    assert page.status_code == 200
    assert "Ship order A-1?" in page.text


async def test_form_and_event_waits_are_parked_through_the_sdk(
    gate: WaitgateClient, anon: httpx.AsyncClient
) -> None:
    schema = {"type": "object", "properties": {"qty": {"type": "integer", "title": "Quantity"}}}
    execution = await gate.create("order-form")
    parked = await gate.wait(execution.id, form={"title": "How many?", "schema": schema})
    form_url = parked.raw["resumeFormUrl"]
    assert (await gate.get(execution.id)).raw["resumeFormUrl"] == form_url
    assert "Quantity" in (await anon.get(form_url)).text
    other = await gate.create("order-event")
    with pytest.raises(WaitgateError) as refused:
        await gate.wait(other.id, events=[{"source": "nope"}])
    assert refused.value.status == 400
    assert "no event source 'nope'" in refused.value.message


async def test_errors_and_local_limits_use_the_gateway_messages(gate: WaitgateClient) -> None:
    execution = await gate.create("wf")
    with pytest.raises(InvalidInput, match="'bad key' may only contain"):
        await execution.custom_data.set("bad key", "v")
    with pytest.raises(WaitgateError) as caught:
        await gate.finish(execution.id, "sideways")
    assert caught.value.status == 400
    with pytest.raises(WaitgateError) as missing:
        await gate.get(999)
    assert (missing.value.status, missing.value.message) == (
        404,
        'The execution "999" does not exist.',
    )


async def test_an_error_carries_the_gateways_hint(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/api/v1/deliveries/recover", json={"since": "2026-01-01T00:00:00Z", "endpoint": "ftp:x"}
    )
    error = _error(answer)
    assert error.status == 400
    assert error.message.startswith("endpoint:")
    assert error.hint is not None
    assert "channel:<name>" in error.hint
    assert error.hint in str(error)
    plain = _error(httpx.Response(502, text="<html>bad gateway</html>"))
    assert (plain.message, plain.hint) == ("<html>bad gateway</html>", None)


async def test_verify_callback_accepts_our_signature_and_the_reference_library_agrees() -> None:
    body = b'{"type":"execution.resumed","data":{}}'
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(base64.b64decode(SECRET[6:]), "msg_1", now, body),
    }
    assert verify_callback(headers, body, SECRET)["type"] == "execution.resumed"
    assert Webhook(SECRET).verify(body, headers)["type"] == "execution.resumed"
    with pytest.raises(CallbackVerificationError, match="no webhook-signature"):
        verify_callback(headers, body + b" ", SECRET)
    with pytest.raises(CallbackVerificationError, match="tolerance"):
        verify_callback(headers, body, SECRET, now=now + 3600)
    with pytest.raises(CallbackVerificationError, match="malformed"):
        verify_callback({}, body, SECRET)
