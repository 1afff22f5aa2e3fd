"""Bearer JWTs: verified with PyJWT against a shared secret (HS256) or a public key (RS/ES).

Scopes come from the ``scope`` claim (space-separated, or a list), the project from an optional
``project`` claim. ``exp`` is required; ``iss`` and ``aud`` are checked when configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jwt

from gateway.config import Secret, Settings
from gateway.errors import ConfigError

SYMMETRIC: tuple[str, ...] = ("HS256", "HS384", "HS512")
ASYMMETRIC: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "EdDSA",
)


@dataclass(frozen=True)
class Claims:
    """What a verified token grants."""

    subject: str
    scopes: frozenset[str]
    project_id: str | None


class JwtVerifier:
    """Checks Bearer tokens with one configured key."""

    def __init__(
        self,
        key: Secret,
        algorithms: tuple[str, ...],
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self._key = key
        self._algorithms = list(algorithms)
        self._issuer = issuer
        self._audience = audience

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtVerifier | None:
        """The verifier the settings describe, or ``None`` if JWTs are not configured."""
        if settings.jwt_secret is not None and settings.jwt_public_key is not None:
            raise ConfigError("set WAITGATE_JWT_SECRET or WAITGATE_JWT_PUBLIC_KEY, not both")
        if settings.jwt_secret is not None:
            algorithms = settings.jwt_algorithms or ("HS256",)
            allowed = SYMMETRIC
            key = settings.jwt_secret
        elif settings.jwt_public_key is not None:
            algorithms = settings.jwt_algorithms or ("RS256", "ES256")
            allowed = ASYMMETRIC
            key = Secret(_pem(settings.jwt_public_key))
        else:
            return None
        wrong = [a for a in algorithms if a not in allowed]
        if wrong:
            raise ConfigError(f"WAITGATE_JWT_ALGORITHMS {wrong} do not fit the configured key")
        return cls(key, algorithms, settings.jwt_issuer, settings.jwt_audience)

    def verify(self, token: str) -> Claims | None:
        """The token's claims, or ``None`` if it is invalid, expired or not for us."""
        try:
            claims = jwt.decode(
                token,
                self._key.reveal(),
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError:
            return None
        raw = claims.get("scope", "")
        scopes = raw.split() if isinstance(raw, str) else [str(s) for s in raw]
        project = claims.get("project")
        return Claims(
            subject=str(claims.get("sub", "")),
            scopes=frozenset(scopes),
            project_id=None if project is None else str(project),
        )


def _pem(value: Secret) -> str:
    """The PEM text: given inline, or as the path of a file that holds it."""
    text = value.reveal().strip()
    if text.startswith("-----BEGIN"):
        return text
    path = Path(text)
    if not path.is_file():
        raise ConfigError("WAITGATE_JWT_PUBLIC_KEY must be PEM text or the path of a PEM file")
    return path.read_text()
