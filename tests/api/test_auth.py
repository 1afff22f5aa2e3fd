"""Who may call the API: n8n's 401/403 answers, scopes per route, and Bearer JWT configuration."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.auth import NO_JWT, SCOPES
from gateway.clock import ManualClock
from gateway.config import Secret, Settings
from gateway.errors import ConfigError
from gateway.jwt_auth import JwtVerifier
from gateway.services import Services
from tests.conftest import BASE_URL, make_key

UNAUTHORIZED = {"message": "Unauthorized", "code": 401}
FORBIDDEN = {"message": "Forbidden", "code": 403}
HEADER_REQUIRED = {"message": "'X-N8N-API-KEY' header required", "code": 401}

ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/api/v1/executions", "execution:list"),
    ("POST", "/api/v1/executions", "execution:write"),
    ("POST", "/api/v1/executions/stop", "execution:stop"),
    ("GET", "/api/v1/executions/999", "execution:read"),
    ("DELETE", "/api/v1/executions/999", "execution:delete"),
    ("POST", "/api/v1/executions/999/stop", "execution:stop"),
    ("POST", "/api/v1/executions/999/retry", "execution:retry"),
    ("GET", "/api/v1/executions/999/tags", "executionTags:list"),
    ("PUT", "/api/v1/executions/999/tags", "executionTags:update"),
    ("POST", "/api/v1/executions/999/wait", "execution:write"),
    ("POST", "/api/v1/executions/999/finish", "execution:write"),
    ("POST", "/api/v1/executions/999/resume", "execution:write"),
    ("POST", "/api/v1/executions/999/respond", "execution:write"),
    ("GET", "/api/v1/executions/999/custom-data", "execution:read"),
    ("PATCH", "/api/v1/executions/999/custom-data", "execution:write"),
    ("PUT", "/api/v1/executions/999/custom-data", "execution:write"),
    ("GET", "/api/v1/executions/999/custom-data/k", "execution:read"),
    ("GET", "/api/v1/tags", "tag:read"),
    ("POST", "/api/v1/tags", "tag:write"),
    ("GET", "/api/v1/tags/nope", "tag:read"),
    ("PUT", "/api/v1/tags/nope", "tag:write"),
    ("DELETE", "/api/v1/tags/nope", "tag:write"),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no credentials unless a request adds them."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as the_client:
        yield the_client


def key_header(key: str) -> dict[str, str]:
    return {"X-N8N-API-KEY": key}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    body: dict[str, Any] | None = None if method in {"GET", "DELETE"} else {}
    return await http.request(method, path, json=body, headers=headers)


# API keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES, ids=ROUTE_IDS)
async def test_every_route_wants_the_api_key_header(
    http: httpx.AsyncClient, method: str, path: str, scope: str
) -> None:
    missing = await call(http, method, path, {})
    assert (missing.status_code, missing.json()) == (401, HEADER_REQUIRED)
    basic = await call(http, method, path, {"Authorization": "Basic dTpw"})
    assert (basic.status_code, basic.json()) == (401, HEADER_REQUIRED)
    wrong = await call(http, method, path, key_header("wg_not-a-key"))
    assert (wrong.status_code, wrong.json()) == (401, UNAUTHORIZED)


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES, ids=ROUTE_IDS)
async def test_every_route_wants_its_scope(
    http: httpx.AsyncClient, svc: Services, method: str, path: str, scope: str
) -> None:
    everything_else = [s for s in SCOPES if s not in {scope, "admin"}]
    without = await make_key(svc, *everything_else)
    refused = await call(http, method, path, key_header(without))
    assert (refused.status_code, refused.json()) == (403, FORBIDDEN)
    only = await make_key(svc, scope)
    allowed = await call(http, method, path, key_header(only))
    assert allowed.status_code not in {401, 403}, allowed.text
    admin = await make_key(svc, "admin")
    assert (await call(http, method, path, key_header(admin))).status_code == allowed.status_code


async def test_a_revoked_key_is_unauthorized(
    http: httpx.AsyncClient, svc: Services, clock: ManualClock
) -> None:
    key = await make_key(svc, "execution:list")
    (record,) = [k for k in await svc.store.list_api_keys() if k.prefix == key[:10]]
    assert await svc.store.revoke_api_key(record.id, clock.now_ms())
    clock.advance(60_000)  # past the key cache
    response = await http.get("/api/v1/executions", headers=key_header(key))
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


async def test_the_api_key_wins_over_a_bearer_token(http: httpx.AsyncClient, svc: Services) -> None:
    key = await make_key(svc, "execution:list")
    both = {**key_header(key), **bearer("not.a.token")}
    assert (await http.get("/api/v1/executions", headers=both)).status_code == 200
    invalid_key = {**key_header("wg_wrong"), **bearer("not.a.token")}
    response = await http.get("/api/v1/executions", headers=invalid_key)
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


async def test_bearer_is_unauthorized_when_no_jwt_key_is_configured(
    http: httpx.AsyncClient,
) -> None:
    token = jwt.encode({"scope": "admin", "exp": time.time() + 60}, "k" * 32, algorithm="HS256")
    response = await http.get("/api/v1/executions", headers=bearer(token))
    assert (response.status_code, response.json()) == (401, {**UNAUTHORIZED, "hint": NO_JWT})
    empty = await http.get("/api/v1/executions", headers={"Authorization": "Bearer "})
    assert (empty.status_code, empty.json()) == (401, HEADER_REQUIRED)


# Bearer JWTs --------------------------------------------------------------------------

SECRET = "s" * 32
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def token(key: Any = SECRET, algorithm: str = "HS256", /, **claims: Any) -> str:
    body: dict[str, Any] = {"sub": "engine", "exp": int(time.time()) + 300}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


@dataclasses.dataclass
class Gate:
    """An app configured for JWTs and a client for it."""

    http: httpx.AsyncClient

    async def status(self, token: str, path: str = "/api/v1/executions") -> int:
        return (await self.http.get(path, headers=bearer(token))).status_code


GateFactory = Callable[..., AbstractAsyncContextManager[Gate]]


@pytest.fixture
def jwt_gate(settings: Settings, clock: ManualClock) -> GateFactory:
    """Start an app with these settings changed, and a client without credentials for it."""

    @contextlib.asynccontextmanager
    async def start(**changes: Any) -> AsyncIterator[Gate]:
        application = create_app(dataclasses.replace(settings, **changes), clock=clock)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                yield Gate(client)

    return start


async def test_hs256_with_issuer_and_audience(jwt_gate: GateFactory) -> None:
    async with jwt_gate(
        jwt_secret=Secret(SECRET), jwt_issuer="https://idp", jwt_audience="waitgate"
    ) as gate:
        good: dict[str, Any] = {"iss": "https://idp", "aud": "waitgate", "scope": "execution:list"}
        assert await gate.status(token(**good)) == 200
        assert await gate.status(token(**{**good, "aud": ["other", "waitgate"]})) == 200
        assert await gate.status(token(**{**good, "iss": "https://evil"})) == 401
        assert await gate.status(token(**{**good, "iss": None})) == 401
        assert await gate.status(token(**{**good, "aud": "other"})) == 401
        assert await gate.status(token(**{**good, "aud": None})) == 401
        assert await gate.status(token(**{**good, "exp": int(time.time()) - 5})) == 401
        assert await gate.status(token(**{**good, "nbf": int(time.time()) + 600})) == 401
        assert await gate.status(token(**{**good, "scope": "execution:read"})) == 403
        response = await gate.http.get(
            "/api/v1/executions", headers=bearer(token(**{**good, "exp": 1}))
        )
        assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"scope": "execution:read execution:list"}, 200),
        ({"scope": ["execution:list"]}, 200),
        ({"scope": "admin"}, 200),
        ({}, 403),
        ({"scope": {"admin": True}}, 401),
        ({"scope": 7}, 401),
        ({"scope": ["admin", 7]}, 401),
        ({"scope": "admin", "project": 5}, 401),
        ({"scope": "admin", "project": ""}, 401),
    ],
)
async def test_scope_and_project_claims_of_the_wrong_type_make_the_token_invalid(
    jwt_gate: GateFactory, claims: dict[str, Any], expected: int
) -> None:
    async with jwt_gate(jwt_secret=Secret(SECRET)) as gate:
        assert await gate.status(token(**claims)) == expected


async def test_a_token_with_a_project_claim_is_bound_to_that_project(jwt_gate: GateFactory) -> None:
    async with jwt_gate(jwt_secret=Secret(SECRET)) as gate:
        admin = bearer(token(scope="admin"))
        bound = bearer(token(scope="admin", project="p1"))
        body = {"workflowId": "w"}
        theirs = (await gate.http.post("/api/v1/executions", json=body, headers=admin)).json()
        mine = (await gate.http.post("/api/v1/executions", json=body, headers=bound)).json()
        assert (theirs["projectId"], mine["projectId"]) == (None, "p1")
        other = await gate.http.post(f"/api/v1/executions/{theirs['id']}/stop", headers=bound)
        assert other.status_code == 404
        page = await gate.http.get(
            "/api/v1/executions", params={"status": "running"}, headers=bound
        )
        assert [e["id"] for e in page.json()["data"]] == [mine["id"]]


def handmade(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token built by hand, as an attacker would (PyJWT refuses to make these)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def test_rs256_from_a_pem_file_refuses_forgeries(
    jwt_gate: GateFactory, tmp_path: Path
) -> None:
    path = tmp_path / "jwt.pem"
    path.write_text(pem(RSA_KEY))
    async with jwt_gate(jwt_public_key=Secret(str(path))) as gate:
        assert await gate.status(token(RSA_KEY, "RS256", scope="admin")) == 200
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert await gate.status(token(other_key, "RS256", scope="admin")) == 401
        assert await gate.status(token(RSA_KEY, "PS256", scope="admin")) == 401  # not configured
        claims = {"scope": "admin", "exp": int(time.time()) + 300}
        unsigned = handmade({"alg": "none", "typ": "JWT"}, claims, None)
        assert await gate.status(unsigned) == 401
        # the classic confusion: the public key's PEM text used as an HS256 secret
        confused = handmade({"alg": "HS256", "typ": "JWT"}, claims, pem(RSA_KEY).encode())
        assert await gate.status(confused) == 401


async def test_es256_is_the_default_for_a_p256_key_given_inline_on_one_line(
    jwt_gate: GateFactory,
) -> None:
    one_line = pem(EC_KEY).strip().replace("\n", "\\n")
    async with jwt_gate(jwt_public_key=Secret(one_line)) as gate:
        assert await gate.status(token(EC_KEY, "ES256", scope="execution:list")) == 200
        assert await gate.status(token(RSA_KEY, "RS256", scope="execution:list")) == 401


async def test_a_certificate_is_accepted_as_the_public_key(jwt_gate: GateFactory) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(RSA_KEY.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2036, 1, 1, tzinfo=datetime.UTC))
        .sign(RSA_KEY, hashes.SHA256())
    )
    text = certificate.public_bytes(serialization.Encoding.PEM).decode()
    async with jwt_gate(jwt_public_key=Secret(text)) as gate:
        assert await gate.status(token(RSA_KEY, "RS256", scope="admin")) == 200


def test_settings_read_the_jwt_variables_and_hide_the_secret(tmp_path: Path) -> None:
    env = {
        "WAITGATE_JWT_SECRET": SECRET,
        "WAITGATE_JWT_ALGORITHMS": "HS256, HS384",
        "WAITGATE_JWT_ISSUER": "https://idp",
        "WAITGATE_JWT_AUDIENCE": "waitgate",
        "WAITGATE_MAX_DISPLAY_BYTES": "2048",
    }
    settings = Settings.from_env(env)
    assert settings.jwt_secret == Secret(SECRET)
    assert SECRET not in repr(settings)
    assert settings.jwt_algorithms == ("HS256", "HS384")
    assert (settings.jwt_issuer, settings.jwt_audience) == ("https://idp", "waitgate")
    assert settings.max_display_bytes == 2048
    assert Settings.from_env({}).jwt_secret is None
    assert Settings.from_env({}).max_display_bytes == 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"jwt_secret": Secret("short")}, "at least 32 bytes"),
        ({"jwt_secret": Secret(SECRET), "jwt_algorithms": ("HS512",)}, "at least 64 bytes"),
        ({"jwt_secret": Secret(SECRET), "jwt_algorithms": ("RS256",)}, "do not fit"),
        ({"jwt_secret": Secret(SECRET), "jwt_algorithms": ("none",)}, "do not fit"),
        ({"jwt_public_key": Secret(pem(RSA_KEY)), "jwt_algorithms": ("HS256",)}, "do not fit"),
        ({"jwt_public_key": Secret(pem(RSA_KEY)), "jwt_algorithms": ("ES256",)}, "does not fit"),
        ({"jwt_public_key": Secret("-----BEGIN PUBLIC KEY-----\nxx\n")}, "not a PEM public"),
        ({"jwt_public_key": Secret("no/such/file.pem")}, "neither"),
        ({"jwt_secret": Secret(SECRET), "jwt_public_key": Secret(pem(RSA_KEY))}, "not both"),
    ],
)
def test_jwt_configuration_mistakes_stop_the_start(
    settings: Settings, changes: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        JwtVerifier.from_settings(dataclasses.replace(settings, **changes))


def test_a_private_key_or_an_unsupported_key_is_refused(settings: Settings) -> None:
    private = RSA_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ConfigError, match="private key does not belong here"):
        JwtVerifier.from_settings(dataclasses.replace(settings, jwt_public_key=Secret(private)))
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_pem = (
        ed.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    verifier = JwtVerifier.from_settings(
        dataclasses.replace(settings, jwt_public_key=Secret(ed_pem))
    )
    assert verifier is not None
    claims = verifier.verify(token(ed, "EdDSA", scope="admin", project="p2"))
    assert claims is not None
    assert (claims.scopes, claims.project_id) == (frozenset({"admin"}), "p2")
    assert verifier.verify(token(EC_KEY, "ES256", scope="admin")) is None
    assert JwtVerifier.from_settings(settings) is None
