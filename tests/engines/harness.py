"""A real waitgate for engine tests: the in-process app on a loopback socket, in a thread.

Engines run their own event loops (or none: Celery, Airflow's ``dag.test()``), so the gateway
gets a thread and a loop of its own. Time is a ``ManualClock``: ``advance`` moves it from any
thread, so a deadline fires without sleeping through it.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import uvicorn

from gateway.app import create_app
from gateway.auth import generate_key, hash_key
from gateway.clock import ManualClock
from gateway.config import Secret, Settings
from gateway.services import Services
from tests.receiver import free_port

T = TypeVar("T")
CALLBACK_SECRET = "whsec_" + base64.b64encode(b"engine-tests-callback-secret-32b").decode()


class ServedApp:
    """An ASGI app served by uvicorn on a loopback port, in a thread and event loop of its own
    (run in a copy of ``context`` when given: an engine's settings may live in context vars)."""

    def __init__(
        self,
        app: Any,
        name: str,
        *,
        port: int | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._context = context
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _serve(self) -> None:
        if self._context is not None:
            self._context.copy().run(self._run)
        else:
            self._run()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._server.serve())
        finally:
            self.loop.close()  # else its self-pipe leaks: a ResourceWarning, an error here

    def start(self, within: float = 60.0) -> None:
        """Serve; returns when the socket answers."""
        self._thread.start()
        deadline = time.monotonic() + within
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self._thread.name} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(20)

    def __enter__(self) -> ServedApp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GatewayThread:
    """waitgate on ``http://127.0.0.1:<port>`` with a SQLite file in ``data_dir``.

    ``allowed_origins`` are the callback origins executions may name (the relay's);
    ``url``, ``admin_key`` and ``callback_secret`` are what an engine adapter is given.
    """

    def __init__(self, data_dir: Path, *, allowed_origins: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.callback_secret = CALLBACK_SECRET
        self.admin_key = generate_key()
        self.clock = ManualClock(start_ms=int(time.time() * 1000))
        self.settings = Settings(
            database_url=f"sqlite:///{data_dir / 'waitgate.db'}",
            public_url=self.url,
            secret_keys=(Secret("engine-tests-secret-key-of-32-characters"),),
            data_dir=data_dir,
            callback_secret=Secret(CALLBACK_SECRET),
            callback_allowed_origins=allowed_origins,
            align_clock_to_database=False,
        )
        self._app = create_app(self.settings, clock=self.clock)
        self._served = ServedApp(self._app, "waitgate", port=self.port)

    @property
    def services(self) -> Services:
        """The running gateway's services (store, scheduler, dispatcher)."""
        found: Services = self._app.state.services
        return found

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``work`` on the gateway's loop and wait for its result (from any thread)."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            work, self._served.loop
        )
        return future.result(timeout)

    def advance(self, ms: int) -> None:
        """Move the gateway's time forward (due timers fire, backoffs pass)."""
        self._served.loop.call_soon_threadsafe(self.clock.advance, ms)

    def start(self) -> GatewayThread:
        """Serve, and make the admin key; returns when the socket answers."""
        self._served.start(within=20)
        now = self.clock.now_ms()
        key_hash = hash_key(self.admin_key)
        store = self.services.store
        self.run(
            store.create_api_key("engines", key_hash, self.admin_key[:10], ("admin",), None, now)
        )
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._served.stop()

    def __enter__(self) -> GatewayThread:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self) -> httpx.Client:
        """A blocking admin client of the API (``/api/v1``)."""
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"X-N8N-API-KEY": self.admin_key}, timeout=10
        )

    def wait_until(self, check: Any, within: float = 15.0, what: str = "condition") -> Any:
        """Poll ``check()`` (every 20 ms, real time) until it returns something truthy."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{what} did not happen within {within} s")
