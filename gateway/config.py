"""Settings: read once from ``WAITGATE_*`` environment variables into one typed object."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///./data/waitgate.db"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:5678"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name, not a secret


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the ``WAITGATE_*`` variables; unset ones take their defaults."""
        env = os.environ if env is None else env
        database_url = env.get("WAITGATE_DATABASE_URL", DEFAULT_DATABASE_URL)
        data_dir = Path(env.get("WAITGATE_DATA_DIR") or _default_data_dir(database_url))
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
        )

    def with_secret_keys(self) -> Settings:
        """These settings, with a generated secret key kept in the data directory if none is set.

        The key file is created once with mode 0600 and reused on every later start.
        """
        if self.secret_keys:
            return self
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another worker created it first
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(48) + "\n")
        value = path.read_text().strip()
        if not value:
            raise ConfigError(f"secret key file {path} is empty")
        return replace(self, secret_keys=(Secret(value),))


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
