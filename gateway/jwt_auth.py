"""Bearer JWTs: verified with PyJWT against a shared secret (HS*) or a public key (RS/PS/ES/EdDSA).

Configuration (read once at start; a mistake stops the start with a ``ConfigError``):

- ``WAITGATE_JWT_SECRET``: the HMAC secret, at least as many bytes as the hash is long
  (32 for HS256, 48 for HS384, 64 for HS512; RFC 7518 §3.2). Held in a ``Secret``.
- ``WAITGATE_JWT_PUBLIC_KEY``: either the PEM text itself (``-----BEGIN PUBLIC KEY-----`` or a
  ``-----BEGIN CERTIFICATE-----``; ``\\n`` written as two characters is accepted for one-line
  environment files) or the path of a file holding it. The file is read and the key parsed at
  start, so a broken key fails the start instead of every request.
- ``WAITGATE_JWT_ALGORITHMS``: comma-separated; default HS256 for a secret, and for a public key
  the one its type implies (RSA → RS256, P-256 → ES256, P-384 → ES384, P-521 → ES512,
  Ed25519/Ed448 → EdDSA). Algorithms that do not fit the key are refused, so a public key can
  never be used as an HMAC secret.
- ``WAITGATE_JWT_ISSUER`` / ``WAITGATE_JWT_AUDIENCE``: when set, ``iss`` / ``aud`` must match.

A token must carry ``exp`` (checked against the system clock, as the issuer's is). Scopes come
from the ``scope`` claim (space-separated string, or a list of strings), the project from an
optional ``project`` claim (a non-empty string). A claim of any other type makes the token
invalid rather than being guessed at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import AllowedPublicKeys

from gateway.config import Secret, Settings
from gateway.errors import ConfigError

log = logging.getLogger("waitgate.auth")

HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
SYMMETRIC: tuple[str, ...] = tuple(HMAC_MIN_BYTES)
ASYMMETRIC: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES256K",
    "ES384",
    "ES512",
    "EdDSA",
)
_EC_ALGORITHM = {
    "secp256r1": "ES256",
    "secp256k1": "ES256K",
    "secp384r1": "ES384",
    "secp521r1": "ES512",
}


@dataclass(frozen=True)
class Claims:
    """What a verified token grants."""

    scopes: frozenset[str]
    project_id: str | None


class JwtVerifier:
    """Checks Bearer tokens with one configured key."""

    def __init__(
        self,
        key: Secret | AllowedPublicKeys,
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
        """The verifier the settings describe, or ``None`` if JWTs are not configured.

        Without ``WAITGATE_JWT_AUDIENCE`` a token minted for another service by the same issuer
        is accepted too; that is allowed, but warned about at start.
        """
        verifier = cls._configured(settings)
        if verifier is not None and settings.jwt_audience is None:
            log.warning(
                "JWT bearer tokens are accepted without an audience check; set "
                "WAITGATE_JWT_AUDIENCE so tokens minted for other services are refused",
                extra={"action": "jwt.no_audience"},
            )
        return verifier

    @classmethod
    def _configured(cls, settings: Settings) -> JwtVerifier | None:
        if settings.jwt_secret is not None and settings.jwt_public_key is not None:
            raise ConfigError("set WAITGATE_JWT_SECRET or WAITGATE_JWT_PUBLIC_KEY, not both")
        if settings.jwt_secret is not None:
            algorithms = settings.jwt_algorithms or ("HS256",)
            _check_fit(algorithms, SYMMETRIC, "WAITGATE_JWT_SECRET (an HMAC secret)")
            _check_secret_length(settings.jwt_secret, algorithms)
            return cls(settings.jwt_secret, algorithms, settings.jwt_issuer, settings.jwt_audience)
        if settings.jwt_public_key is not None:
            key = load_public_key(_pem(settings.jwt_public_key))
            algorithms = settings.jwt_algorithms or (default_algorithm(key),)
            _check_fit(algorithms, ASYMMETRIC, "WAITGATE_JWT_PUBLIC_KEY")
            for name in algorithms:
                try:
                    jwt.get_algorithm_by_name(name).prepare_key(key)
                except (jwt.InvalidKeyError, TypeError):
                    raise ConfigError(
                        f"WAITGATE_JWT_ALGORITHMS {name} does not fit the configured public key"
                    ) from None
            return cls(key, algorithms, settings.jwt_issuer, settings.jwt_audience)
        return None

    def verify(self, token: str) -> Claims | None:
        """The token's claims, or ``None`` if it is invalid, expired or not for us."""
        key = self._key.reveal() if isinstance(self._key, Secret) else self._key
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as exc:
            log.info("bearer token refused: %s", exc, extra={"action": "auth.jwt_refused"})
            return None
        found = _claims(claims)
        if found is None:
            log.info(
                "bearer token refused: scope or project claim of the wrong type",
                extra={"action": "auth.jwt_refused"},
            )
        return found


