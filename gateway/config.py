"""Settings: read once from ``WAITGATE_*`` environment variables into one typed object."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.files import keep_private
from gateway.origins import parse_origin

DEFAULT_DATABASE_URL = "sqlite:///./data/waitgate.db"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:5678"
SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name, not a secret
CALLBACK_SECRET_FILE = "callback.secret"  # noqa: S105 - a file name, not a secret
MIN_SECRET_KEY_LENGTH = 32
SETTING = "waitgate.setting"
"""The key of a ``Settings`` field's metadata that holds its variable and parser."""
T = TypeVar("T")
N = TypeVar("N", int, float)


class Secret:
    """A string whose ``repr`` and ``str`` never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


Parser = Callable[[str, str], T | None]
"""How a variable's text is read: ``(variable, text) -> value``; ``None`` takes the default."""


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting: its ``WAITGATE_*`` variable, its default and how its text is read."""

    name: str
    variable: str
    default: T
    parse: Parser[T]

    def read(self, env: Mapping[str, str]) -> T | None:
        """The value ``env`` gives; ``None`` when the variable is unset (or takes the default)."""
        raw = env.get(self.variable)
        return None if raw is None else self.parse(self.variable, raw)


def setting(variable: str, default: T, parse: Parser[T]) -> T:
    """A field of ``Settings`` read from ``variable`` (typed as its value, like ``field``)."""
    declared: T = field(default=default, metadata={SETTING: (variable, parse)})
    return declared


def _text(name: str, raw: str) -> str:
    return raw


def _lower(name: str, raw: str) -> str:
    return raw.lower()


def _url(name: str, raw: str) -> str:
    return raw.rstrip("/")


def _optional(name: str, raw: str) -> str | None:
    return raw or None


def _secret(name: str, raw: str) -> Secret | None:
    return Secret(raw) if raw else None


def _path(name: str, raw: str) -> Path | None:
    return Path(raw) if raw else None


def _flag(name: str, raw: str) -> bool:
    return raw.lower() not in {"0", "false", "no"}


def _items(name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _secret_keys(name: str, raw: str) -> tuple[Secret, ...]:
    return tuple(Secret(key) for key in _items(name, raw))


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    return tuple(host.lower() for host in _items(name, raw))


def _origins(name: str, raw: str) -> tuple[str, ...]:
    try:
        return tuple(parse_origin(origin) for origin in _hosts(name, raw))
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _http_url(name: str, raw: str) -> str | None:
    if not raw:
        return None
    _check_http_url(raw, name)
    return raw


def _origin(name: str, raw: str) -> str | None:
    return _http_url(name, raw.rstrip("/"))


def _callback_secret(name: str, raw: str) -> Secret | None:
    if not raw.strip():
        return None
    callback_keys(raw)
    return Secret(raw.strip())


def _rate(name: str, raw: str) -> float | None:
    """A number of events a second, zero allowed (zero turns the limit off)."""
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name} must be zero or a positive number, got {raw!r}")
    return value


def _positive(name: str, raw: str, convert: Callable[[str], N], what: str) -> N | None:
    if raw == "":
        return None
    try:
        value = convert(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _int(name: str, raw: str) -> int | None:
    """A positive whole number."""
    return _positive(name, raw, int, "an integer")


def _count(name: str, raw: str) -> int | None:
    """A whole number, zero allowed (zero turns the limit off)."""
    if raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ConfigError(f"{name} must be a whole number, got {raw!r}")
    return int(raw)


def _float(name: str, raw: str) -> float | None:
    """A positive number."""
    return _positive(name, raw, float, "a number")


@dataclass(frozen=True)
class Settings:
    """Everything the gateway is configured with: each field declared once with its variable,
    default and parser (``settings_table``). Tests build it directly."""

    database_url: str = setting("WAITGATE_DATABASE_URL", DEFAULT_DATABASE_URL, _text)
    public_url: str = setting("WAITGATE_PUBLIC_URL", DEFAULT_PUBLIC_URL, _url)
    secret_keys: tuple[Secret, ...] = setting("WAITGATE_SECRET_KEYS", (), _secret_keys)
    max_body_bytes: int = setting("WAITGATE_MAX_BODY_BYTES", 16 * 1024 * 1024, _int)
    data_dir: Path = setting("WAITGATE_DATA_DIR", Path("data"), _path)
    """Unset: the folder of a SQLite database, else ``data``."""
    scheduler_batch_size: int = setting("WAITGATE_SCHEDULER_BATCH_SIZE", 500, _int)
    scheduler_max_sleep_seconds: float = setting("WAITGATE_SCHEDULER_MAX_SLEEP", 10.0, _float)
    shutdown_timeout_seconds: float = setting("WAITGATE_SHUTDOWN_TIMEOUT", 10.0, _float)
    log_level: str = setting("WAITGATE_LOG_LEVEL", "info", _lower)
    callback_url: str | None = setting("WAITGATE_CALLBACK_URL", None, _http_url)
    callback_secret: Secret | None = setting("WAITGATE_CALLBACK_SECRET", None, _callback_secret)
    slack_signing_secret: Secret | None = setting("WAITGATE_SLACK_SIGNING_SECRET", None, _secret)
    callback_allowed_hosts: tuple[str, ...] = setting("WAITGATE_CALLBACK_ALLOWED_HOSTS", (), _hosts)
    callback_allowed_origins: tuple[str, ...] = setting(
        "WAITGATE_CALLBACK_ALLOWED_ORIGINS", (), _origins
    )
    callback_timeout_seconds: float = setting("WAITGATE_CALLBACK_TIMEOUT", 10.0, _float)
    callback_max_age_seconds: float = setting("WAITGATE_CALLBACK_MAX_AGE", 24 * 3600.0, _float)
    callback_concurrency: int = setting("WAITGATE_CALLBACK_CONCURRENCY", 16, _int)
    callback_backoff_base_seconds: float = setting("WAITGATE_CALLBACK_BACKOFF_BASE", 1.0, _float)
    callback_backoff_max_seconds: float = setting("WAITGATE_CALLBACK_BACKOFF_MAX", 600.0, _float)
    endpoint_failure_threshold: int = setting("WAITGATE_ENDPOINT_FAILURE_THRESHOLD", 5, _int)
    endpoint_cooldown_seconds: float = setting("WAITGATE_ENDPOINT_COOLDOWN", 60.0, _float)
    endpoint_concurrency: int = setting("WAITGATE_ENDPOINT_CONCURRENCY", 4, _int)
    endpoint_rate_limit: float = setting("WAITGATE_ENDPOINT_RATE_LIMIT", 0.0, _rate)
    operations_url: str | None = setting("WAITGATE_OPERATIONS_URL", None, _http_url)
    response_timeout_seconds: float = setting("WAITGATE_RESPONSE_TIMEOUT", 30.0, _float)
    jwt_secret: Secret | None = setting("WAITGATE_JWT_SECRET", None, _secret)
    jwt_public_key: Secret | None = setting("WAITGATE_JWT_PUBLIC_KEY", None, _secret)
    jwt_algorithms: tuple[str, ...] = setting("WAITGATE_JWT_ALGORITHMS", (), _items)
    jwt_issuer: str | None = setting("WAITGATE_JWT_ISSUER", None, _optional)
    jwt_audience: str | None = setting("WAITGATE_JWT_AUDIENCE", None, _optional)
    max_display_bytes: int = setting("WAITGATE_MAX_DISPLAY_BYTES", 10 * 1024 * 1024, _int)
    trusted_proxies: tuple[str, ...] = setting("WAITGATE_TRUSTED_PROXIES", (), _items)
    rate_limit_bad_signatures: int = setting("WAITGATE_RATE_LIMIT_BAD_SIGNATURES", 30, _count)
    rate_limit_bad_signatures_per_execution: int = setting(
        "WAITGATE_RATE_LIMIT_BAD_SIGNATURES_PER_EXECUTION", 10, _count
    )
    rate_limit_api: int = setting("WAITGATE_RATE_LIMIT_API", 0, _count)
    retention_max_age_hours: float = setting("WAITGATE_RETENTION_MAX_AGE", 336.0, _float)
    retention_max_count: int = setting("WAITGATE_RETENTION_MAX_COUNT", 10_000, _int)
    retention_interval_seconds: float = setting("WAITGATE_RETENTION_INTERVAL", 300.0, _float)
    align_clock_to_database: bool = setting("WAITGATE_CLOCK_FROM_DATABASE", True, _flag)
    clock_align_interval_seconds: float = 60.0
    """Not configurable: how often the offset to the database's clock is measured again."""
    metrics_token: Secret | None = setting("WAITGATE_METRICS_TOKEN", None, _secret)
    admin_key_file: Path | None = setting("WAITGATE_ADMIN_KEY_FILE", None, _path)
    ui_origin: str | None = setting("WAITGATE_UI_ORIGIN", None, _origin)
    max_concurrency: int = setting("WAITGATE_MAX_CONCURRENCY", 1000, _int)
    keep_alive_timeout_seconds: int = setting("WAITGATE_KEEP_ALIVE_TIMEOUT", 5, _int)
    header_timeout_seconds: float = setting("WAITGATE_HEADER_TIMEOUT", 10.0, _float)
    body_timeout_seconds: float = setting("WAITGATE_BODY_TIMEOUT", 60.0, _float)
    max_header_bytes: int = setting("WAITGATE_MAX_HEADER_BYTES", 32 * 1024, _int)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the ``WAITGATE_*`` variables; unset ones take their defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for entry in settings_table():
            value = entry.read(env)
            if value is not None:
                values[entry.name] = value
        if "data_dir" not in values:
            database_url = values.get("database_url", DEFAULT_DATABASE_URL)
            values["data_dir"] = Path(_default_data_dir(database_url))
        return cls(**values)

    def with_secret_keys(self) -> Settings:
        """These settings, with generated secrets kept in the data directory where none is set.

        The URL signing key (``secret.key``) and the callback signing secret
        (``callback.secret``, Standard Webhooks ``whsec_`` form) are each created once with
        mode 0600 and reused on every later start. Neither is ever logged. A URL signing key
        shorter than ``MIN_SECRET_KEY_LENGTH`` characters is a ``ConfigError``.
        """
        changes: dict[str, object] = {}
        keys = self.secret_keys
        if not keys:
            value = _kept_secret(self.data_dir / SECRET_KEY_FILE, lambda: secrets.token_urlsafe(48))
            keys = changes["secret_keys"] = (Secret(value),)
        check_secret_keys(keys)
        if self.callback_secret is None:
            value = _kept_secret(
                self.data_dir / CALLBACK_SECRET_FILE,
                lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
            )
            check_callback_secret(value)
            changes["callback_secret"] = Secret(value)
        return replace(self, **changes) if changes else self  # type: ignore[arg-type]


