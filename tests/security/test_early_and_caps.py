"""Early resumes meet the caller checks of the wait they are applied to; caller-controlled text
is parsed robustly; what is stored of a call (headers, audit rows) is bounded."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.caller_auth import kept_checker
from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.domain import (
    AttemptOutcome,
    CallerAuth,
    NewExecution,
    ResumeAttempt,
    Status,
    WebhookSpec,
)
from gateway.early import MAX_KEPT, NOTHING_TO_CHECK, CallEvidence
from gateway.services import Services
from gateway.stored import AUDIT_ROWS_KEPT, MAX_AUDIT_TEXT, MAX_HEADER_VALUE
from persistence.base import Store
from tests.conftest import create, get, http_scope, park

STRIPE = {
    "type": "hmac",
    "headerName": "Stripe-Signature",
    "secret": "whsec_x",
    "style": "stripe",
    "toleranceSeconds": 300,
}
LOCAL = ["127.0.0.0/8", "::1"]  # httpx's ASGI transport calls from 127.0.0.1
BODY = b'{"type":"payment_intent.succeeded"}'
WRONG = "Authorization data is wrong!"


def stripe_header(stamp: int | str, body: bytes = BODY, secret: bytes = b"whsec_x") -> str:
    signed = f"{stamp}.".encode() + body
    return f"t={stamp},v1=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()


def seconds(clock: ManualClock) -> int:
    return clock.now_ms() // 1000


async def attempts(client: httpx.AsyncClient, execution_id: int) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/executions/{execution_id}/resume-attempts")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


async def early_call(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    """Create an execution and call its first resume URL before it is parked (kept: 202)."""
    execution = await create(client)
    kept = await anon.post(execution["resumeUrl"], content=body, headers=headers)
    assert kept.status_code == 202, kept.text
    return execution


# High 1: an early resume is judged by the caller checks of the wait it is applied to ---------


async def test_a_correctly_signed_early_call_from_an_allowed_address_is_applied(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> None:
    headers = {
        "Stripe-Signature": stripe_header(seconds(clock)),
        "content-type": "application/json",
    }
    execution = await early_call(client, anon, headers, BODY)
    clock.advance(3_600_000)  # the park comes an hour later: the stamp is judged at receipt
    webhook = {"httpMethod": "POST", "authentication": STRIPE, "allowedIps": LOCAL}
    parked = await park(client, execution["id"], webhook=webhook)
    assert parked["status"] == "running"
    wait = (await get(client, execution["id"], includeData="true"))["data"]["waits"][0]
    assert wait["resumedBy"] == "webhook"
    assert wait["payload"]["body"] == {"type": "payment_intent.succeeded"}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _no_headers(now: int) -> dict[str, str]:
    return {}


BASIC = {"type": "basic", "username": "u", "password": "p"}
GITHUB = {"type": "hmac", "headerName": "X-Hub-Signature-256", "secret": "gh", "prefix": "sha256="}
Headers = Callable[[int], dict[str, str]]
FORGED: dict[str, tuple[dict[str, Any], Headers, str]] = {
    "no signature": ({"authentication": STRIPE}, _no_headers, "Authorization is required!"),
    "wrong hmac": (
        {"authentication": STRIPE},
        lambda now: {"Stripe-Signature": stripe_header(now, secret=b"guess")},
        WRONG,
    ),
    "stale stripe stamp": (
        {"authentication": STRIPE},
        lambda now: {"Stripe-Signature": stripe_header(now - 600)},
        WRONG,
    ),
    "huge stripe stamp": (
        {"authentication": STRIPE},
        lambda now: {"Stripe-Signature": stripe_header("9" * 5000)},
        WRONG,
    ),
    "wrong github hmac": (
        {"authentication": GITHUB},
        lambda now: {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        WRONG,
    ),
    "basic missing": ({"authentication": BASIC}, _no_headers, "Authorization is required!"),
    "basic wrong": (
        {"authentication": BASIC},
        lambda now: {"Authorization": _basic("u", "guess")},
        WRONG,
    ),
    "header missing": (
        {"authentication": {"type": "header", "headerName": "X-Key", "headerValue": "k-1"}},
        _no_headers,
        WRONG,
    ),
    "ip not allowed": (
        {"allowedIps": ["10.0.0.0/8"]},
        _no_headers,
        "IP is not allowed to access the webhook!",
    ),
    "bot with ignoreBots": (
        {"ignoreBots": True},
        lambda now: {"user-agent": "Slackbot-LinkExpanding 1.0"},
        "Link previews and bots may not resume this wait",
    ),
}


@pytest.mark.parametrize("case", FORGED)
async def test_a_forged_early_call_is_refused_at_park_and_audited(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock, case: str
) -> None:
    webhook, headers, reason = FORGED[case]
    sent = {**headers(seconds(clock)), "content-type": "application/json"}
    execution = await early_call(client, anon, sent, BODY)
    parked = await park(client, execution["id"], webhook={"httpMethod": "POST", **webhook})
    assert parked["status"] == "waiting"  # the forged body resumed nothing
    wait = (await get(client, execution["id"], includeData="true"))["data"]["waits"][0]
    assert wait["resumedBy"] is None
    trail = await attempts(client, execution["id"])
    assert [a["outcome"] for a in trail] == ["accepted", "refused"]
    refused = trail[-1]
    assert reason in refused["reason"]
    assert refused["statusCode"] in {401, 403}
    assert refused["seq"] == 1


async def test_a_forged_early_call_cannot_crowd_out_the_genuine_one(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Whoever saw the URL of an HMAC-checked wait cannot block its partner by calling first:
    several early calls are kept, and the park applies the oldest that its checks admit."""
    forged = {"Stripe-Signature": "t=1,v1=" + "0" * 64, "content-type": "application/json"}
    lie = b'{"type":"payment_intent.succeeded","forged":true}'
    execution = await early_call(client, anon, forged, lie)
    url = execution["resumeUrl"]
    for _ in range(MAX_KEPT - 2):
        assert (await anon.post(url, content=lie, headers=forged)).status_code == 202
    genuine = {
        "Stripe-Signature": stripe_header(seconds(clock)),
        "content-type": "application/json",
    }
    assert (await anon.post(url, content=BODY, headers=genuine)).status_code == 202
    full = await anon.post(url, content=BODY, headers=genuine)
    assert full.status_code == 409  # a bounded number of calls is kept per wait
    assert "already received" in full.json()["message"]
    parked = await park(
        client, execution["id"], webhook={"httpMethod": "POST", "authentication": STRIPE}
    )
    assert parked["status"] == "running"
    wait = (await get(client, execution["id"], includeData="true"))["data"]["waits"][0]
    assert wait["resumedBy"] == "webhook"
    assert wait["payload"]["body"] == {"type": "payment_intent.succeeded"}  # not the forgery
    trail = await attempts(client, execution["id"])
    refused = [a for a in trail if a["outcome"] == "refused"]
    at_park = [a for a in refused if "when the wait was parked" in a["reason"]]
    assert len(at_park) == MAX_KEPT - 1
    assert all(a["statusCode"] == 403 for a in at_park)


