"""Credentials: API keys (generation, hashing, cache), Bearer JWTs, scopes, the check per route."""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from starlette.requests import Request

from gateway.http import ApiError

if TYPE_CHECKING:
    from gateway.clock import Clock
    from gateway.config import Settings
    from gateway.domain import ApiKey
    from gateway.jwt_auth import JwtVerifier
    from persistence.base import Store

API_KEY_HEADER = "X-N8N-API-KEY"
KEY_PREFIX = "wg_"
KEY_AS_BEARER = (
    f"This is an API key: send it in the {API_KEY_HEADER} header, not as Authorization Bearer "
    "(which takes a JWT)."
)
NO_JWT = (
    f"This gateway takes no Bearer tokens (JWTs are not configured); send an API key in the "
    f"{API_KEY_HEADER} header."
)


class Scope(StrEnum):
    """What a key may do: n8n's scope names, plus ``execution:write`` for the engine API, the
    event scopes (sources, and events read or published) and ``admin`` for all."""

    EXECUTION_LIST = "execution:list"
    EXECUTION_READ = "execution:read"
    EXECUTION_DELETE = "execution:delete"
    EXECUTION_RETRY = "execution:retry"
    EXECUTION_STOP = "execution:stop"
    EXECUTION_REVEAL = "execution:reveal"
    EXECUTION_WRITE = "execution:write"
    EXECUTION_TAGS_LIST = "executionTags:list"
    EXECUTION_TAGS_UPDATE = "executionTags:update"
    TAG_READ = "tag:read"
    TAG_WRITE = "tag:write"
    EVENT_SOURCE_READ = "eventSource:read"
    EVENT_SOURCE_WRITE = "eventSource:write"
    EVENT_READ = "event:read"
    EVENT_WRITE = "event:write"
    CHANNEL_READ = "channel:read"
    CHANNEL_WRITE = "channel:write"
    ADMIN = "admin"


SCOPES: tuple[str, ...] = tuple(scope.value for scope in Scope)
"""Every scope name, as keys store them."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's scopes and the project it is bound to, if any (a JWT may carry
    scope names we do not know; they grant nothing)."""

    key_id: int
    scopes: frozenset[str]
    project_id: str | None

    def allows(self, scope: Scope) -> bool:
        """True if the key has ``scope`` or ``admin``."""
        return Scope.ADMIN in self.scopes or scope in self.scopes


def generate_key() -> str:
    """A new random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """How a key is stored: keys are long and random, so a plain SHA-256 is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_scopes(scopes: tuple[str, ...]) -> None:
    """Reject scope names we do not know."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")


class KeyCache:
    """Live API keys by hash, kept for ``ttl_ms`` so most requests skip the database.

    A revoked key keeps working for at most ``ttl_ms`` in a process that saw it just before.
    Unknown keys are never cached, so guessing costs a lookup each time and fills nothing.
    """

    def __init__(self, store: Store, clock: Clock, ttl_ms: int = 2000, size: int = 10_000) -> None:
        self._store = store
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._size = size
        self._keys: OrderedDict[str, tuple[ApiKey, int]] = OrderedDict()

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The live key with this hash."""
        now = self._clock.now_ms()
        cached = self._keys.get(key_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await self._store.find_api_key(key_hash)
        if found is None:
            self._keys.pop(key_hash, None)
            return None
        self._keys[key_hash] = (found, now + self._ttl_ms)
        self._keys.move_to_end(key_hash)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return found


class Authenticator:
    """Checks a request's credentials: an API key in ``X-N8N-API-KEY`` or a Bearer JWT.

    The API key wins when both are sent. A Bearer token is refused (401) when no JWT key is
    configured, exactly like an invalid one, with a ``hint`` to use ``X-N8N-API-KEY`` when no
    JWT is configured or the token is one of our API keys.
    """

    def __init__(self, keys: KeyCache, jwt: JwtVerifier | None) -> None:
        self._keys = keys
        self._jwt = jwt

    async def by_key_hash(self, key_hash: str) -> Principal | None:
        """The caller a stored key hash stands for (the dashboard's session), if still live."""
        found = await self._keys.find_api_key(key_hash)
        if found is None:
            return None
        return Principal(found.id, frozenset(found.scopes), found.project_id)

    async def authenticate(self, request: Request, scope: Scope) -> Principal:
        """The caller, or n8n's 401/403 answers (403 only for a known caller lacking ``scope``)."""
        principal = await self._principal(request)
        if not principal.allows(scope):
            raise ApiError(403, "Forbidden")
        return principal

    async def _principal(self, request: Request) -> Principal:
        key = request.headers.get(API_KEY_HEADER)
        if key:
            found = await self._keys.find_api_key(hash_key(key))
            if found is None:
                raise ApiError(401, "Unauthorized")
            return Principal(found.id, frozenset(found.scopes), found.project_id)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            claims = None if self._jwt is None else self._jwt.verify(token.strip())
            if claims is None:
                raise ApiError(401, "Unauthorized", hint=self._bearer_hint(token.strip()))
            return Principal(0, claims.scopes, claims.project_id)
        raise ApiError(401, f"'{API_KEY_HEADER}' header required")

    def _bearer_hint(self, token: str) -> str | None:
        """Why a refused Bearer token may be the wrong door (never anything about the token's
        own validity)."""
        if token.startswith(KEY_PREFIX):
            return KEY_AS_BEARER
        return NO_JWT if self._jwt is None else None


def jwt_verifier(settings: Settings) -> JwtVerifier | None:
    """The Bearer JWT verifier the settings describe, or ``None``. PyJWT and cryptography
    (about 20 MB resident) are imported only when a JWT secret or public key is configured."""
    if settings.jwt_secret is None and settings.jwt_public_key is None:
        return None
    from gateway.jwt_auth import JwtVerifier  # noqa: PLC0415 - loaded only when configured

    return JwtVerifier.from_settings(settings)
