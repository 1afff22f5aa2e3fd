"""The served process's limits (issue 11): slow or huge requests, and private database files.

Slowloris and oversized headers run against a real ``waitgate serve`` with small deadlines
injected through its settings; file modes are checked on a fresh SQLite start.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
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


def errors_logged(gateway: GatewayProcess) -> list[str]:
    """The error records the gateway has written so far."""
    lines = gateway.stderr_path.read_text().splitlines()
    return [line for line in lines if '"level":"error"' in line]


def logged(gateway: GatewayProcess, text: str, within: float = 2.0) -> None:
    """Wait until the gateway has logged ``text``."""
    deadline = time.monotonic() + within
    while text not in gateway.stderr_path.read_text():
        assert time.monotonic() < deadline, f"not logged: {text}"
        time.sleep(0.02)


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
        for name in ("waitgate.db", "waitgate.db-wal", "waitgate.db-shm", "waitgate.db-lock"):
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
    files = (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-lock"), secret)
    for path in files:
        path.touch()
        path.chmod(0o644)
    async with running_gateway(settings, clock):
        for path in files:
            assert mode(path) == 0o600, path
    tightened = [r for r in caplog.records if getattr(r, "action", None) == "files.permissions"]
    assert tightened
    assert tightened[0].levelno == logging.WARNING


def read_answer(sock: socket.socket, within: float = 5.0) -> tuple[bytes, bytes]:
    """One whole answer off the connection (its head and its ``content-length`` body)."""
    sock.settimeout(within)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed inside an answer: {head!r}"
        body += chunk
    assert len(body) == length, "more than one answer"
    return head, body


def send_in_pieces(sock: socket.socket, data: bytes, pieces: int, over: float) -> None:
    """``data`` in ``pieces`` packets spread evenly over ``over`` seconds."""
    size = -(-len(data) // pieces)
    for start in range(0, len(data), size):
        if start:
            time.sleep(over / (pieces - 1))
        sock.sendall(data[start : start + size])


def creation(key: str, body: bytes, *, keep_alive: bool = True) -> bytes:
    """The head of a request creating an execution, for ``body``."""
    return (
        "POST /api/v1/executions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-N8N-API-KEY: {key}\r\nContent-Length: {len(body)}\r\n"
        + ("" if keep_alive else "Connection: close\r\n")
        + "\r\n"
    ).encode()


BODY = b'{"workflowId": "w", "customData": {"a": "' + b"b" * 200 + b'"}}'


def test_a_body_sent_in_several_packets_within_the_deadline_is_served(
    gateway: GatewayProcess,
) -> None:
    (key,) = gateway.admin_keys()
    with connect(gateway) as client:
        client.sendall(creation(key, BODY))
        send_in_pieces(client, BODY, pieces=4, over=DEADLINE / 2)
        head, _ = read_answer(client)
    assert head.startswith(b"HTTP/1.1 201"), head


def test_each_request_of_a_kept_alive_connection_gets_its_own_body_deadline(
    gateway: GatewayProcess,
) -> None:
    """Two slow-but-in-time bodies in a row take longer together than one deadline."""
    (key,) = gateway.admin_keys()
    with connect(gateway) as client:
        for _ in range(2):
            client.sendall(creation(key, BODY))
            send_in_pieces(client, BODY, pieces=3, over=DEADLINE * 0.6)
            head, _ = read_answer(client)
            assert head.startswith(b"HTTP/1.1 201"), head
        time.sleep(DEADLINE * 0.6)  # a deadline left over from either would fire now
        client.sendall(creation(key, BODY, keep_alive=False) + BODY)
        head, _ = read_answer(client)
        assert head.startswith(b"HTTP/1.1 201"), head


@pytest.fixture
def api(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """A client of the gateway's API, with its admin key."""
    (key,) = gateway.admin_keys()
    with httpx.Client(base_url=gateway.url, headers={"X-N8N-API-KEY": key}, timeout=5) as client:
        yield client


def parked_resume_url(api: httpx.Client) -> tuple[str, str]:
    """A new execution waiting for a webhook call: its id, and its resume URL's target."""
    created = api.post("/api/v1/executions", json={"workflowId": "slow-resume"}).json()
    wait = api.post(
        f"/api/v1/executions/{created['id']}/wait", json={"webhook": {"httpMethod": "POST"}}
    ).json()
    return created["id"], httpx.URL(wait["resumeUrl"]).raw_path.decode()


def resume_head(target: str, length: int) -> bytes:
    return (
        f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_request_answered_before_its_body_is_closed_at_the_deadline_without_a_second_answer(
    gateway: GatewayProcess, api: httpx.Client
) -> None:
    _, target = parked_resume_url(api)
    forged = re.sub(r"signature=[^&]*", "signature=forged", target)
    with connect(gateway) as client:
        client.sendall(resume_head(forged, 100) + b'{"a": ')
        started = time.monotonic()
        head, _ = read_answer(client)
        assert head.startswith(b"HTTP/1.1 401"), head
        client.settimeout(DEADLINE + 2)
        assert client.recv(65536) == b""  # closed by the body deadline, nothing more said
        assert time.monotonic() - started < DEADLINE + 2


def test_a_body_trickled_after_an_early_answer_is_cut_off_at_the_deadline(
    gateway: GatewayProcess, api: httpx.Client
) -> None:
    """Answered, the request no longer reads its body; the trickle must not keep the
    connection (each byte would otherwise put off the keep-alive timeout)."""
    _, target = parked_resume_url(api)
    forged = re.sub(r"signature=[^&]*", "signature=forged", target)
    with connect(gateway) as client:
        client.sendall(resume_head(forged, 400) + b'{"a": ')
        head, _ = read_answer(client)
        assert head.startswith(b"HTTP/1.1 401"), head
        answer, elapsed = trickle(client, b"b" * 300)
    assert answer == b""
    assert elapsed < DEADLINE + 2


def test_a_slow_body_on_a_resume_url_gets_408_and_does_not_resume(
    gateway: GatewayProcess, api: httpx.Client
) -> None:
    execution, target = parked_resume_url(api)
    errors = errors_logged(gateway)
    with connect(gateway) as slow:
        slow.sendall(resume_head(target, 200) + b'{"approved": ')
        answer, elapsed = trickle(slow, b"t" * 200)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert answer.count(b"HTTP/1.1") == 1, answer
        assert b"Request body not received within 0.5 s" in answer
        assert b"content-security-policy: sandbox\r\n" in answer  # as every answer there
        assert b"x-content-type-options: nosniff\r\n" in answer
        assert elapsed < DEADLINE + 2
        logged(gateway, f"POST /webhook-waiting/{execution}?signature=*** 408")
        assert errors_logged(gateway) == errors  # a slow client is no failure of the gateway
        assert api.get(f"/api/v1/executions/{execution}").json()["status"] == "waiting"
        assert api.post(target, json={"approved": True}).status_code == 200  # still resumable
