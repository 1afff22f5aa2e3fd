"""Celery: a task parks a wait and ends; the relay enqueues the continuation with the answer.

Inside a task::

    @app.task
    def request_refund(order_id: str) -> str:
        parked = park("shop.tasks.after_refund", Approval(f"Refund {order_id}?"), key=order_id)
        send_to_the_approver(parked.url)
        return parked.url

    @app.task
    def after_refund(answer: dict, key: str | None = None) -> None:
        if Answer.from_json(answer).approved: ...

``park`` creates a waitgate execution whose callbacks go to ``WAITGATE_RELAY_URL``, with
customData ``celery_task`` (the continuation's name), ``celery_kind``, ``celery_default`` (the
default as JSON, at most 255 characters), ``celery_taskId`` (the continuation's task id,
``waitgate-<uuid>``, chosen now) and ``celery_key`` (optional, given to the continuation as
``key=``). The relay (``waitgate relay --engine celery``, adapter from ``relay_adapter()``)
sends the continuation with ``args=[answer]`` under that task id when the execution is resumed
(or its deadline passes: the default) or stopped (a canceled answer), unless the result
backend already knows the task, then finishes the execution in waitgate.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from celery import Celery
from celery.backends.base import DisabledBackend

from gateway.client import WaitgateClient, WaitgateError
from gateway.integrations.asks import (
    Ask,
    GatewayLink,
    Parked,
    answer,
    default_of,
    find_parked,
)
from gateway.integrations.asks import park as park_ask

if TYPE_CHECKING:
    from gateway.integrations.relay import Callback

__all__ = ["CeleryAdapter", "apark", "continuation_task_id", "park", "relay_adapter"]

ENGINE = "celery"
TASK_KEY = "celery_task"
KIND_KEY = "celery_kind"
DEFAULT_KEY = "celery_default"
KEY_KEY = "celery_key"
TASK_ID_KEY = "celery_taskId"
APP_ENV = "WAITGATE_CELERY_APP"
BROKER_ENV = "WAITGATE_CELERY_BROKER_URL"
BACKEND_ENV = "WAITGATE_CELERY_RESULT_BACKEND"
MAX_CUSTOM_VALUE = 255
REMEMBERED_SENDS = 10_000
"""Task ids this relay sent, remembered (newest) besides what the result backend knows."""

log = logging.getLogger("waitgate.celery")


def continuation_task_id(custom_data: Mapping[str, str], execution_id: int) -> str:
    """The Celery task id of an execution's continuation: chosen when it was parked (one per
    execution, unique across gateways, so a second send of it is recognisable)."""
    return custom_data.get(TASK_ID_KEY) or f"waitgate-{execution_id}"


def _custom_data(continuation: str, ask: Ask, key: str | None) -> dict[str, str]:
    default = json.dumps(default_of(ask), separators=(",", ":"))
    values = {TASK_KEY: continuation, DEFAULT_KEY: default, TASK_ID_KEY: f"waitgate-{uuid4()}"}
    if key is not None:
        values[KEY_KEY] = key
    for name, value in values.items():
        if not value or len(value) > MAX_CUSTOM_VALUE:
            raise ValueError(f"{name} must be 1 to {MAX_CUSTOM_VALUE} characters: {value[:60]!r}")
    return {"waitgate_engine": ENGINE, KIND_KEY: ask.kind, **values}


async def apark(
    continuation: str,
    ask: Ask,
    *,
    key: str | None = None,
    link: GatewayLink | None = None,
    workflow_id: str = ENGINE,
) -> Parked:
    """``park`` for async code."""
    custom = _custom_data(continuation, ask, key)
    link = link or GatewayLink.from_env()
    async with link.client() as gate:
        if key is not None:  # a retried task finds the wait it parked
            found = await find_parked(
                gate, ask.kind, {TASK_KEY: continuation, KEY_KEY: key, KIND_KEY: ask.kind}
            )
            if found is not None:
                return found
        return await park_ask(
            gate, ask, workflow_id=workflow_id, custom_data=custom, callback_url=link.relay_url
        )


def park(
    continuation: str,
    ask: Ask,
    *,
    key: str | None = None,
    link: GatewayLink | None = None,
    workflow_id: str = ENGINE,
) -> Parked:
    """Park ``ask`` in waitgate; the relay sends the task named ``continuation`` with the
    ``Answer`` (as JSON, ``args=[answer]``, and ``key=key`` when given) once it is answered,
    the deadline passes (the ask's default) or the execution is stopped.

    Call it in a task, then return. With ``key``, a task that runs again (a retry) gets the
    wait it parked instead of a second one. ``link`` defaults to ``GatewayLink.from_env()``.
    """
    return asyncio.run(apark(continuation, ask, key=key, link=link, workflow_id=workflow_id))


class CeleryAdapter:
    """The relay's Celery adapter: sends each execution's continuation task, once.

    ``client`` (optional) finishes the execution in waitgate once its continuation is sent,
    so a later stop cannot send it a second time.
    """

    def __init__(self, app: Celery, client: WaitgateClient | None = None) -> None:
        self.app = app
        self.client = client
        self._lock = threading.Lock()
        self._sent: OrderedDict[str, None] = OrderedDict()

    async def resumed(self, callback: Callback) -> None:
        """Send the continuation with the answer (the default at the deadline)."""
        await self._send(callback, canceled=False)

    async def canceled(self, callback: Callback) -> None:
        """Send the continuation with a canceled answer (an approval is rejected)."""
        await self._send(callback, canceled=True)

    async def _send(self, callback: Callback, *, canceled: bool) -> None:
        custom = callback.custom_data
        task = custom.get(TASK_KEY)
        if not task:
            log.warning("execution %s names no Celery task", callback.execution_id)
            return
        try:
            default = json.loads(custom.get(DEFAULT_KEY, "null"))
        except ValueError:
            default = None
        got = answer(
            custom.get(KIND_KEY, "webhook"),
            default,
            execution_id=callback.execution_id,
            resumed_by=callback.resumed_by,
            payload=callback.payload,
            canceled=canceled,
        )
        kwargs = {"key": custom[KEY_KEY]} if KEY_KEY in custom else {}
        task_id = continuation_task_id(custom, callback.execution_id)
        sent = await asyncio.to_thread(self._send_once, task, got.to_json(), kwargs, task_id)
        if not sent:
            log.info("continuation %s of execution %s was sent before", task_id, task)
        await self._finish(callback.execution_id, task_id)

    def _send_once(
        self, task: str, answer_json: dict[str, Any], kwargs: dict[str, str], task_id: str
    ) -> bool:
        with self._lock:  # two callbacks of one execution at once: one send
            if task_id in self._sent or self._known(task_id):
                return False
            self.app.send_task(task, args=[answer_json], kwargs=kwargs, task_id=task_id)
            self._sent[task_id] = None
            if len(self._sent) > REMEMBERED_SENDS:
                self._sent.popitem(last=False)
            return True

    def _known(self, task_id: str) -> bool:
        """Whether the result backend has heard of the task (started or done)."""
        backend = self.app.backend
        if isinstance(backend, DisabledBackend):
            return False
        status: str = backend.get_task_meta(task_id).get("status", "PENDING")
        return status != "PENDING"

    async def _finish(self, execution_id: int, task_id: str) -> None:
        if self.client is None:
            return
        try:
            await self.client.finish(execution_id, data={"celeryTaskId": task_id})
        except WaitgateError as exc:
            if exc.status != 409:  # 409: finished or canceled already
                raise


def load_app(environ: Mapping[str, str] = os.environ) -> Celery:
    """The Celery app of ``WAITGATE_CELERY_APP=module:attribute``, or one made from
    ``WAITGATE_CELERY_BROKER_URL`` (and ``WAITGATE_CELERY_RESULT_BACKEND``)."""
    spec = environ.get(APP_ENV)
    if spec:
        module_name, _, attribute = spec.partition(":")
        if not module_name or not attribute:
            raise ValueError(f"{APP_ENV} must read module:attribute, not {spec!r}")
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
        if not isinstance(found, Celery):
            raise TypeError(f"{spec} is not a Celery app")
        return found
    broker = environ.get(BROKER_ENV)
    if not broker:
        raise RuntimeError(f"set {APP_ENV}=module:attribute or {BROKER_ENV}")
    return Celery("waitgate-relay", broker=broker, backend=environ.get(BACKEND_ENV))


def relay_adapter(
    environ: Mapping[str, str] = os.environ,
) -> AbstractAsyncContextManager[CeleryAdapter]:
    """The adapter for ``waitgate relay --engine celery`` (see ``load_app``); with
    ``WAITGATE_URL`` and ``WAITGATE_API_KEY`` it finishes each execution it continued."""

    @asynccontextmanager
    async def build() -> AsyncIterator[CeleryAdapter]:
        app = load_app(environ)
        url, key = environ.get("WAITGATE_URL"), environ.get("WAITGATE_API_KEY")
        try:
            if url and key:
                async with WaitgateClient(url, key) as client:
                    yield CeleryAdapter(app, client)
            else:
                yield CeleryAdapter(app)
        finally:
            if not environ.get(APP_ENV):  # the app made here; the user's own app stays open
                await asyncio.to_thread(app.close)

    return build()
