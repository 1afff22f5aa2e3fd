"""How an event source proves that an event is its provider's: the ``verify`` declaration.

One msgspec struct per ``type`` (a tagged union decoded from the API's camelCase JSON,
unknown fields refused), one check per type written exactly as the provider documents it,
and one entry, ``verify``, that answers ``None`` (admitted) or a ``Refusal``: 401 when the
credential is missing, 403 when it is wrong, malformed, stale or from an address not allowed.
Nothing here raises on what a caller sends; every comparison of a secret is constant-time.

Secrets are plain strings inside the structs (so a body decodes with one ``msgspec`` call and
the store keeps it as JSON), but ``repr`` and ``str`` never show them and ``redacted`` gives
the form an API answer may show.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from gateway.credentials import (
    ALGORITHMS,
    IP_REFUSED,
    MAX_SIGNATURES,
    any_equal,
    basic,
    equal,
    fresh,
    ip_allowed,
    required,
    stripe_parts,
    wrong,
)
from gateway.domain import HmacAlgorithm, Refusal
from gateway.errors import InvalidInput

HIDDEN = "**********"
MAX_SECRETS = 5
"""Secrets accepted at once by one source: the current one and those being rotated out."""
MAX_SECRET_LENGTH = 1024
MAX_ALLOWED_IPS = 100
WHSEC = "whsec_"
WHSEC_KEY_BYTES = (24, 64)
"""Standard Webhooks: a secret is the base64 of 24 to 64 random bytes after ``whsec_``."""
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
"""An HTTP field name (RFC 9110 token), at most 100 characters."""

Tolerance = Annotated[int, Meta(ge=1, le=86_400)]
"""How far (seconds, either way) a signed timestamp may be from now."""
Secrets = str | list[str]
"""One secret, or several while one is rotated out (any one of them admits)."""
HmacEncoding = Literal["hex", "base64"]


def _secrets(value: Secrets, where: str) -> tuple[str, ...]:
    listed = (value,) if isinstance(value, str) else tuple(value)
    if not 1 <= len(listed) <= MAX_SECRETS:
        raise InvalidInput(f"verify.{where} must hold 1 to {MAX_SECRETS} secrets")
    if not all(0 < len(secret) <= MAX_SECRET_LENGTH for secret in listed):
        raise InvalidInput(f"verify.{where} must be 1 to {MAX_SECRET_LENGTH} characters")
    return listed


def _whsec_key(secret: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret (padding optional, as the reference library
    accepts); ``InvalidInput`` otherwise."""
    encoded = secret.removeprefix(WHSEC)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    low, high = WHSEC_KEY_BYTES
    if not secret.startswith(WHSEC) or not low <= len(key) <= high:
        raise InvalidInput(f"verify.secret must look like whsec_<base64 of {low} to {high} bytes>")
    return key


def _header_name(name: str, where: str) -> None:
    if not HEADER_NAME.fullmatch(name):
        raise InvalidInput(f"verify.{where} must be an HTTP header name (at most 100 characters)")


