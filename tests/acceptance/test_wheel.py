"""A wheel built from the repository holds everything the gateway serves: the pages (templates),
the OpenAPI document and the SQL (queries and migrations), and it builds without warnings.

The wheel is built from a copy of what the Dockerfile copies, offline (``--no-build-isolation``,
with this venv's setuptools), installed without dependencies into a folder of its own, and run
from outside the repository with that folder first on ``PYTHONPATH``: the repository's sources
cannot stand in for a missing file (the test checks where ``gateway`` was imported from).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.process import GatewayProcess

pytestmark = pytest.mark.acceptance
ROOT = Path(__file__).parents[2]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "gateway", "persistence")


def pip(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """This venv's pip, quietly; the test fails with its output if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The folder the wheel was installed into, and what building it printed on stderr."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    built = pip(
        "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"), cwd=source
    )
    (wheel,) = (base / "dist").glob("waitgate-*.whl")
    site = base / "site"
    pip("install", "--no-deps", "--no-compile", "--target", str(site), str(wheel), cwd=base)
    return site, built.stderr


def test_the_wheel_builds_without_warnings(installed: tuple[Path, str]) -> None:
    _, stderr = installed
    assert "warning" not in stderr.lower(), stderr
    assert "would be ignored" not in stderr, stderr


def test_the_wheel_holds_the_data_files_and_the_license(installed: tuple[Path, str]) -> None:
    site, _ = installed
    for folder, pattern in [
        ("gateway/templates", "*.html"),
        ("persistence/sql/sqlite/migrations", "*.sql"),
        ("persistence/sql/postgres/migrations", "*.sql"),
    ]:
        shipped = {p.name for p in (site / folder).glob(pattern)}
        assert shipped == {p.name for p in (ROOT / folder).glob(pattern)}, folder
    assert (site / "gateway" / "openapi.yml").is_file()
    assert (site / "persistence" / "sql" / "sqlite" / "queries.sql").is_file()
    assert list(site.glob("waitgate-*.dist-info/licenses/LICENSE"))
    assert not (site / "tests").exists()


def test_the_installed_wheel_serves_pages_and_migrates(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    site, _ = installed
    gateway = GatewayProcess(
        tmp_path, {"PYTHONPATH": str(site)}, command=str(site / "bin" / "waitgate")
    )
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gateway, persistence; print(gateway.__file__, persistence.__file__)",
        ],
        cwd=tmp_path,
        env=gateway.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(path).is_relative_to(site) for path in where), where
    gateway.start()  # ready: migrations applied from the wheel's SQL
    try:
        (key,) = gateway.admin_keys()
        with httpx.Client(base_url=gateway.url, timeout=10) as http:
            api = {"X-N8N-API-KEY": key}
            created = http.post("/api/v1/executions", json={"workflowId": "w"}, headers=api)
            eid = created.json()["id"]
            parked = http.post(
                f"/api/v1/executions/{eid}/wait",
                json={"approval": {"title": "Ship order A-1001?"}},
                headers=api,
            )
            assert parked.status_code == 200, parked.text
            page = http.get(parked.json()["approvalUrl"])
            assert (page.status_code, page.headers["content-type"]) == (
                200,
                "text/html; charset=utf-8",
            )
            assert "Ship order A-1001?" in page.text
            for path in ("/", "/api/v1/docs", "/api/v1/openapi.json"):
                assert http.get(path).status_code == 200, path
    finally:
        gateway.kill()
