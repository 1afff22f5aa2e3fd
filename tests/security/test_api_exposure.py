"""What the API shows and to whom: masked payloads, signed URLs, tags across projects, retries,
list filter caps, and the operational secrets (metrics token, admin key file, key length, JWT).

Security review of issue 11, findings 4, 5, 12, 13, 14 and parts of 23.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.config import Secret, Settings
from gateway.domain import ExecutionQuery, NewExecution, Retried, Status, Unchanged
from gateway.errors import ConfigError
from gateway.services import Services
from persistence.base import Store
from tests.api.test_public_data import key_client
from tests.api.test_ui import csrf, signed_in
from tests.conftest import create, make_key, park, running_gateway
from tests.process import GatewayProcess

CALLBACK = "http://127.0.0.1:9/callback"  # nothing listens: deliveries stay in the outbox
BASIC_PASSWORD = "basic-pass-7c1e"
HEADER_SECRET = "header-secret-91ab"
HMAC_SECRET = "hmac-secret-55d0"
CALLER_SECRETS = {
    "Cookie": "session=cookie-secret-3f2a",
    "X-Hub-Signature-256": "sha256=hub-secret-0b7d",
    "X-Api-Key": "api-key-secret-6e4c",
}


@pytest.fixture
async def gateway(
    settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """A gateway whose executions may call back to 127.0.0.1:9."""
    allowed = dataclasses.replace(settings, callback_allowed_origins=("http://127.0.0.1:9",))
    async with running_gateway(allowed, clock) as (app, admin):
        yield app, admin


def services_of(app: Starlette) -> Services:
    found: Services = app.state.services
    return found


@contextlib.asynccontextmanager
async def dashboard(ui: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in dashboard client, closed afterwards."""
    try:
        yield ui
    finally:
        await ui.aclose()


