"""The runs ``tests/load/bench_instructions.py`` has callgrind count (here without it): each
drives its app to the end, and a refused request stops it rather than being counted."""

from __future__ import annotations

import subprocess
import sys

import pytest
from starlette.types import Receive, Scope, Send

from tests.load.bench_instructions import call, in_turns


@pytest.mark.parametrize("target", ["gateway", "ceiling"])
def test_the_instruction_counts_drive_each_app_to_the_end(target: str) -> None:
    """The runs callgrind counts (here without it): parks, then resumes, every answer a 2xx."""
    for phase in ("park", "resume"):
        command = [sys.executable, "-m", "tests.load.bench_instructions", target, phase, "40"]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]


async def test_an_instruction_count_stops_at_a_refused_request() -> None:
    async def refusing(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 409, "headers": []})
        await send({"type": "http.response.body", "body": b'{"message":"conflict"}'})

    with pytest.raises(RuntimeError, match="409"):
        await in_turns([lambda: call(refusing, "/webhook-waiting/1?signature=x", b"{}")])
