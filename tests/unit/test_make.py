"""The Makefile: ``make run`` installs what serving needs (no test tools) and serves on the
``HOST`` and ``PORT`` given; ``make lint`` and ``make test`` install the test extras, and ``make
test`` a venv per engine whose adapter it tests."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(tmp_path: Path, target: str, *variables: str) -> list[list[str]]:
    """The commands ``make TARGET`` would run for a fresh venv in ``tmp_path``, split."""
    done = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}", *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PORT": "9", "HOST": "example.com"},
    )
    return [shlex.split(line) for line in done.stdout.splitlines()]


def installs(commands: list[list[str]]) -> list[str]:
    """What the ``pip install -e`` commands install."""
    return [c[-1] for c in commands if c[0].endswith("/pip") and "-e" in c]


def test_make_run_installs_the_runtime_only_and_serves_on_the_default_port(
    tmp_path: Path,
) -> None:
    commands = planned(tmp_path, "run")
    assert installs(commands) == [".[postgres]"]
    serve = commands[-1]
    assert serve[0] == str(tmp_path / "venv" / "bin" / "waitgate")
    assert serve[1:] == ["serve", "--host", "127.0.0.1", "--port", "5678"]  # not the env's


def test_make_run_serves_on_the_port_and_host_given(tmp_path: Path) -> None:
    serve = planned(tmp_path, "run", "PORT=5701", "HOST=0.0.0.0")[-1]
    assert serve[1:] == ["serve", "--host", "0.0.0.0", "--port", "5701"]


def test_make_lint_installs_the_test_extras(tmp_path: Path) -> None:
    assert installs(planned(tmp_path, "lint")) == [".[test,postgres]"]


def test_make_test_installs_the_test_extras_and_a_venv_per_engine(tmp_path: Path) -> None:
    commands = planned(tmp_path, "test", f"ENGINE_VENVS={tmp_path / 'engines'}")
    engines = ["temporal", "prefect", "airflow", "langgraph", "celery"]
    assert installs(commands) == [".[test,postgres]", *(f".[engine-test,{e}]" for e in engines)]
    runs = [c for c in commands if c[0].endswith("/pytest") and "tests/engines/temporal" in c]
    assert runs[0][0] == str(tmp_path / "engines" / "temporal" / "bin" / "pytest")
