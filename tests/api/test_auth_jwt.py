"""Bearer JWTs: HS256 and RS256, issuer, audience, expiry, scopes, project."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.app import create_app
from gateway.auth import NO_JWT
from gateway.clock import ManualClock
from gateway.config import Secret, Settings
from gateway.errors import ConfigError
from gateway.jwt_auth import JwtVerifier
from tests.conftest import BASE_URL

SECRET = "jwt-test-secret-with-enough-length-32"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC = (
    RSA_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def token(key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    body = {"sub": "engine", "exp": int(time.time()) + 60, "iss": "idp", "aud": "waitgate"}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


async def client_for(settings: Settings, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield http


@pytest.fixture
async def hs256(settings: Settings, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    configured = dataclasses.replace(
        settings, jwt_secret=Secret(SECRET), jwt_issuer="idp", jwt_audience="waitgate"
    )
    async for http in client_for(configured, clock):
        yield http


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_hs256_token_with_scopes(hs256: httpx.AsyncClient) -> None:
    writer = bearer(token(scope="execution:write execution:read"))
    created = await hs256.post("/api/v1/executions", json={"workflowId": "w"}, headers=writer)
    assert created.status_code == 201
    read = await hs256.get(f"/api/v1/executions/{created.json()['id']}", headers=writer)
    assert read.status_code == 200
    listing = await hs256.get("/api/v1/executions", headers=writer)
    assert (listing.status_code, listing.json()) == (403, {"message": "Forbidden", "code": 403})
    as_list = bearer(token(scope=["execution:list"]))
    assert (await hs256.get("/api/v1/executions", headers=as_list)).status_code == 200


@pytest.mark.parametrize(
    "bad",
    [
        token(scope="admin", iss="someone-else"),
        token(scope="admin", aud="another-service"),
        token(scope="admin", exp=int(time.time()) - 10),
        token(scope="admin", exp=None),
        token(key="a-different-secret-of-enough-length", scope="admin"),
        token(key=RSA_KEY, algorithm="RS256", scope="admin"),
        "not.a.jwt",
    ],
)
async def test_bad_tokens_are_401(hs256: httpx.AsyncClient, bad: str) -> None:
    response = await hs256.get("/api/v1/executions", headers=bearer(bad))
    assert (response.status_code, response.json()) == (
        401,
        {"message": "Unauthorized", "code": 401},
    )


async def test_project_claim_binds_the_token(hs256: httpx.AsyncClient) -> None:
    admin = bearer(token(scope="admin"))
    mine = bearer(token(scope="admin", project="p9"))
    other = (await hs256.post("/api/v1/executions", json={"workflowId": "w"}, headers=admin)).json()
    own = (await hs256.post("/api/v1/executions", json={"workflowId": "w"}, headers=mine)).json()
    assert own["projectId"] == "p9"
    assert (await hs256.get(f"/api/v1/executions/{other['id']}", headers=mine)).status_code == 404
    listed = await hs256.get("/api/v1/executions", params={"status": "running"}, headers=mine)
    assert [e["id"] for e in listed.json()["data"]] == [own["id"]]


async def test_rs256_public_key(settings: Settings, clock: ManualClock) -> None:
    configured = dataclasses.replace(settings, jwt_public_key=Secret(RSA_PUBLIC))
    async for http in client_for(configured, clock):
        good = bearer(
            token(key=RSA_KEY, algorithm="RS256", scope="execution:list", iss=None, aud=None)
        )
        assert (await http.get("/api/v1/executions", headers=good)).status_code == 200
        forged = bearer(token(key=SECRET, algorithm="HS256", scope="admin"))
        assert (await http.get("/api/v1/executions", headers=forged)).status_code == 401


async def test_bearer_without_jwt_configured_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/executions",
        headers={"X-N8N-API-KEY": "", **bearer(token(scope="admin"))},
    )
    assert (response.status_code, response.json()) == (
        401,
        {"message": "Unauthorized", "code": 401, "hint": NO_JWT},
    )


def test_configuration_mistakes_are_refused(settings: Settings) -> None:
    both = dataclasses.replace(settings, jwt_secret=Secret("s"), jwt_public_key=Secret(RSA_PUBLIC))
    with pytest.raises(ConfigError, match="not both"):
        JwtVerifier.from_settings(both)
    mismatched = dataclasses.replace(settings, jwt_secret=Secret("s"), jwt_algorithms=("RS256",))
    with pytest.raises(ConfigError, match="do not fit"):
        JwtVerifier.from_settings(mismatched)
    missing_file = dataclasses.replace(settings, jwt_public_key=Secret("/no/such/key.pem"))
    with pytest.raises(ConfigError, match="PEM"):
        JwtVerifier.from_settings(missing_file)


def test_jwt_libraries_load_only_when_jwts_are_configured(tmp_path: Any) -> None:
    """PyJWT and cryptography cost ~20 MB resident: a gateway without JWTs never imports them."""
    import subprocess
    import sys

    script = f"""
import asyncio, dataclasses, sys
from pathlib import Path
from gateway.app import create_app

async def started(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass

from gateway.config import Secret, Settings
settings = Settings(database_url="sqlite:///{tmp_path}/w.db", public_url="http://127.0.0.1:1",
                    secret_keys=(Secret("k" * 32),), data_dir=Path("{tmp_path}"))
asyncio.run(started(settings))
assert "jwt" not in sys.modules and "cryptography" not in sys.modules, "loaded without JWTs"
asyncio.run(started(dataclasses.replace(settings, jwt_secret=Secret("s" * 32))))
assert "jwt" in sys.modules, "JWTs configured but PyJWT not loaded"
"""
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
