"""The callback relay: waitgate's signed callbacks in, one engine action per event out.

Every engine adapter shares it. A callback is verified (Standard Webhooks signature with any of
the configured secrets, timestamp within tolerance), its ``webhook-id`` claimed in a small
store of seen ids, and the event handed to the engine's ``Adapter``. The answer tells waitgate
what to do next:

- 200: done (or a duplicate of a delivery already done: the adapter is not called again);
- 401: the signature does not check out (nothing is done; waitgate's retries will not help);
- 400 / 413: the body is not a callback we understand, or too large;
- 409: the same ``webhook-id`` is being handled right now (waitgate retries later and then
  gets 200 as a duplicate);
- 503: the adapter failed; the id is released, so waitgate's retry runs it again.

``relay_app`` is an ASGI app to run (``waitgate relay --engine …``) or mount in the engine's
own web app; ``handle_callback`` is the same logic for any other web framework.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.client import CallbackVerificationError, verify_callback
from gateway.http import EXCEPTION_HANDLERS, ApiError, error_body, read_body
from gateway.integrations.seen_ids import MemorySeenIds, SeenIds, SqliteSeenIds

__all__ = [
    "Adapter",
    "Callback",
    "MemorySeenIds",
    "SeenIds",
    "SqliteSeenIds",
    "handle_callback",
    "relay_app",
]

CallbackType = Literal["execution.resumed", "execution.canceled", "execution.retry"]
CALLBACK_TYPES: frozenset[str] = frozenset(get_args(CallbackType))
MAX_CALLBACK_BYTES = 16 * 1024 * 1024
"""As large as a resume body waitgate accepts by default (``WAITGATE_MAX_BODY_BYTES``)."""

log = logging.getLogger("waitgate.relay")


@dataclass(frozen=True)
class Callback:
    """One verified callback event."""

    id: str
    """The ``webhook-id``: the same for every retry of one delivery."""
    type: CallbackType
    execution_id: int
    workflow_id: str
    custom_data: dict[str, str]
    resumed_by: str | None
    """How the wait ended (``webhook``, ``approval``, ``form``, ``event``, ``timeout``, ``api``);
    ``None`` unless ``execution.resumed``."""
    payload: Any
    """What resumed the wait (``None`` for a timer, and unless ``execution.resumed``)."""
    wait_seq: int | None
    body: dict[str, Any]
    """The whole decoded event."""

    @property
    def timed_out(self) -> bool:
        """Whether the wait's deadline resumed it (the engine should take its default)."""
        return self.resumed_by == "timeout"

    @classmethod
    def parse(cls, message_id: str, body: Any) -> Callback:
        """The callback in a decoded event body; ``ValueError`` naming what is wrong."""
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise ValueError("the callback body must be an object with a 'data' object")
        kind = body.get("type")
        if kind not in CALLBACK_TYPES:
            raise ValueError(f"unknown callback type {kind!r}")
        data: dict[str, Any] = body["data"]
        execution_id = data.get("executionId")
        if not isinstance(execution_id, int) or isinstance(execution_id, bool):
            raise ValueError("data.executionId must be an integer")
        custom = data.get("customData") or {}
        if not isinstance(custom, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in custom.items()
        ):
            raise ValueError("data.customData must map strings to strings")
        wait = data.get("wait")
        seq = wait.get("seq") if isinstance(wait, dict) else None
        resumed_by = data.get("resumedBy")
        return cls(
            id=message_id,
            type=kind,
            execution_id=execution_id,
            workflow_id=str(data.get("workflowId", "")),
            custom_data=dict(custom),
            resumed_by=resumed_by if isinstance(resumed_by, str) else None,
            payload=data.get("payload"),
            wait_seq=seq if isinstance(seq, int) else None,
            body=body,
        )


