"""Signed URLs: only failures are limited, a token has one spelling, and a URL is bound to the
database that issued it (issue 11, findings 3, 19, 20 and 22)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.clock import ManualClock
from gateway.config import Settings
from gateway.services import Services
from tests.backends import truncate_postgres
from tests.conftest import create, get, park, running_gateway

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
JUNK_TOKEN = "1.0123456789abcdef0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
APPROVAL = {"title": "Pay 9,000 EUR?"}
FORM = {"title": "Sign up", "fields": [{"label": "Name", "name": "name"}]}
PAGE_URL = {"approval": "approvalUrl", "form": "resumeFormUrl"}


def split(url: str) -> tuple[str, str]:
    """A signed URL as (path, signature)."""
    parts = urlsplit(url)
    (token,) = parse_qs(parts.query)["signature"]
    return parts.path, token


async def waiting(client: httpx.AsyncClient, kind: str = "resume") -> dict[str, Any]:
    """A waiting execution whose wait is a plain webhook, an approval or a form."""
    execution = await create(client)
    fields: dict[str, dict[str, Any]] = {
        "resume": {"webhook": {"httpMethod": "POST"}},
        "approval": {"approval": APPROVAL},
        "form": {"form": FORM},
    }
    return await park(client, execution["id"], **fields[kind])


def signed_url(wait: dict[str, Any], kind: str) -> str:
    """The URL of ``kind`` (resume, approval, form) the gateway gave for the wait."""
    url: str = wait["resumeUrl" if kind == "resume" else PAGE_URL[kind]]
    return url


async def call(anon: httpx.AsyncClient, kind: str, path: str, token: str) -> httpx.Response:
    """Use a signed URL as its holder would: POST a resume, open a page."""
    if kind == "resume":
        return await anon.post(path, params={"signature": token}, json={"ok": True})
    return await anon.get(path, params={"signature": token})


async def attempts(client: httpx.AsyncClient, execution_id: int) -> list[dict[str, Any]]:
    """The execution's audit trail."""
    response = await client.get(f"/api/v1/executions/{execution_id}/resume-attempts")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


# --- finding 3: failed-signature limits never refuse a correctly signed call ----------------


@pytest.mark.parametrize("kind", ["resume", "approval", "form"])
async def test_junk_against_an_execution_does_not_block_its_signed_url(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, kind: str
) -> None:
    wait = await waiting(client, kind)
    path, _ = split(signed_url(wait, kind))
    # the default limit: 10 failed checks a minute per execution, from any address
    codes = [(await call(anon, kind, path, JUNK_TOKEN)).status_code for _ in range(11)]
    assert codes == [401] * 10 + [429]
    assert (await call(anon, kind, path, JUNK_TOKEN)).headers["retry-after"]
    assert (await call(anon, kind, *split(signed_url(wait, kind)))).status_code == 200


