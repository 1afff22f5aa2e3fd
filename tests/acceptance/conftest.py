"""Fixtures for acceptance tests: real ``waitgate serve`` processes, always killed at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tests.process import GatewayProcess


class SpawnGateway(Protocol):
    """Start a ``waitgate serve`` in a fresh working directory and wait until it is ready."""

    def __call__(self, env: dict[str, str] | None = None, *, workers: int = 1) -> GatewayProcess:
        """The started process; its database and data dir live in its working directory."""
        ...


@pytest.fixture
def spawn_gateway(tmp_path: Path) -> Iterator[SpawnGateway]:
    """A factory for gateway processes; every one it started is SIGKILLed at teardown.

    Each process gets its own directory under ``tmp_path`` (database, ``secret.key``, and the
    files its stdout and stderr go to, so a full pipe never blocks it). ``kill()`` then
    ``start()`` restarts it on the same database and port.
    """
    started: list[GatewayProcess] = []

    def spawn(env: dict[str, str] | None = None, *, workers: int = 1) -> GatewayProcess:
        workdir = tmp_path / f"gw{len(started)}"
        workdir.mkdir()
        process = GatewayProcess(workdir, env, workers=workers)
        started.append(process)
        process.start()
        return process

    try:
        yield spawn
    finally:
        for process in started:
            process.kill()