def _kept_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret in ``path``, created (mode 0600) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker created it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(make() + "\n")
    keep_private(path)
    value = path.read_text().strip()
    if not value:
        raise ConfigError(f"secret file {path} is empty")
    return value


def check_secret_keys(keys: tuple[Secret, ...]) -> None:
    """``ConfigError`` unless every URL signing key is long enough to resist guessing."""
    for position, key in enumerate(keys, start=1):
        if len(key.reveal()) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                f"WAITGATE_SECRET_KEYS: key {position} has {len(key.reveal())} characters; every "
                f"URL signing key must be at least {MIN_SECRET_KEY_LENGTH} characters (make one "
                "with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )


def callback_keys(value: str) -> tuple[bytes, ...]:
    """The key bytes of each secret ``WAITGATE_CALLBACK_SECRET`` lists, newest first (separated
    by spaces or commas: rotation signs with the new and the old secret while receivers
    switch); ``ConfigError`` if one is not a Standard Webhooks secret or none is given."""
    entries = value.replace(",", " ").split()
    if not entries:
        raise ConfigError("WAITGATE_CALLBACK_SECRET lists no secret")
    return tuple(check_callback_secret(entry) for entry in entries)


def check_callback_secret(value: str) -> bytes:
    """The key bytes of a Standard Webhooks secret ``whsec_<base64>``; ``ConfigError`` otherwise."""
    if not value.startswith("whsec_"):
        raise ConfigError("WAITGATE_CALLBACK_SECRET must look like whsec_<base64 of 24-64 bytes>")
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ConfigError("WAITGATE_CALLBACK_SECRET is not valid base64 after whsec_") from None
    if not 24 <= len(key) <= 64:
        raise ConfigError("WAITGATE_CALLBACK_SECRET must hold 24 to 64 bytes")
    return key


def _check_http_url(url: str, name: str) -> None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {url!r}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL, got {url!r}")


def _default_data_dir(database_url: str) -> str:
    if database_url.startswith("sqlite:///"):
        parent = Path(database_url.removeprefix("sqlite:///")).parent
        return str(parent)
    return "data"


@cache
def settings_table() -> tuple[Setting[Any], ...]:
    """Every setting read from the environment, in the order of ``Settings``' fields."""
    table: list[Setting[Any]] = []
    for declared in fields(Settings):
        if SETTING in declared.metadata:
            variable, parse = declared.metadata[SETTING]
            table.append(Setting(declared.name, variable, declared.default, parse))
    return tuple(table)


def variable_of(name: str) -> str:
    """The ``WAITGATE_*`` variable of the ``Settings`` field ``name``."""
    return next(entry.variable for entry in settings_table() if entry.name == name)