def leaked(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


async def resumed_through_guarded_waits(admin: httpx.AsyncClient) -> tuple[int, list[str]]:
    """An execution resumed through a Basic wait and a header wait; the secrets involved."""
    execution = await create(admin, callbackUrl=CALLBACK)
    eid: int = execution["id"]
    basic = {"type": "basic", "username": "ops", "password": BASIC_PASSWORD}
    parked = await park(admin, eid, webhook={"httpMethod": "POST", "authentication": basic})
    answer = await admin.post(
        parked["resumeUrl"],
        json={"ok": 1},
        auth=("ops", BASIC_PASSWORD),
        headers={**CALLER_SECRETS, "X-N8N-API-KEY": ""},
    )
    assert answer.status_code == 200, answer.text
    header = {"type": "header", "headerName": "X-Token", "headerValue": HEADER_SECRET}
    parked = await park(admin, eid, webhook={"httpMethod": "POST", "authentication": header})
    answer = await admin.post(
        parked["resumeUrl"], json={"ok": 2}, headers={"X-Token": HEADER_SECRET}
    )
    assert answer.status_code == 200, answer.text
    hmac = {"type": "hmac", "headerName": "X-Sig", "secret": HMAC_SECRET}
    await park(admin, eid, webhook={"httpMethod": "POST", "authentication": hmac})
    basic_header = base64.b64encode(f"ops:{BASIC_PASSWORD}".encode()).decode()
    secrets = [BASIC_PASSWORD, basic_header, HEADER_SECRET, HMAC_SECRET]
    secrets += [v.split("=", 1)[1] for v in CALLER_SECRETS.values() if "=" in v]
    secrets.append(CALLER_SECRETS["X-Api-Key"])
    return eid, secrets


# finding 4: every read surface masks payloads the same way -----------------------------------


async def test_deliveries_mask_the_callback_payload_like_include_data(
    gateway: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, admin = gateway
    eid, secrets = await resumed_through_guarded_waits(admin)
    svc = services_of(app)
    async with (
        await key_client(app, await make_key(svc, "execution:read")) as reader,
        await key_client(app, await make_key(svc, "execution:read", "execution:reveal")) as seer,
    ):
        answer = await reader.get(f"/api/v1/executions/{eid}/deliveries")
        assert answer.status_code == 200
        deliveries = sorted(
            answer.json()["data"], key=lambda d: d["payload"]["data"]["wait"]["seq"]
        )
        assert len(deliveries) == 2
        assert leaked(answer.text, secrets) == []
        headers = deliveries[0]["payload"]["data"]["payload"]["headers"]
        assert headers["authorization"] == headers["cookie"] == "**redacted**"
        assert deliveries[1]["payload"]["data"]["payload"]["headers"]["x-token"] == "**redacted**"
        assert deliveries[0]["payload"]["data"]["payload"]["body"] == {"ok": 1}

        everything = {"redactExecutionData": "true"}
        redacted = await reader.get(f"/api/v1/executions/{eid}/deliveries", params=everything)
        bodies = [d["payload"]["data"]["payload"]["body"] for d in redacted.json()["data"]]
        assert bodies == [{"ok": "**redacted**"}] * 2
        reveal = {"redactExecutionData": "false"}
        refused = await reader.get(f"/api/v1/executions/{eid}/deliveries", params=reveal)
        assert refused.status_code == 403
        shown = await seer.get(f"/api/v1/executions/{eid}/deliveries", params=reveal)
        assert BASIC_PASSWORD not in shown.text  # the header carries it base64-encoded
        assert leaked(shown.text, secrets) != []


async def test_no_read_surface_shows_a_waits_secrets_or_a_callers_credentials(
    gateway: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, admin = gateway
    eid, secrets = await resumed_through_guarded_waits(admin)
    reads = [
        admin.get(f"/api/v1/executions/{eid}", params={"includeData": "true"}),
        admin.get("/api/v1/executions", params={"includeData": "true"}),
        admin.get(f"/api/v1/executions/{eid}/deliveries"),
        admin.get(f"/api/v1/executions/{eid}/resume-attempts"),
        admin.get(f"/api/v1/executions/{eid}/custom-data"),
    ]
    for answer in await asyncio.gather(*reads):
        assert answer.status_code == 200, answer.text
        assert leaked(answer.text, secrets) == [], answer.url
    async with dashboard(await signed_in(app, admin.headers["X-N8N-API-KEY"])) as ui:
        page = await ui.get(f"/ui/executions/{eid}")
        assert page.status_code == 200
        assert leaked(page.text, secrets) == []
    revealed = await admin.get(
        f"/api/v1/executions/{eid}", params={"includeData": "true", "redactExecutionData": "false"}
    )
    assert HMAC_SECRET not in revealed.text  # a wait's own secrets are never data


# finding 5: signed URLs only for principals that may resume ---------------------------------


async def waiting_everywhere(admin: httpx.AsyncClient) -> list[int]:
    """A running execution, one at an approval page, one at a form, one at a webhook."""
    running = await create(admin)
    approval = await create(admin)
    await park(admin, approval["id"], approval={"title": "Wire 1,000,000 EUR?"})
    form = await create(admin)
    fields = [{"name": "iban", "label": "IBAN"}]
    await park(admin, form["id"], form={"title": "Account", "fields": fields})
    hook = await create(admin)
    await park(admin, hook["id"], webhook={"httpMethod": "POST"})
    return [running["id"], approval["id"], form["id"], hook["id"]]


async def test_read_only_keys_never_receive_signed_urls(
    gateway: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, admin = gateway
    ids = await waiting_everywhere(admin)
    failed = await create(admin)
    await admin.post(f"/api/v1/executions/{failed['id']}/finish", json={"status": "error"})
    svc = services_of(app)
    scopes = ("execution:read", "execution:list", "execution:retry", "execution:reveal")
    async with await key_client(app, await make_key(svc, *scopes)) as reader:
        answers = [await reader.get(f"/api/v1/executions/{eid}") for eid in ids]
        answers += [await reader.get("/api/v1/executions", params={"includeData": "true"})]
        answers += [await reader.get("/api/v1/executions")]
        answers += [await reader.post(f"/api/v1/executions/{failed['id']}/retry")]
        for answer in answers:
            assert answer.status_code == 200, answer.text
            assert "signature=" not in answer.text, answer.url
            assert "Url" not in answer.text
    writer_key = await make_key(svc, "execution:read", "execution:list", "execution:write")
    async with await key_client(app, writer_key) as writer:
        one = (await writer.get(f"/api/v1/executions/{ids[1]}?includeData=true")).json()
        assert "signature=" in one["approvalUrl"]
        assert "signature=" in one["resumeUrl"]
        listed = (await writer.get("/api/v1/executions?includeData=true")).json()["data"]
        shown = {e["id"]: e for e in listed}
        assert "signature=" in shown[ids[2]]["resumeFormUrl"]
        assert "signature=" in shown[ids[3]]["resumeUrl"]
        running = (await writer.get(f"/api/v1/executions/{ids[0]}")).json()
        assert "signature=" in running["resumeUrl"]


async def test_the_dashboard_shows_no_signed_url_to_a_read_only_session(
    gateway: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, admin = gateway
    ids = await waiting_everywhere(admin)
    key = await make_key(services_of(app), "execution:read", "execution:list")
    async with dashboard(await signed_in(app, key)) as ui:
        pages = [await ui.get("/ui")] + [await ui.get(f"/ui/executions/{eid}") for eid in ids]
        for page in pages:
            assert page.status_code == 200
            assert "signature=" not in page.text


# finding 12: a project's key manages only its own tags ----------------------------------------


async def test_a_project_key_cannot_rename_or_delete_tags_other_projects_use(
    gateway: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, admin = gateway
    svc = services_of(app)
    tag_scopes = (
        "tag:read",
        "tag:write",
        "execution:write",
        "executionTags:list",
        "executionTags:update",
    )
    async with (
        await key_client(app, await make_key(svc, *tag_scopes, project="a")) as a,
        await key_client(app, await make_key(svc, *tag_scopes, project="b")) as b,
    ):
        shared = (await admin.post("/api/v1/tags", json={"name": "finance"})).json()
        mine = (await a.post("/api/v1/tags", json={"name": "a-only"})).json()
        used = (await a.post("/api/v1/tags", json={"name": "a-made"})).json()
        theirs = await create(b)
        tagged = await b.put(f"/api/v1/executions/{theirs['id']}/tags", json=[{"id": used["id"]}])
        assert tagged.status_code == 200
        for tag in (shared, used):
            renamed = await a.put(f"/api/v1/tags/{tag['id']}", json={"name": "pwned"})
            assert renamed.status_code == 403, renamed.text
            assert "another project" in renamed.json()["message"]
            deleted = await a.delete(f"/api/v1/tags/{tag['id']}")
            assert deleted.status_code == 403, deleted.text
        assert (await b.delete(f"/api/v1/tags/{mine['id']}")).status_code == 403
        names = {t["name"] for t in (await admin.get("/api/v1/tags")).json()["data"]}
        assert names == {"finance", "a-only", "a-made"}
        assert (await b.get(f"/api/v1/executions/{theirs['id']}/tags")).json()[0]["name"] == (
            "a-made"
        )
        own = await create(a)
        await a.put(f"/api/v1/executions/{own['id']}/tags", json=[{"id": mine["id"]}])
        renamed = await a.put(f"/api/v1/tags/{mine['id']}", json={"name": "a-renamed"})
        assert renamed.status_code == 200
        assert renamed.json()["name"] == "a-renamed"
        assert (await a.delete(f"/api/v1/tags/{mine['id']}")).status_code == 200
        assert (await a.delete(f"/api/v1/tags/{mine['id']}")).status_code == 404
    assert (await admin.put(f"/api/v1/tags/{used['id']}", json={"name": "x"})).status_code == 200
    assert (await admin.delete(f"/api/v1/tags/{shared['id']}")).status_code == 200


# finding 13: one retry per execution ---------------------------------------------------------


async def failed_execution(admin: httpx.AsyncClient) -> int:
    execution = await create(admin, callbackUrl=CALLBACK)
    finished = await admin.post(
        f"/api/v1/executions/{execution['id']}/finish", json={"status": "error"}
    )
    assert finished.status_code == 200
    eid: int = execution["id"]
    return eid


async def retries_of(svc: Services, eid: int) -> list[int]:
    found = await svc.store.list_executions(ExecutionQuery(limit=250, include_running=True))
    return [e.id for e in found if e.retry_of == eid]


async def test_concurrent_retries_make_one_execution_and_one_callback(
    gateway: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, admin = gateway
    svc = services_of(app)
    eid = await failed_execution(admin)
    answers = await asyncio.gather(
        *(admin.post(f"/api/v1/executions/{eid}/retry") for _ in range(3))
    )
    assert [a.status_code for a in answers] == [200, 200, 200]
    (retry_id,) = {a.json()["id"] for a in answers}
    assert await retries_of(svc, eid) == [retry_id]
    deliveries, _ = await svc.store.execution_deliveries(retry_id)
    assert [d.event.value for d in deliveries] == ["execution.retry"]
    again = await admin.post(f"/api/v1/executions/{eid}/retry")
    assert again.status_code == 200
    assert again.json()["id"] == retry_id
    assert again.json()["retryOf"] == eid
    done = await admin.post(f"/api/v1/executions/{retry_id}/finish", json={"status": "success"})
    assert done.status_code == 200
    after_success = await admin.post(f"/api/v1/executions/{eid}/retry")
    assert after_success.json()["id"] == retry_id
    assert await retries_of(svc, eid) == [retry_id]


async def test_a_double_click_on_retry_in_the_dashboard_makes_one_retry(
    gateway: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, admin = gateway
    svc = services_of(app)
    eid = await failed_execution(admin)
    async with dashboard(await signed_in(app, admin.headers["X-N8N-API-KEY"])) as ui:
        token = csrf((await ui.get(f"/ui/executions/{eid}")).text)
        clicks = await asyncio.gather(
            *(ui.post(f"/ui/executions/{eid}/retry", data={"csrf": token}) for _ in range(2))
        )
    targets = {c.headers["location"].split("?")[0] for c in clicks}
    (retry_id,) = await retries_of(svc, eid)
    assert targets == {f"/ui/executions/{retry_id}"}
    via_api = await admin.post(f"/api/v1/executions/{eid}/retry")
    assert via_api.json()["id"] == retry_id


async def test_the_store_retries_only_finished_failures_and_finds_the_retry_under_way(
    store: Store,
) -> None:
    running = await store.create_execution(NewExecution("wf", callback_url=CALLBACK), 1)
    assert isinstance(await store.retry_execution(running.id, 2), Unchanged)
    assert isinstance(await store.retry_execution(999_999, 2), Unchanged)
    assert await store.finish(running.id, Status.CANCELED, None, None, 3)
    first = await store.retry_execution(running.id, 4)
    assert first
    assert first.created
    assert (first.execution.retry_of, first.execution.mode) == (running.id, "retry")
    again = await store.retry_execution(running.id, 5)
    assert again == Retried(first.execution, created=False)
    assert await store.finish(first.execution.id, Status.ERROR, None, None, 6)
    second = await store.retry_execution(running.id, 7)
    assert second
    assert second.created
    assert second.execution.id != first.execution.id
    deliveries, _ = await store.execution_deliveries(second.execution.id)
    assert [d.event.value for d in deliveries] == ["execution.retry"]


async def test_the_store_lets_a_project_manage_only_tags_nobody_else_uses(store: Store) -> None:
    shared = await store.create_tag("t1", "shared", 1)
    own = await store.create_tag("t2", "own", 1, "a")
    assert shared is not None
    assert own is not None
    assert own.project_id == "a"
    assert await store.tag_manageable("t1", None)
    assert not await store.tag_manageable("t1", "a")
    assert await store.tag_manageable("t2", "a")
    other = await store.create_execution(NewExecution("wf", project_id="b"), 1)
    assert await store.set_execution_tags(other.id, ("t2",))
    assert not await store.tag_manageable("t2", "a")
    assert await store.rename_tag("t2", "renamed", 2, "a") is None
    assert await store.delete_tag("t2", "a") is None
    assert await store.delete_tag("t1", "b") is None
    renamed = await store.rename_tag("t2", "renamed", 2)
    assert renamed is not None
    assert renamed.name == "renamed"
    assert await store.delete_tag("t1") == shared


# finding 14: list filters are capped ---------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ([(f"customData[k{i}]", "v") for i in range(1001)], "at most 10 customData filters"),
        ([("customData[k]", str(i)) for i in range(11)], "at most 10 customData filters"),
        ([("tags", ",".join(f"t{i}" for i in range(1001)))], "at most 50 tags"),
    ],
)
async def test_too_many_list_filters_are_a_400_naming_the_limit(
    gateway: tuple[Starlette, httpx.AsyncClient], params: list[tuple[str, str]], fragment: str
) -> None:
    app, admin = gateway
    answer = await admin.get("/api/v1/executions", params=tuple(params))
    assert answer.status_code == 400, answer.text
    assert fragment in answer.json()["message"]
    async with dashboard(await signed_in(app, admin.headers["X-N8N-API-KEY"])) as ui:
        assert (await ui.get("/ui", params=tuple(params))).status_code in {200, 400}


async def test_ten_filters_still_work(gateway: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, admin = gateway
    data = {f"k{i}": "v" for i in range(10)}
    execution = await create(admin, customData=data)
    params = [("status", "running"), *((f"customData[{k}]", v) for k, v in data.items())]
    found = (await admin.get("/api/v1/executions", params=tuple(params))).json()["data"]
    assert [e["id"] for e in found] == [execution["id"]]


async def test_too_many_tags_on_an_execution_is_a_400(
    gateway: tuple[Starlette, httpx.AsyncClient],
) -> None:
    _, admin = gateway
    execution = await create(admin)
    body = [{"id": f"t{i}"} for i in range(1001)]
    answer = await admin.put(f"/api/v1/executions/{execution['id']}/tags", json=body)
    assert answer.status_code == 400
    assert "at most 50 tags" in answer.json()["message"]


# finding 23: metrics token, admin key file, signing key length, JWT audience -----------------


async def test_metrics_need_the_token_when_one_is_set(
    settings: Settings, clock: ManualClock
) -> None:
    token = "metrics-token-" + "x" * 20
    guarded = dataclasses.replace(settings, metrics_token=Secret(token))
    async with running_gateway(guarded, clock) as (_, admin):
        assert (await admin.get("/metrics")).status_code == 401
        wrong = await admin.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json() == {"message": "Unauthorized", "code": 401}
        right = await admin.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200
        assert "waitgate_" in right.text
    async with running_gateway(settings, clock) as (_, admin):
        assert (await admin.get("/metrics")).status_code == 200


@pytest.mark.parametrize("key", ["", "short", "x" * 31])
def test_short_signing_keys_are_refused_at_start(settings: Settings, key: str) -> None:
    weak = dataclasses.replace(settings, secret_keys=(Secret("k" * 40), Secret(key)))
    with pytest.raises(ConfigError, match=r"WAITGATE_SECRET_KEYS.*at least 32 characters"):
        create_app(weak)
    with pytest.raises(ConfigError, match="at least 32 characters"):
        Settings.from_env({"WAITGATE_SECRET_KEYS": f"{'k' * 40},{key or 'x'}"}).with_secret_keys()


async def test_jwt_without_an_audience_is_warned_about(
    settings: Settings, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    jwt = dataclasses.replace(settings, jwt_secret=Secret("j" * 40), jwt_algorithms=("HS256",))
    with caplog.at_level(logging.WARNING, logger="waitgate"):
        async with running_gateway(jwt, clock):
            pass
        warned = [r for r in caplog.records if getattr(r, "action", "") == "jwt.no_audience"]
        assert len(warned) == 1
        assert "WAITGATE_JWT_AUDIENCE" in warned[0].getMessage()
        caplog.clear()
        async with running_gateway(dataclasses.replace(jwt, jwt_audience="waitgate"), clock):
            pass
        assert not [r for r in caplog.records if getattr(r, "action", "") == "jwt.no_audience"]


async def test_the_first_admin_key_goes_only_to_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "admin.key"
    gateway = GatewayProcess(tmp_path, {"WAITGATE_ADMIN_KEY_FILE": str(key_file)})
    await asyncio.to_thread(gateway.start)
    try:
        key = key_file.read_text().strip()
        assert key.startswith("wg_")
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        assert gateway.admin_keys() == []
        printed = gateway.output() + gateway.logs()
        assert key not in printed
        assert str(key_file) in printed
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            answer = await client.get("/api/v1/executions", headers={"X-N8N-API-KEY": key})
            assert answer.status_code == 200
    finally:
        await asyncio.to_thread(gateway.stop)