class _Verify(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    rename="camel",
    tag_field="type",
):
    """What every ``verify`` type has: an optional IP allow-list (CIDR or single addresses),
    checked before the credential."""

    allowed_ips: tuple[str, ...] = ()

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Fields ``repr`` and ``redacted`` hide."""
    EVENT_ID_PATH: ClassVar[str | None] = None
    """Where the provider puts its delivery id, when the source names no ``eventIdPath``."""

    def __post_init__(self) -> None:
        """The allow-list holds 0 to ``MAX_ALLOWED_IPS`` networks."""
        if len(self.allowed_ips) > MAX_ALLOWED_IPS:
            raise InvalidInput(f"verify.allowedIps may list at most {MAX_ALLOWED_IPS} networks")
        for network in self.allowed_ips:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise InvalidInput(f"verify.allowedIps: {exc}") from None

    def _shown(self) -> Iterator[tuple[str, Any]]:
        for name in self.__struct_fields__:
            yield name, HIDDEN if name in self.SECRET_FIELDS else getattr(self, name)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._shown())
        return f"{type(self).__name__}({fields})"

    __str__ = __repr__

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """What rich shows: secrets hidden too."""
        return list(self._shown())


class StandardWebhooksVerify(_Verify, frozen=True, tag="standardWebhooks"):
    """Standard Webhooks (Svix and every provider on the spec): ``webhook-id``,
    ``webhook-timestamp``, ``webhook-signature: v1,<base64> [v1,<base64> …]``, HMAC-SHA256 of
    ``{id}.{timestamp}.{body}`` keyed with the bytes after ``whsec_``."""

    secret: Secrets
    tolerance_seconds: Tolerance = 300

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("secret",)
    EVENT_ID_PATH: ClassVar[str | None] = "header:webhook-id"

    def __post_init__(self) -> None:
        """Every secret is ``whsec_`` and base64."""
        super().__post_init__()
        for secret in _secrets(self.secret, "secret"):
            _whsec_key(secret)

    def hmac_keys(self) -> list[bytes]:
        """The HMAC keys, newest first."""
        return [_whsec_key(secret) for secret in _secrets(self.secret, "secret")]


class StripeVerify(_Verify, frozen=True, tag="stripe"):
    """Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]``, HMAC-SHA256 of
    ``{t}.{body}`` keyed with the whole ``whsec_…`` string, as Stripe's libraries do."""

    secret: Secrets
    tolerance_seconds: Tolerance = 300

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("secret",)
    EVENT_ID_PATH: ClassVar[str | None] = "id"

    def __post_init__(self) -> None:
        """Every secret is a ``whsec_`` endpoint secret (not an API key pasted by mistake)."""
        super().__post_init__()
        if not all(s.startswith(WHSEC) for s in _secrets(self.secret, "secret")):
            raise InvalidInput("verify.secret must be a Stripe endpoint secret (whsec_…)")


class GithubVerify(_Verify, frozen=True, tag="github"):
    """GitHub: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the body."""

    secret: Secrets

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("secret",)
    EVENT_ID_PATH: ClassVar[str | None] = "header:X-GitHub-Delivery"

    def __post_init__(self) -> None:
        """A secret is there."""
        super().__post_init__()
        _secrets(self.secret, "secret")


class SlackVerify(_Verify, frozen=True, tag="slack"):
    """Slack: ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature: v0=<hex>``, HMAC-SHA256 of
    ``v0:{timestamp}:{body}`` keyed with the signing secret."""

    signing_secret: Secrets
    tolerance_seconds: Tolerance = 300

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("signing_secret",)
    EVENT_ID_PATH: ClassVar[str | None] = "event_id"

    def __post_init__(self) -> None:
        """A signing secret is there."""
        super().__post_init__()
        _secrets(self.signing_secret, "signingSecret")


class HmacVerify(_Verify, frozen=True, tag="hmac"):
    """Any other HMAC of the raw body: ``header: <prefix><digest>``, the digest hex or
    base64."""

    header: str
    secret: Secrets
    algorithm: HmacAlgorithm = "sha256"
    encoding: HmacEncoding = "hex"
    prefix: Annotated[str, Meta(max_length=100)] = ""

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("secret",)

    def __post_init__(self) -> None:
        """A header name and a secret."""
        super().__post_init__()
        _header_name(self.header, "header")
        _secrets(self.secret, "secret")


class HeaderVerify(_Verify, frozen=True, tag="header"):
    """A shared secret sent as the value of a header."""

    header: str
    value: Annotated[str, Meta(min_length=1, max_length=MAX_SECRET_LENGTH)]

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("value",)

    def __post_init__(self) -> None:
        """A header name."""
        super().__post_init__()
        _header_name(self.header, "header")


