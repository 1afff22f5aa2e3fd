"""The ``waitgate`` command line: migrate, and API keys that work (and stop working) in the app."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from click.testing import CliRunner, Result

from gateway.app import create_app
from gateway.auth import SCOPES
from gateway.cli import main
from gateway.clock import ManualClock
from gateway.config import Secret, Settings
from tests.process import WAITGATE

MIGRATIONS = Path(__file__).parents[2] / "persistence" / "sql" / "sqlite" / "migrations"
KEY_LINE = re.compile(r"^wg_[A-Za-z0-9_-]{20,}$")
BASE_URL = "http://127.0.0.1:5678"


def database_url(tmp_path: Path) -> str:
    """A fresh SQLite database in the test's folder."""
    return f"sqlite:///{tmp_path / 'waitgate.db'}"


def waitgate(tmp_path: Path, *args: str) -> Result:
    """Run ``waitgate ARGS`` in-process against the test's database."""
    return CliRunner().invoke(
        main, list(args), env={"WAITGATE_DATABASE_URL": database_url(tmp_path)}
    )


def waitgate_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``waitgate`` console script, as users do."""
    return subprocess.run(
        [WAITGATE, *args],
        cwd=tmp_path,
        env={"WAITGATE_DATABASE_URL": database_url(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def create_key(tmp_path: Path, *args: str) -> tuple[int, str]:
    """``waitgate api-key create ARGS``: the new key's id and value (its last stdout line)."""
    result = waitgate(tmp_path, "api-key", "create", *args)
    assert result.exit_code == 0, result.output
    key = result.stdout.splitlines()[-1]
    assert KEY_LINE.match(key), result.stdout
    found = re.search(r"created key (\d+) with scopes", result.stderr)
    assert found is not None, result.stderr
    return int(found.group(1)), key


def key_rows(tmp_path: Path) -> dict[int, str]:
    """``waitgate api-key list``: each row by key id."""
    result = waitgate(tmp_path, "api-key", "list")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split()[:2] == ["ID", "PREFIX"]
    return {int(row.split()[0]): row for row in rows}


@asynccontextmanager
async def running_app(tmp_path: Path, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app, lifespan started, on the same database the CLI writes to."""
    settings = Settings(
        database_url=database_url(tmp_path),
        public_url=BASE_URL,
        secret_keys=(Secret("cli-test-secret-of-at-least-32-characters"),),
        data_dir=tmp_path,
        align_clock_to_database=False,
    )
    app = create_app(settings, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
    ):
        yield client


def test_migrate_applies_every_migration_once(tmp_path: Path) -> None:
    versions = sorted(int(path.name.split("_")[0]) for path in MIGRATIONS.glob("*.sql"))
    first = waitgate_script(tmp_path, "migrate")
    assert (first.returncode, first.stdout.strip()) == (0, f"applied migrations: {versions}")
    assert (tmp_path / "waitgate.db").exists()
    second = waitgate_script(tmp_path, "migrate")
    assert (second.returncode, second.stdout.strip()) == (0, "database is up to date")
    assert first.stderr == second.stderr == ""


async def test_a_created_key_has_its_scopes_only_until_revoked(tmp_path: Path) -> None:
    admin_id, admin_key = await asyncio.to_thread(create_key, tmp_path, "--label", "ops")
    reader_id, reader_key = await asyncio.to_thread(
        create_key, tmp_path, "--label", "dashboard", "--scope", "execution:read"
    )
    assert reader_id != admin_id
    clock = ManualClock()
    async with running_app(tmp_path, clock) as client:
        as_admin = {"X-N8N-API-KEY": admin_key}
        as_reader = {"X-N8N-API-KEY": reader_key}
        created = await client.post(
            "/api/v1/executions", json={"workflowId": "w"}, headers=as_admin
        )
        assert created.status_code == 201, created.text
        eid = created.json()["id"]

        read = await client.get(f"/api/v1/executions/{eid}", headers=as_reader)
        assert (read.status_code, read.json()["id"]) == (200, eid)
        for method, path in [
            ("POST", "/api/v1/executions"),
            ("POST", f"/api/v1/executions/{eid}/stop"),
            ("DELETE", f"/api/v1/executions/{eid}"),
            ("GET", "/api/v1/executions"),
        ]:
            refused = await client.request(
                method, path, json={"workflowId": "w"}, headers=as_reader
            )
            assert (refused.status_code, refused.json()) == (
                403,
                {"message": "Forbidden", "code": 403},
            ), path
        assert (await client.get(f"/api/v1/executions/{eid}", headers=as_admin)).json()[
            "status"
        ] == "running", "a refused write changed something"

        rows = await asyncio.to_thread(key_rows, tmp_path)
        assert set(rows) == {admin_id, reader_id}
        reader_row = rows[reader_id].split()
        assert reader_row[1] == reader_key[:10]
        assert reader_row[3:] == ["active", "-", "execution:read", "dashboard"]
        assert all(admin_key not in row and reader_key not in row for row in rows.values())

        revoked = await asyncio.to_thread(waitgate, tmp_path, "api-key", "revoke", str(reader_id))
        assert (revoked.exit_code, revoked.stdout.strip()) == (0, f"revoked key {reader_id}")
        clock.advance(5_000)  # past the app's key cache
        refused = await client.get(f"/api/v1/executions/{eid}", headers=as_reader)
        assert (refused.status_code, refused.json()) == (
            401,
            {"message": "Unauthorized", "code": 401},
        )
        still = await client.get(f"/api/v1/executions/{eid}", headers=as_admin)
        assert still.status_code == 200

    rows = await asyncio.to_thread(key_rows, tmp_path)
    assert rows[reader_id].split()[3] == "revoked"
    assert rows[admin_id].split()[3:6] == ["active", "-", "admin"]
    again = await asyncio.to_thread(waitgate, tmp_path, "api-key", "revoke", str(reader_id))
    assert again.exit_code == 1
    assert f"no active key with id {reader_id}" in again.stderr


def test_a_key_bound_to_a_project_lists_its_project(tmp_path: Path) -> None:
    key_id, key = create_key(tmp_path, "--scope", "execution:list", "--project", "acme")
    row = key_rows(tmp_path)[key_id].split()
    assert row[3:6] == ["active", "acme", "execution:list"]
    assert key not in " ".join(row)


def test_an_unknown_scope_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    refused = waitgate_script(
        tmp_path, "api-key", "create", "--scope", "execution:read", "--scope", "execution:bogus"
    )
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "Invalid value for --scope" in refused.stderr
    assert "unknown scope(s) execution:bogus;" in refused.stderr
    assert all(scope in refused.stderr for scope in SCOPES), "the known scopes are listed"
    assert waitgate(tmp_path, "migrate").exit_code == 0
    assert key_rows(tmp_path) == {}


def test_revoking_an_unknown_key_fails(tmp_path: Path) -> None:
    assert waitgate(tmp_path, "migrate").exit_code == 0
    result = waitgate(tmp_path, "api-key", "revoke", "41")
    assert result.exit_code == 1
    assert "no active key with id 41" in result.stderr
    not_a_number = waitgate(tmp_path, "api-key", "revoke", "first")
    assert not_a_number.exit_code == 2
    assert "'first' is not a valid integer" in not_a_number.stderr