async def test_early_calls_beyond_the_one_applied_are_audited_as_not_applied(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    plain = {"content-type": "application/json"}
    execution = await early_call(client, anon, plain, b'{"n": 1}')
    assert (
        await anon.post(execution["resumeUrl"], content=b'{"n": 2}', headers=plain)
    ).status_code == 202
    await park(client, execution["id"], webhook={"httpMethod": "POST"})
    wait = (await get(client, execution["id"], includeData="true"))["data"]["waits"][0]
    assert wait["payload"]["body"] == {"n": 1}  # the oldest kept call wins
    trail = await attempts(client, execution["id"])
    (superseded,) = [a for a in trail if a["outcome"] == "refused"]
    assert superseded["statusCode"] == 409
    assert "an earlier call resumed the wait" in superseded["reason"]


async def nonce(svc: Services, execution_id: int) -> str:
    """The execution's nonce (what its signed URLs carry)."""
    execution = await svc.store.get_execution(execution_id)
    assert execution is not None
    return execution.nonce


async def test_an_early_call_kept_before_this_fix_has_nothing_to_show_and_is_refused(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    execution = await create(client)  # a row as an older version kept it: no caller evidence
    assert await svc.store.record_early_resume(
        execution["id"],
        1,
        "POST",
        "",
        {"body": {}},
        svc.clock.now_ms(),
        nonce=await nonce(svc, execution["id"]),
    )
    webhook = {"httpMethod": "POST", "authentication": STRIPE}
    assert (await park(client, execution["id"], webhook=webhook))["status"] == "waiting"
    plain = await create(client)
    assert await svc.store.record_early_resume(
        plain["id"],
        1,
        "POST",
        "",
        {"body": {}},
        svc.clock.now_ms(),
        nonce=await nonce(svc, plain["id"]),
    )
    assert (await park(client, plain["id"], webhook={"httpMethod": "POST"}))["status"] == "running"


# Low 21: caller-controlled numbers and malformed headers are a 403, never a 500 -------------


@pytest.mark.parametrize(
    "value",
    [
        "t=" + "9" * 5000 + ",v1=" + "0" * 64,
        "t=\u00b2,v1=" + "0" * 64,
        "t=\u00b9\u00b2\u00b3,v1=" + "0" * 64,
        "t=1,t=2,v1=" + "0" * 64,
        "t=NOW,t=NOW,v1=GOOD",
        "garbage",
        "t=NOW",
        "v1=GOOD",
        "t=NOW,v1=GOOD,junk",
        "t=,v1=",
        "=,=,=",
        "",
    ],
)
async def test_malformed_stripe_signatures_are_refused_cleanly(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock, value: str
) -> None:
    execution = await create(client)
    wait = await park(
        client, execution["id"], webhook={"httpMethod": "POST", "authentication": STRIPE}
    )
    stamp = str(seconds(clock))
    good = stripe_header(stamp).split("v1=")[1]
    header = value.replace("NOW", stamp).replace("GOOD", good)
    sent = {b"Stripe-Signature": header.encode("latin-1")}  # raw bytes, as a server passes them
    response = await anon.post(wait["resumeUrl"], content=BODY, headers=sent)
    assert response.status_code in {401, 403}, response.text
    assert response.json()["message"] in {WRONG, "Authorization is required!"}
    assert (await get(client, execution["id"]))["status"] == "waiting"


async def test_stripe_signature_is_judged_by_the_gateway_clock_and_may_carry_two_v1(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> None:
    execution = await create(client)
    wait = await park(
        client, execution["id"], webhook={"httpMethod": "POST", "authentication": STRIPE}
    )
    stamp = seconds(clock)
    rolled = stripe_header(stamp, secret=b"old") + ",v1=" + stripe_header(stamp).split("v1=")[1]
    response = await anon.post(
        wait["resumeUrl"], content=BODY, headers={"Stripe-Signature": rolled}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("length", ["9" * 5000, "\u00b2", "\u00bd", "1" * 30])
async def test_a_strange_content_length_is_no_500(
    app: Any, client: httpx.AsyncClient, length: str
) -> None:
    execution = await create(client)
    wait = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    path, query = wait["resumeUrl"].removeprefix("http://127.0.0.1:5678").split("?")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope(path, query, [(b"content-length", length.encode("latin-1", "replace"))])
    await app(scope, receive, send)
    assert sent[0]["status"] < 500


# Medium 10: what is stored of a call is bounded ---------------------------------------------

HUGE = "x" * (4 * 1024 * 1024)


def _db_size(settings: Settings) -> int:
    folder = Path(settings.database_url.removeprefix("sqlite:///")).parent
    return sum(f.stat().st_size for f in folder.glob("waitgate.db*"))


async def test_huge_headers_are_stored_bounded(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, settings: Settings
) -> None:
    execution = await create(client)
    early = await create(client)
    wait = await park(client, execution["id"], webhook={"httpMethod": "POST"})
    before = _db_size(settings) if settings.database_url.startswith("sqlite") else 0
    junk_url = wait["resumeUrl"].split("?")[0] + "?signature=forged"
    for _ in range(5):  # unauthenticated: a forged signature
        bad = await anon.post(junk_url, headers={"user-agent": HUGE, "x-big": HUGE})
        assert bad.status_code == 401
    huge = {"user-agent": HUGE, "x-big": HUGE, **{f"x-h{i}": "y" * 8000 for i in range(40)}}
    assert (await anon.post(early["resumeUrl"], headers=huge)).status_code == 202
    assert (await park(client, early["id"], webhook={"httpMethod": "POST"}))["status"] == "running"
    assert (await anon.post(wait["resumeUrl"], headers=huge)).status_code == 200
    trail = await attempts(client, execution["id"])
    assert len(trail) == 6
    for attempt in trail:
        assert len(attempt["userAgent"]) <= 1024
    for eid in (execution["id"], early["id"]):
        stored = (await get(client, eid, includeData="true"))["data"]["waits"][0]["payload"]
        headers = stored["headers"]
        assert all(len(v) <= MAX_HEADER_VALUE + 64 for v in headers.values())
        assert headers["user-agent"].endswith("[truncated]")
        assert sum(len(k) + len(v) for k, v in headers.items()) <= 64 * 1024 + 200
    if settings.database_url.startswith("sqlite"):
        await client.post("/api/v1/executions/0/wait", json={})  # any write: the WAL holds it
        assert _db_size(settings) - before < 2 * 1024 * 1024


async def test_an_approval_keeps_a_bounded_user_agent(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    wait = await park(client, execution["id"], approval={"title": "Pay?"})
    sent = {"user-agent": HUGE}
    done = await anon.post(wait["approvalUrl"], data={"decision": "approve"}, headers=sent)
    assert done.status_code == 200
    payload = (await get(client, wait["id"], includeData="true"))["data"]["waits"][0]["payload"]
    assert len(payload["userAgent"]) == MAX_HEADER_VALUE


async def test_the_audit_trail_keeps_a_bounded_number_of_rows_per_execution(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    basic = {"type": "basic", "username": "u", "password": "p"}
    wait = await park(
        client, execution["id"], webhook={"httpMethod": "POST", "authentication": basic}
    )
    wrong = {"Authorization": _basic("u", "guess")}
    for _ in range(1000):
        assert (await anon.post(wait["resumeUrl"], headers=wrong)).status_code == 403
    right = await anon.post(wait["resumeUrl"], headers={"Authorization": _basic("u", "p")})
    assert right.status_code == 200
    trail = await attempts(client, execution["id"])
    refused = [a for a in trail if a["outcome"] == "refused"]
    assert len(refused) == AUDIT_ROWS_KEPT
    assert [a["outcome"] for a in trail if a["outcome"] != "refused"] == ["accepted"]


# The same, at the store: every backend judges and bounds alike -------------------------------

NOW = 1_800_000_000_000
BASIC_HOOK = WebhookSpec(methods=("POST",), auth=CallerAuth(kind="basic", username="u", secret="p"))


async def kept(store: Store, *authorization: str) -> int:
    execution = await store.create_execution(NewExecution("wf"), NOW)
    headers = tuple(("authorization", value) for value in authorization)
    evidence = CallEvidence(headers, b"{}", "127.0.0.1")
    eid, nonce = execution.id, execution.nonce
    body: dict[str, Any] = {"body": {}}
    assert await store.record_early_resume(eid, 1, "POST", "", body, NOW, evidence, nonce=nonce)
    return eid


async def test_the_store_judges_a_kept_call_by_the_parked_wait(store: Store) -> None:
    good = await store.park(
        await kept(store, _basic("u", "p")), None, BASIC_HOOK, NOW, kept_checker
    )
    assert good
    assert (good.early_resume_applied, good.refused_early) == (True, ())
    assert good.execution.status is Status.RUNNING
    # like a live call, the first of two Authorization headers is the one checked
    eid = await kept(store, _basic("u", "guess"), _basic("u", "p"))
    forged = await store.park(eid, None, BASIC_HOOK, NOW, kept_checker)
    assert forged
    ((_, refusal),) = forged.refused_early
    assert (refusal.status, refusal.message) == (403, WRONG)
    assert forged.early_resume_discarded
    assert forged.execution.status is Status.WAITING
    unchecked = await store.park(await kept(store, _basic("u", "p")), None, BASIC_HOOK, NOW)
    assert unchecked  # no checks handed in: a wait that checks callers refuses
    assert [refusal for _, refusal in unchecked.refused_early] == [NOTHING_TO_CHECK]
    assert unchecked.execution.status is Status.WAITING


async def test_the_store_keeps_the_most_recent_audit_rows_per_outcome(store: Store) -> None:
    eid = (await store.create_execution(NewExecution("wf"), NOW)).id

    def attempt(n: int, outcome: AttemptOutcome) -> ResumeAttempt:
        return ResumeAttempt(eid, 1, NOW + n, "POST", 403, outcome, f"try {n}", "::1", HUGE)

    await store.record_resume_attempts([attempt(0, "accepted")])
    for start in range(0, 1000, 250):
        await store.record_resume_attempts(
            [attempt(n, "refused") for n in range(start, start + 250)]
        )
    trail = await store.resume_attempts(eid)
    refused = [a for a in trail if a.outcome == "refused"]
    assert [a.reason for a in refused] == [f"try {n}" for n in range(800, 1000)]
    assert [a.outcome for a in trail if a.outcome != "refused"] == ["accepted"]
    assert all(len(a.user_agent or "") <= MAX_AUDIT_TEXT for a in trail)