def _claims(claims: dict[str, Any]) -> Claims | None:
    """Scopes and project of a verified token; ``None`` if either claim has the wrong type."""
    raw = claims.get("scope", "")
    if isinstance(raw, str):
        scopes = raw.split()
    elif isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        scopes = raw
    else:
        return None
    project = claims.get("project")
    if project is not None and (not isinstance(project, str) or not project):
        return None
    return Claims(scopes=frozenset(scopes), project_id=project)


def _check_fit(algorithms: tuple[str, ...], allowed: tuple[str, ...], what: str) -> None:
    wrong = [a for a in algorithms if a not in allowed]
    if wrong:
        raise ConfigError(
            f"WAITGATE_JWT_ALGORITHMS {', '.join(wrong)} do not fit {what}; "
            f"allowed: {', '.join(allowed)}"
        )


def _check_secret_length(secret: Secret, algorithms: tuple[str, ...]) -> None:
    needed = max(HMAC_MIN_BYTES[a] for a in algorithms)
    if len(secret.reveal().encode()) < needed:
        raise ConfigError(
            f"WAITGATE_JWT_SECRET must be at least {needed} bytes long for "
            f"{', '.join(algorithms)} (RFC 7518 section 3.2)"
        )


def _pem(value: Secret) -> str:
    """The PEM text: given inline, or as the path of a file that holds it."""
    text = value.reveal().strip()
    if text.startswith("-----BEGIN"):
        return text.replace("\\n", "\n")
    path = Path(text)
    if not path.is_file():
        raise ConfigError(
            "WAITGATE_JWT_PUBLIC_KEY must be PEM text or the path of a PEM file; "
            "it is neither (no such file)"
        )
    return path.read_text()


def load_public_key(pem: str) -> AllowedPublicKeys:
    """A public key from PEM text (a public key or a certificate); ``ConfigError`` otherwise."""
    data = pem.strip().encode()
    try:
        if data.startswith(b"-----BEGIN CERTIFICATE-----"):
            loaded: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            "WAITGATE_JWT_PUBLIC_KEY is not a PEM public key or certificate "
            "(a private key does not belong here)"
        ) from None
    kinds = (
        rsa.RSAPublicKey,
        ec.EllipticCurvePublicKey,
        ed25519.Ed25519PublicKey,
        ed448.Ed448PublicKey,
    )
    if not isinstance(loaded, kinds):
        raise ConfigError("WAITGATE_JWT_PUBLIC_KEY must be an RSA, EC, Ed25519 or Ed448 key")
    return loaded


def default_algorithm(key: AllowedPublicKeys) -> str:
    """The algorithm a key of this type signs with, when none is configured."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        found = _EC_ALGORITHM.get(key.curve.name)
        if found is None:
            raise ConfigError(f"WAITGATE_JWT_PUBLIC_KEY uses an unsupported curve {key.curve.name}")
        return found
    return "EdDSA"
