"""Settings: read once from ``WAITGATE_*`` environment variables into one typed object."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.files import keep_private
from gateway.origins import parse_origin

DEFAULT_DATABASE_URL = "sqlite:///./data/waitgate.db"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:5678"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name, not a secret
CALLBACK_SECRET_FILE = "callback.secret"  # noqa: S105 - a file name, not a secret
MIN_SECRET_KEY_LENGTH = 32


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


@dataclass(frozen=True)
class Settings:
    """Everything the gateway is configured with. Tests build it directly."""

    database_url: str = DEFAULT_DATABASE_URL
    public_url: str = DEFAULT_PUBLIC_URL
    secret_keys: tuple[Secret, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    data_dir: Path = field(default_factory=lambda: Path("data"))
    scheduler_batch_size: int = 500
    scheduler_max_sleep_seconds: float = 10.0
    shutdown_timeout_seconds: float = 10.0
    log_level: str = "info"
    callback_url: str | None = None
    callback_secret: Secret | None = None
    callback_allowed_hosts: tuple[str, ...] = ()
    callback_allowed_origins: tuple[str, ...] = ()
    callback_timeout_seconds: float = 10.0
    callback_max_age_seconds: float = 24 * 3600.0
    callback_concurrency: int = 16
    callback_backoff_base_seconds: float = 1.0
    callback_backoff_max_seconds: float = 600.0
    response_timeout_seconds: float = 30.0
    jwt_secret: Secret | None = None
    jwt_public_key: Secret | None = None
    jwt_algorithms: tuple[str, ...] = ()
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    max_display_bytes: int = 10 * 1024 * 1024
    trusted_proxies: tuple[str, ...] = ()
    rate_limit_bad_signatures: int = 30
    rate_limit_bad_signatures_per_execution: int = 10
    rate_limit_api: int = 0
    retention_max_age_hours: float = 336.0
    retention_max_count: int = 10_000
    retention_interval_seconds: float = 300.0
    align_clock_to_database: bool = True
    clock_align_interval_seconds: float = 60.0
    metrics_token: Secret | None = None
    admin_key_file: Path | None = None
    ui_origin: str | None = None
    max_concurrency: int = 1000
    keep_alive_timeout_seconds: int = 5
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    max_header_bytes: int = 32 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the ``WAITGATE_*`` variables; unset ones take their defaults."""
        env = os.environ if env is None else env
        database_url = env.get("WAITGATE_DATABASE_URL", DEFAULT_DATABASE_URL)
        data_dir = Path(env.get("WAITGATE_DATA_DIR") or _default_data_dir(database_url))
        callback_url = env.get("WAITGATE_CALLBACK_URL") or None
        if callback_url is not None:
            _check_http_url(callback_url, "WAITGATE_CALLBACK_URL")
        callback_secret = env.get("WAITGATE_CALLBACK_SECRET") or None
        if callback_secret is not None:
            check_callback_secret(callback_secret)
        ui_origin = (env.get("WAITGATE_UI_ORIGIN") or "").rstrip("/") or None
        if ui_origin is not None:
            _check_http_url(ui_origin, "WAITGATE_UI_ORIGIN")
        keys = tuple(
            Secret(k.strip()) for k in env.get("WAITGATE_SECRET_KEYS", "").split(",") if k.strip()
        )
        return cls(
            database_url=database_url,
            public_url=env.get("WAITGATE_PUBLIC_URL", DEFAULT_PUBLIC_URL).rstrip("/"),
            secret_keys=keys,
            max_body_bytes=_int(env, "WAITGATE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            data_dir=data_dir,
            scheduler_batch_size=_int(env, "WAITGATE_SCHEDULER_BATCH_SIZE", 500),
            scheduler_max_sleep_seconds=_float(env, "WAITGATE_SCHEDULER_MAX_SLEEP", 10.0),
            shutdown_timeout_seconds=_float(env, "WAITGATE_SHUTDOWN_TIMEOUT", 10.0),
            log_level=env.get("WAITGATE_LOG_LEVEL", "info").lower(),
            callback_url=callback_url,
            callback_secret=Secret(callback_secret) if callback_secret else None,
            callback_allowed_hosts=_list(env, "WAITGATE_CALLBACK_ALLOWED_HOSTS"),
            callback_allowed_origins=_origins(env),
            callback_timeout_seconds=_float(env, "WAITGATE_CALLBACK_TIMEOUT", 10.0),
            callback_max_age_seconds=_float(env, "WAITGATE_CALLBACK_MAX_AGE", 24 * 3600.0),
            callback_concurrency=_int(env, "WAITGATE_CALLBACK_CONCURRENCY", 16),
            callback_backoff_base_seconds=_float(env, "WAITGATE_CALLBACK_BACKOFF_BASE", 1.0),
            callback_backoff_max_seconds=_float(env, "WAITGATE_CALLBACK_BACKOFF_MAX", 600.0),
            response_timeout_seconds=_float(env, "WAITGATE_RESPONSE_TIMEOUT", 30.0),
            jwt_secret=Secret(env["WAITGATE_JWT_SECRET"])
            if env.get("WAITGATE_JWT_SECRET")
            else None,
            jwt_public_key=Secret(env["WAITGATE_JWT_PUBLIC_KEY"])
            if env.get("WAITGATE_JWT_PUBLIC_KEY")
            else None,
            jwt_algorithms=tuple(
                a.strip() for a in env.get("WAITGATE_JWT_ALGORITHMS", "").split(",") if a.strip()
            ),
            jwt_issuer=env.get("WAITGATE_JWT_ISSUER") or None,
            jwt_audience=env.get("WAITGATE_JWT_AUDIENCE") or None,
            max_display_bytes=_int(env, "WAITGATE_MAX_DISPLAY_BYTES", 10 * 1024 * 1024),
            trusted_proxies=tuple(
                p.strip() for p in env.get("WAITGATE_TRUSTED_PROXIES", "").split(",") if p.strip()
            ),
            rate_limit_bad_signatures=_count(env, "WAITGATE_RATE_LIMIT_BAD_SIGNATURES", 30),
            rate_limit_bad_signatures_per_execution=_count(
                env, "WAITGATE_RATE_LIMIT_BAD_SIGNATURES_PER_EXECUTION", 10
            ),
            rate_limit_api=_count(env, "WAITGATE_RATE_LIMIT_API", 0),
            retention_max_age_hours=_float(env, "WAITGATE_RETENTION_MAX_AGE", 336.0),
            retention_max_count=_int(env, "WAITGATE_RETENTION_MAX_COUNT", 10_000),
            retention_interval_seconds=_float(env, "WAITGATE_RETENTION_INTERVAL", 300.0),
            align_clock_to_database=env.get("WAITGATE_CLOCK_FROM_DATABASE", "true").lower()
            not in {"0", "false", "no"},
            metrics_token=Secret(env["WAITGATE_METRICS_TOKEN"])
            if env.get("WAITGATE_METRICS_TOKEN")
            else None,
            admin_key_file=Path(env["WAITGATE_ADMIN_KEY_FILE"])
            if env.get("WAITGATE_ADMIN_KEY_FILE")
            else None,
            ui_origin=ui_origin,
            max_concurrency=_int(env, "WAITGATE_MAX_CONCURRENCY", 1000),
            keep_alive_timeout_seconds=_int(env, "WAITGATE_KEEP_ALIVE_TIMEOUT", 5),
            header_timeout_seconds=_float(env, "WAITGATE_HEADER_TIMEOUT", 10.0),
            body_timeout_seconds=_float(env, "WAITGATE_BODY_TIMEOUT", 60.0),
            max_header_bytes=_int(env, "WAITGATE_MAX_HEADER_BYTES", 32 * 1024),
        )

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


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in env.get(name, "").split(",") if h.strip())


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    try:
        return tuple(parse_origin(o) for o in _list(env, "WAITGATE_CALLBACK_ALLOWED_ORIGINS"))
    except ValueError as exc:
        raise ConfigError(f"WAITGATE_CALLBACK_ALLOWED_ORIGINS: {exc}") from None


def _default_data_dir(database_url: str) -> str:
    if database_url.startswith("sqlite:///"):
        parent = Path(database_url.removeprefix("sqlite:///")).parent
        return str(parent)
    return "data"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number, zero allowed (zero turns the limit off)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise ConfigError(f"{name} must be a whole number, got {raw!r}")
    return int(raw)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value
