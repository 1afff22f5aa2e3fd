"""The served process's limits (issue 11): slow or huge requests, and private database files.

Slowloris and oversized headers run against a real ``waitgate serve`` with small deadlines
injected through its settings; file modes are checked on a fresh SQLite start.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.config import Settings
from tests.conftest import running_gateway, sqlite_only


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which files are created world-readable unless asked otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
async def test_a_fresh_start_creates_a_private_data_dir_and_database(
    settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    sqlite_only(settings)
    data = tmp_path / "fresh" / "data"
    fresh = dataclasses.replace(
        settings, database_url=f"sqlite:///{data / 'waitgate.db'}", data_dir=data, secret_keys=()
    )
    async with running_gateway(fresh, clock) as (_app, client):
        assert (
            await client.post("/api/v1/executions", json={"workflowId": "w"})
        ).status_code == 201
        assert mode(data) == 0o700
        for name in ("waitgate.db", "waitgate.db-wal", "waitgate.db-shm"):
            assert mode(data / name) == 0o600, name
        for name in ("secret.key", "callback.secret"):
            assert mode(data / name) == 0o600, name


@pytest.mark.usefixtures("umask_022")
async def test_existing_database_files_readable_by_others_are_tightened_at_start(
    settings: Settings, clock: ManualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sqlite_only(settings)
    db = Path(settings.database_url.removeprefix("sqlite:///"))
    async with running_gateway(settings, clock):
        pass
    secret = settings.data_dir / "callback.secret"
    files = (db, Path(f"{db}-wal"), Path(f"{db}-shm"), secret)
    for path in files:
        path.touch()
        path.chmod(0o644)
    async with running_gateway(settings, clock):
        for path in files:
            assert mode(path) == 0o600, path
    tightened = [r for r in caplog.records if getattr(r, "action", None) == "files.permissions"]
    assert tightened
    assert tightened[0].levelno == logging.WARNING