class BasicVerify(_Verify, frozen=True, tag="basic"):
    """HTTP Basic authentication."""

    username: Annotated[str, Meta(min_length=1, max_length=200)]
    password: Annotated[str, Meta(min_length=1, max_length=MAX_SECRET_LENGTH)]

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("password",)

    def __post_init__(self) -> None:
        """A user name Basic can carry."""
        super().__post_init__()
        if ":" in self.username:
            raise InvalidInput("verify.username must not contain ':'")


class NoneVerify(_Verify, frozen=True, tag="none"):
    """No credential: only the IP allow-list, which must therefore list something."""

    def __post_init__(self) -> None:
        """``allowedIps`` is required."""
        super().__post_init__()
        if not self.allowed_ips:
            raise InvalidInput("verify.allowedIps must list at least one network for type none")


Verify = (
    StandardWebhooksVerify
    | StripeVerify
    | GithubVerify
    | SlackVerify
    | HmacVerify
    | HeaderVerify
    | BasicVerify
    | NoneVerify
)
"""A source's ``verify`` declaration; use it as a field type of a request body struct."""
VERIFY_TYPES = (
    "standardWebhooks",
    "stripe",
    "github",
    "slack",
    "hmac",
    "header",
    "basic",
    "none",
)
"""The ``type`` names, in the order the docs list them."""


def convert_verify(raw: Any) -> Verify:
    """A ``verify`` declaration from JSON-like builtins (a request's or the store's);
    ``InvalidInput`` naming the problem otherwise."""
    try:
        config: Verify = msgspec.convert(raw, type=Verify)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"verify: {exc}") from None
    return config


def decode_verify(data: bytes | str) -> Verify:
    """A ``verify`` declaration from JSON text; ``InvalidInput`` naming the problem otherwise."""
    try:
        config: Verify = msgspec.json.decode(data, type=Verify)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"verify: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"verify is not valid JSON: {exc}") from None
    return config


def redacted(config: Verify) -> dict[str, Any]:
    """The declaration as an API answer shows it: secrets replaced by ``**********``."""
    shown: dict[str, Any] = msgspec.to_builtins(config)
    for field in msgspec.structs.fields(config):
        if field.name in config.SECRET_FIELDS:
            shown[field.encode_name] = HIDDEN
    return shown


def default_event_id_path(config: Verify) -> str | None:
    """Where the provider puts its delivery id (``eventIdPath`` when the source names none)."""
    return config.EVENT_ID_PATH


def _hmac(key: bytes, message: bytes, algorithm: HmacAlgorithm = "sha256") -> bytes:
    return hmac.new(key, message, ALGORITHMS[algorithm]).digest()


def _keys(secret: Secrets) -> list[bytes]:
    return [s.encode() for s in ((secret,) if isinstance(secret, str) else secret)]


def check_standard_webhooks(
    config: StandardWebhooksVerify, headers: Mapping[str, str], body: bytes, now: float
) -> Refusal | None:
    """Any ``v1`` signature of ``webhook-signature`` made with any of the secrets, and a
    ``webhook-timestamp`` within the tolerance either way."""
    message_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not (message_id and timestamp and signature):
        return required()
    entries = signature.split()
    if not fresh(timestamp, now, config.tolerance_seconds) or len(entries) > MAX_SIGNATURES:
        return wrong()
    given = [value for version, _, value in (e.partition(",") for e in entries) if version == "v1"]
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = [base64.b64encode(_hmac(key, signed)).decode() for key in config.hmac_keys()]
    return None if any_equal(given, expected) else wrong()


def check_stripe(
    config: StripeVerify, headers: Mapping[str, str], body: bytes, now: float
) -> Refusal | None:
    """Any ``v1`` of ``Stripe-Signature`` made with any of the secrets, and its ``t`` within
    the tolerance either way (Stripe's libraries only refuse the past; a future one is as
    suspicious)."""
    value = headers.get("stripe-signature")
    if not value:
        return required()
    parts = stripe_parts(value)
    if parts is None or not fresh(parts[0], now, config.tolerance_seconds):
        return wrong()
    timestamp, given = parts
    signed = timestamp.encode() + b"." + body
    expected = [_hmac(key, signed).hex() for key in _keys(config.secret)]
    return None if any_equal((g.lower() for g in given), expected) else wrong()


