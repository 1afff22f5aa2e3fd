"""Run ``waitgate serve`` as a real process, as users do, for acceptance and load tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.receiver import free_port

WAITGATE = str(Path(sys.executable).with_name("waitgate"))
ADMIN_KEY = re.compile(r"^\s+(wg_\S+)\s*$", re.MULTILINE)


class GatewayProcess:
    """One ``waitgate serve`` (its workers in one process group) on a free port.

    ``env`` is what it will be started with (``WAITGATE_PUBLIC_URL`` its own URL); change it
    before ``start()``. ``command`` is the ``waitgate`` script to run (default: this venv's).
    """

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str] | None = None,
        *,
        workers: int = 1,
        name: str = "gw",
        command: str = WAITGATE,
    ) -> None:
        self.workdir = workdir
        self.command = command
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.name = name
        self.env = {
            **os.environ,
            "WAITGATE_DATABASE_URL": f"sqlite:///{workdir / 'waitgate.db'}",
            "WAITGATE_PUBLIC_URL": self.url,
            "WAITGATE_SCHEDULER_MAX_SLEEP": "1",
            "WAITGATE_SHUTDOWN_TIMEOUT": "2",
            **(env or {}),
        }
        self.env["WAITGATE_PUBLIC_URL"] = self.url
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def stdout_path(self) -> Path:
        """Where this process's stdout goes (appended across restarts)."""
        return self.workdir / f"{self.name}.stdout"

    @property
    def stderr_path(self) -> Path:
        """Where this process's stderr goes (appended across restarts)."""
        return self.workdir / f"{self.name}.stderr"

    def start(self, timeout: float = 20.0) -> None:
        """Start it and wait until ``/readyz`` answers 200."""
        self.starts += 1
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self._process = subprocess.Popen(
                [self.command, "serve", "--port", str(self.port), "--workers", str(self.workers)],
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"waitgate exited with {self._process.returncode}: {self.logs()}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"waitgate did not become ready: {self.logs()}")

    @property
    def pid(self) -> int | None:
        """The main process's id while it runs."""
        return None if self._process is None else self._process.pid

    def kill(self) -> None:
        """SIGKILL every process of it, at once: no shutdown code runs."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then wait for a graceful exit (SIGKILL after 10 s)."""
        self._signal(signal.SIGTERM, wait=10)

    def _signal(self, sig: signal.Signals, wait: float = 5) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        self._process = None

    def output(self) -> str:
        """Everything it printed on stdout so far."""
        return self.stdout_path.read_text() if self.stdout_path.exists() else ""

    def logs(self) -> str:
        """The tail of stderr, for failure messages."""
        text = self.stderr_path.read_text() if self.stderr_path.exists() else ""
        return text[-3000:]

    def admin_keys(self) -> list[str]:
        """Admin keys printed at first start (one at most, however often it started)."""
        return ADMIN_KEY.findall(self.output())
