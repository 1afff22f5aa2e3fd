"""API keys: generation, hashing, scopes, and the check each API route makes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from gateway.http import ApiError

if TYPE_CHECKING:
    from persistence.base import Store

API_KEY_HEADER = "X-N8N-API-KEY"
KEY_PREFIX = "wg_"

SCOPES = (
    "execution:list",
    "execution:read",
    "execution:delete",
    "execution:retry",
    "execution:stop",
    "execution:reveal",
    "execution:write",
    "executionTags:list",
    "executionTags:update",
    "tag:read",
    "tag:write",
    "admin",
)
"""n8n's scope names, plus ``execution:write`` for the engine API and ``admin`` for all."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's scopes and the project it is bound to, if any."""

    key_id: int
    scopes: frozenset[str]
    project_id: str | None

    def allows(self, scope: str) -> bool:
        """True if the key has ``scope`` or ``admin``."""
        return "admin" in self.scopes or scope in self.scopes


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


async def authenticate(request: Request, store: Store, scope: str) -> Principal:
    """The caller of an API route, or n8n's 401/403 answers."""
    key = request.headers.get(API_KEY_HEADER)
    if not key:
        raise ApiError(401, f"'{API_KEY_HEADER}' header required")
    found = await store.find_api_key(hash_key(key))
    if found is None:
        raise ApiError(401, "Unauthorized")
    principal = Principal(found.id, frozenset(found.scopes), found.project_id)
    if not principal.allows(scope):
        raise ApiError(403, "Forbidden")
    return principal
