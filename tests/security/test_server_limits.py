"""The served process's limits (issue 11): slow or huge requests, and private database files.

Slowloris and oversized headers run against a real ``waitgate serve`` with small deadlines
injected through its settings; file modes are checked on a fresh SQLite start.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.clock import ManualClock
from gateway.config import Settings
from tests.conftest import running_gateway, sqlite_only
from tests.process import GatewayProcess

DEADLINE = 0.5  # seconds, for headers and bodies alike
LIMITS = {
    "WAITGATE_HEADER_TIMEOUT": str(DEADLINE),
    "WAITGATE_BODY_TIMEOUT": str(DEADLINE),
    "WAITGATE_MAX_HEADER_BYTES": "8192",
    "WAITGATE_MAX_CONCURRENCY": "8",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One ``waitgate serve`` with small header/body deadlines, shared by this module's tests."""
    process = GatewayProcess(tmp_path_factory.mktemp("limits"), LIMITS)
    process.start()
    try:
        yield process
    finally:
        process.kill()


def connect(gateway: GatewayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=5)


def trickle(sock: socket.socket, data: bytes, within: float = 5.0) -> tuple[bytes, float]:
    """Send ``data`` one byte at a time, each after waiting up to 0.1 s for an answer; what
    the server answered (b"" if it just closed) and when, once it answers or closes."""
    started = time.monotonic()
    sock.settimeout(0.1)
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
            answer = sock.recv(65536)
        except TimeoutError:
            if time.monotonic() - started > within:
                break
            continue
        except OSError:
            return b"", time.monotonic() - started
        return answer + rest_of_answer(sock), time.monotonic() - started
    raise AssertionError("the server kept reading a trickle")


def rest_of_answer(sock: socket.socket, within: float = 2.0) -> bytes:
    """What else the server sends until it closes the connection (an answer may arrive in
    several segments: its head, then its body)."""
    sock.settimeout(within)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, OSError):
        pass
    return b"".join(chunks)


def answered_meanwhile(gateway: GatewayProcess) -> None:
    assert httpx.get(gateway.url + "/healthz", timeout=2).status_code == 200


def test_headers_trickled_byte_by_byte_are_cut_off_at_the_deadline(
    gateway: GatewayProcess,
) -> None:
    with connect(gateway) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        answered_meanwhile(gateway)
        answer, elapsed = trickle(slow, b"X-Slow: " + b"a" * 200)
    assert answer.startswith(b"HTTP/1.1 408") or answer == b""
    assert elapsed < DEADLINE + 2


def test_an_idle_connection_is_closed_at_the_header_deadline(gateway: GatewayProcess) -> None:
    with connect(gateway) as idle:
        started = time.monotonic()
        assert idle.recv(65536) == b""  # closed without a byte sent
    assert time.monotonic() - started < DEADLINE + 2


def test_a_body_trickled_slower_than_the_deadline_gets_408(gateway: GatewayProcess) -> None:
    (key,) = gateway.admin_keys()
    head = (
        "POST /api/v1/executions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-N8N-API-KEY: {key}\r\nContent-Length: 400\r\n\r\n"
    )
    with connect(gateway) as slow:
        slow.sendall(head.encode() + b'{"workflowId": "w", "customData": {"a": "')
        answered_meanwhile(gateway)
        answer, elapsed = trickle(slow, b"b" * 400)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"Request body not received within 0.5 s" in answer
    assert elapsed < DEADLINE + 2


def test_an_oversized_header_block_is_refused(gateway: GatewayProcess) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"u" * 64 * 1024 + b"\r\n\r\n"
    with connect(gateway) as big:
        try:
            big.sendall(request)
            answer = big.recv(65536)
        except ConnectionResetError:
            answer = b""
    assert answer.startswith(b"HTTP/1.1 431") or answer == b"", answer[:100]
    answered_meanwhile(gateway)


def test_a_header_block_just_under_the_cap_is_served(gateway: GatewayProcess) -> None:
    response = httpx.get(gateway.url + "/healthz", headers={"x-pad": "p" * 6000}, timeout=2)
    assert response.status_code == 200


def test_connections_past_the_concurrency_cap_get_503_until_the_deadline_frees_them(
    gateway: GatewayProcess,
) -> None:
    idle = [connect(gateway) for _ in range(8)]
    try:
        assert httpx.get(gateway.url + "/healthz", timeout=2).status_code == 503
        for sock in idle:  # the header deadline closes the idle ones
            assert sock.recv(65536) == b""
        answered_meanwhile(gateway)
    finally:
        for sock in idle:
            sock.close()


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