def check_github(config: GithubVerify, headers: Mapping[str, str], body: bytes) -> Refusal | None:
    """``X-Hub-Signature-256: sha256=<hex>`` made with any of the secrets."""
    value = headers.get("x-hub-signature-256")
    if not value:
        return required()
    expected = ["sha256=" + _hmac(key, body).hex() for key in _keys(config.secret)]
    return None if any_equal([value.lower()], expected) else wrong()


def check_slack(
    config: SlackVerify, headers: Mapping[str, str], body: bytes, now: float
) -> Refusal | None:
    """``X-Slack-Signature: v0=<hex>`` of ``v0:{timestamp}:{body}`` made with any of the
    signing secrets, and ``X-Slack-Request-Timestamp`` within the tolerance either way."""
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not (timestamp and signature):
        return required()
    if not fresh(timestamp, now, config.tolerance_seconds):
        return wrong()
    signed = f"v0:{timestamp}:".encode() + body
    expected = ["v0=" + _hmac(key, signed).hex() for key in _keys(config.signing_secret)]
    return None if any_equal([signature.lower()], expected) else wrong()


def check_hmac(config: HmacVerify, headers: Mapping[str, str], body: bytes) -> Refusal | None:
    """``<prefix><digest>`` in the configured header: the HMAC of the body with any of the
    secrets, hex (any case) or base64 (exactly as encoded, padding included)."""
    value = headers.get(config.header.lower())
    if value is None:
        return required()
    if not value.startswith(config.prefix):
        return wrong()
    given = value[len(config.prefix) :]
    digests = [_hmac(key, body, config.algorithm) for key in _keys(config.secret)]
    if config.encoding == "hex":
        return None if any_equal([given.lower()], [d.hex() for d in digests]) else wrong()
    expected = [base64.b64encode(d).decode() for d in digests]
    return None if any_equal([given], expected) else wrong()


def check_header(config: HeaderVerify, headers: Mapping[str, str]) -> Refusal | None:
    """The configured header carries exactly the shared value."""
    value = headers.get(config.header.lower())
    if value is None:
        return required()
    return None if equal(value, config.value) else wrong()


def check_basic(config: BasicVerify, headers: Mapping[str, str]) -> Refusal | None:
    """HTTP Basic with the configured user name and password."""
    return basic(headers, config.username, config.password)


def verify(
    config: Verify,
    headers: Mapping[str, str],
    raw_body: bytes,
    client_ip: str | None,
    now_seconds: float,
) -> Refusal | None:
    """``None`` when the event is the provider's; the refusal to answer otherwise.

    ``headers`` is looked up by lower-case name (Starlette's ``Headers``, or a dict with
    lower-case keys), ``raw_body`` is the body exactly as received, ``client_ip`` the address
    the gateway resolved for the request, ``now_seconds`` the Unix time signed timestamps are
    judged at (the clock seam's). The IP allow-list is checked first.
    """
    if config.allowed_ips and not ip_allowed(config.allowed_ips, client_ip):
        return Refusal(403, IP_REFUSED)
    match config:
        case StandardWebhooksVerify():
            return check_standard_webhooks(config, headers, raw_body, now_seconds)
        case StripeVerify():
            return check_stripe(config, headers, raw_body, now_seconds)
        case GithubVerify():
            return check_github(config, headers, raw_body)
        case SlackVerify():
            return check_slack(config, headers, raw_body, now_seconds)
        case HmacVerify():
            return check_hmac(config, headers, raw_body)
        case HeaderVerify():
            return check_header(config, headers)
        case BasicVerify():
            return check_basic(config, headers)
    return None  # NoneVerify: the allow-list was the whole check
