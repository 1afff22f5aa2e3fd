"""Storage for waitgate: the ``Store`` interface and one backend per database."""

from __future__ import annotations

from gateway.errors import ConfigError
from persistence.base import Store


def open_store(url: str) -> Store:
    """The backend for a database URL (not yet opened)."""
    if url.startswith("sqlite:///"):
        from persistence.sqlite import SqliteStore  # noqa: PLC0415 - drivers load on demand

        return SqliteStore.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from persistence.postgres import PostgresStore  # noqa: PLC0415
        except ImportError:
            raise ConfigError(
                "PostgreSQL needs the postgres extra: pip install 'waitgate[postgres]'"
            ) from None
        return PostgresStore.from_url(url)
    raise ConfigError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/file.db or postgresql://…"
    )


__all__ = ["Store", "open_store"]