async def test_junk_to_unknown_ids_from_the_proxy_address_does_not_block_resume_urls(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    # No trusted proxy is configured: every caller shares the proxy's (here 127.0.0.1) address.
    hook, approval = await waiting(client), await waiting(client, "approval")
    codes = [
        (await anon.post(f"/webhook-waiting/{9_000_000 + n}?signature=1.x")).status_code
        for n in range(31)
    ]
    assert codes == [401] * 30 + [429]  # the default: 30 failed checks a minute per address
    assert (await anon.get(f"/approval/{9_999_999}?signature=1.x")).status_code == 429
    assert (await anon.get(approval["approvalUrl"])).status_code == 200
    assert (await anon.post(hook["resumeUrl"], json={"ok": True})).status_code == 200
    assert (await get(client, hook["id"]))["status"] == "running"


# --- finding 20: refused page signatures are limited and audited ----------------------------


@pytest.mark.parametrize("kind", ["approval", "form"])
async def test_a_refused_page_link_is_audited(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, kind: str
) -> None:
    wait = await waiting(client, kind)
    path, _ = split(signed_url(wait, kind))
    refused = await anon.get(path, params={"signature": JUNK_TOKEN}, headers={"User-Agent": "p"})
    assert refused.status_code == 401
    assert "This link is not valid." in refused.text
    (row,) = await attempts(client, wait["id"])
    assert (row["statusCode"], row["outcome"], row["method"]) == (401, "refused", "GET")
    assert (row["reason"], row["seq"], row["userAgent"]) == ("Invalid token", 0, "p")


# --- finding 19: one spelling per token ------------------------------------------------------


def spellings(path: str, token: str) -> dict[str, tuple[str, str]]:
    """Other spellings of a valid (path, token) that lenient base64 decoding accepted."""
    head, _, signature = token.rpartition(".")
    last = B64URL.index(signature[-1])
    sibling = next(B64URL[i] for i in range(last & ~3, (last & ~3) + 4) if i != last)
    execution = path.split("/")[2]
    return {
        "padding": (path, token + "="),
        "double padding": (path, token + "=="),
        "junk appended": (path, token + "!!!!"),
        "junk inside": (path, f"{head}.{signature[:10]}!!!!{signature[10:]}"),
        "newlines inside": (path, f"{head}.{signature[:10]}\n\n\n\n{signature[10:]}"),
        "low bits of the last character": (path, f"{head}.{signature[:-1]}{sibling}"),
        "leading zero of the wait number": (path, "0" + token),
        "leading zero of the execution id": (path.replace(execution, "0" + execution, 1), token),
    }


@pytest.mark.parametrize("kind", ["resume", "approval", "form"])
async def test_only_the_canonical_spelling_of_a_token_is_accepted(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, kind: str
) -> None:
    wait = await waiting(client, kind)
    path, token = split(signed_url(wait, kind))
    for name, (other_path, other_token) in spellings(path, token).items():
        response = await call(anon, kind, other_path, other_token)
        assert response.status_code == 401, name
    assert (await get(client, wait["id"]))["status"] == "waiting"
    assert (await call(anon, kind, path, token)).status_code == 200


async def test_idempotent_replays_are_keyed_by_the_canonical_call(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    execution = await create(client)
    wait = await park(client, execution["id"], webhook={"httpMethod": "POST", "suffix": "cb"})
    path, token = split(wait["resumeUrl"])
    key = {"Idempotency-Key": "order-17"}
    first = await anon.post(path, params={"signature": token}, headers=key)
    assert first.status_code == 200
    # the same call spelled with a trailing slash is the same call: replayed, not a 409
    again = await anon.post(path + "/", params={"signature": token}, headers=key)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"


# --- finding 22: a URL is bound to the execution that it was issued for ----------------------


async def reset_database(settings: Settings, tmp_path: Path) -> Settings:
    """A database reset (PostgreSQL) or a second deployment on a fresh file (SQLite), with the
    same signing keys: new executions get ids the old database used already."""
    if settings.database_url.startswith("sqlite"):
        return dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path / 'other.db'}")
    await truncate_postgres(settings.database_url)
    return settings


async def test_a_url_from_before_a_database_reset_does_not_resume_a_new_execution(
    settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    async with running_gateway(settings, clock) as (_, before):
        old = await waiting(before, "approval")
    async with running_gateway(await reset_database(settings, tmp_path), clock) as (app, after):
        new = await waiting(after, "approval")
        assert new["id"] == old["id"]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as anon:
            refused = await anon.post(old["resumeUrl"], json={"forged": True})
            assert (refused.status_code, refused.json()["message"]) == (401, "Invalid token")
            assert (await anon.get(old["approvalUrl"])).status_code == 401
            page = await anon.post(old["approvalUrl"], data={"decision": "approve"})
            assert page.status_code == 401
            assert (await get(after, new["id"]))["status"] == "waiting"
            trail = await attempts(after, new["id"])
            assert [(a["statusCode"], a["reason"]) for a in trail] == [(401, "Invalid token")] * 3
            assert (await anon.get(new["approvalUrl"])).status_code == 200
            assert (await anon.post(new["resumeUrl"])).status_code == 200


async def test_an_early_resume_from_another_database_is_not_kept(
    settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    async with running_gateway(settings, clock) as (_, before):
        old = await create(before)  # running: its resumeUrl names the next wait
    async with running_gateway(await reset_database(settings, tmp_path), clock) as (app, after):
        new = await create(after)
        assert new["id"] == old["id"]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as anon:
            assert (await anon.post(old["resumeUrl"])).status_code == 401
            assert (await anon.post(new["resumeUrl"])).status_code == 202


async def forget_nonce(settings: Settings, execution_id: int) -> None:
    """Make an execution look as if it was created before its table had nonces."""
    statement = "UPDATE executions SET nonce = '' WHERE id = "
    if settings.database_url.startswith("sqlite"):
        with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as conn:
            conn.execute(statement + "?", (execution_id,))
        return
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(statement + "$1", execution_id)
    finally:
        await conn.close()


async def test_urls_without_a_nonce_work_only_for_executions_from_before_nonces(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, settings: Settings
) -> None:
    legacy, current = await waiting(client), await waiting(client)
    await forget_nonce(settings, legacy["id"])
    for wait in (legacy, current):
        without_nonce = svc.signer.token(wait["id"], "", 1)
        assert without_nonce.count(".") == 1
        path, with_nonce = split(wait["resumeUrl"])
        assert with_nonce.count(".") == 2
        assert (await anon.post(path, params={"signature": without_nonce})).status_code == (
            200 if wait is legacy else 401
        )
    assert (await anon.post(current["resumeUrl"])).status_code == 200


async def test_every_execution_and_every_retry_gets_its_own_nonce(
    client: httpx.AsyncClient, svc: Services
) -> None:
    first, second = await create(client), await create(client)
    stopped = await client.post(f"/api/v1/executions/{first['id']}/stop")
    assert stopped.status_code == 200
    retry = await client.post(f"/api/v1/executions/{first['id']}/retry")
    assert retry.status_code == 200, retry.text
    nonces = []
    for execution_id in (first["id"], second["id"], retry.json()["id"]):
        found = await svc.store.get_execution(execution_id)
        assert found is not None
        nonces.append(found.nonce)
    assert len(set(nonces)) == 3
    assert all(len(n) == 32 and int(n, 16) >= 0 for n in nonces)