@runtime_checkable
class Adapter(Protocol):
    """What an engine does with a callback. Raising makes the relay answer 503 (waitgate
    retries the delivery); returning marks the ``webhook-id`` done."""

    async def resumed(self, callback: Callback) -> None:
        """The execution's wait ended: continue the engine's run with ``callback.payload``
        (or its default when ``callback.timed_out``)."""

    async def canceled(self, callback: Callback) -> None:
        """The execution was stopped in waitgate: cancel or fail the engine's run."""


AdapterFactory = Callable[[], AbstractAsyncContextManager[Adapter]]
"""``gateway.integrations.<engine>.relay_adapter``: builds the adapter from the environment."""


async def handle_callback(
    adapter: Adapter,
    secrets: Sequence[str],
    seen: SeenIds,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: Callable[[], float] = time.time,
) -> tuple[int, dict[str, Any]]:
    """Verify, deduplicate and dispatch one callback; the HTTP status and JSON body to answer."""
    event: Any = None
    for secret in secrets:
        try:
            event = verify_callback(headers, body, secret, now=now())
            break
        except CallbackVerificationError:
            continue
        except ValueError:
            return 400, error_body(400, "The callback body is not JSON")
    if event is None:
        return 401, error_body(401, "The callback signature does not verify")
    message_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
    try:
        callback = Callback.parse(message_id, event)
    except ValueError as exc:
        return 400, error_body(400, f"Not a waitgate callback: {exc}")
    claim = await seen.claim(message_id, now())
    if claim == "done":
        return 200, {"status": "duplicate", "webhookId": message_id}
    if claim == "busy":
        return 409, error_body(409, f"The callback {message_id} is being handled right now")
    try:
        if callback.type == "execution.resumed":
            await adapter.resumed(callback)
        elif callback.type == "execution.canceled":
            await adapter.canceled(callback)
    except Exception as exc:  # any adapter failure is answered for a retry
        await seen.release(message_id)
        log.warning(
            "callback %s for execution %s failed: %r", message_id, callback.execution_id, exc
        )
        return 503, error_body(
            503,
            f"The engine did not take the callback: {type(exc).__name__}",
            hint="waitgate retries the delivery",
        )
    await seen.done(message_id, now())
    handled = callback.type != "execution.retry"
    return 200, {"status": "handled" if handled else "ignored", "webhookId": message_id}


def relay_app(
    adapter: Adapter | AdapterFactory,
    secrets: Sequence[str],
    *,
    seen: SeenIds | None = None,
    now: Callable[[], float] = time.time,
    max_body_bytes: int = MAX_CALLBACK_BYTES,
) -> Starlette:
    """The relay as an ASGI app: ``POST /`` (or ``/callbacks``) takes callbacks, ``GET
    /healthz`` answers ``ok``. ``adapter`` is an adapter, or a factory whose context the app's
    lifespan enters (``relay_adapter`` of an engine module). ``seen`` defaults to ids kept in
    memory: give a ``SqliteSeenIds`` to keep duplicates out across restarts."""
    if not secrets:
        raise ValueError("the relay needs at least one callback secret (whsec_…)")
    remembered = seen if seen is not None else MemorySeenIds()
    holder: list[Adapter] = []

    @asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        if isinstance(adapter, Adapter):
            holder.append(adapter)
            yield
        else:
            async with adapter() as built:
                holder.append(built)
                yield
        holder.clear()

    async def take(request: Request) -> Response:
        if not holder:
            raise ApiError(503, "The relay is starting", hint="waitgate retries the delivery")
        body = await read_body(request, max_body_bytes)
        status, answer = await handle_callback(
            holder[0], secrets, remembered, request.headers, body, now=now
        )
        return JSONResponse(answer, status_code=status)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok" if holder else "starting"})

    return Starlette(
        routes=[
            Route("/", take, methods=["POST"]),
            Route("/callbacks", take, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )


def parse_secrets(raw: str) -> tuple[str, ...]:
    """The ``whsec_`` secrets of a setting, newest first, separated by spaces or commas."""
    return tuple(part for part in raw.replace(",", " ").split() if part)
