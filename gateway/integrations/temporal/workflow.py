"""Workflow-side helpers: park a wait in waitgate and continue with what ended it.

Deterministic, for use inside ``@workflow.defn`` code:

    decision = await wait_for(approval={"title": "Ship order A-1001?"},
                              timeout=timedelta(hours=24), default={"approved": False})

``wait_for`` runs the ``waitgate_park`` activity, which completes when the wait ends (the
relay completes it); ``wait_for_signal`` runs ``waitgate_park_for_signal``, which returns at
once, and waits for the relay's ``waitgate_resumed`` signal. Either returns a ``Resumed``;
when waitgate's deadline passes, its payload is ``default``. The links of each wait are kept
for the ``waitgate_links`` query and for ``links(key)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as TemporalTimeout

from gateway.integrations.temporal.shapes import (
    CANCELED_ERROR,
    CANCELED_SIGNAL,
    FINISH_ACTIVITY,
    LINKS_QUERY,
    PARK_ACTIVITY,
    PARK_FOR_SIGNAL_ACTIVITY,
    PARKED_SIGNAL,
    RESUMED_SIGNAL,
    STOP_ACTIVITY,
    Links,
    ParkRequest,
    Resumed,
)

DEFAULT_GRACE = timedelta(minutes=10)
"""How long past waitgate's deadline the workflow still waits for its callback."""
CALL_TIMEOUT = timedelta(seconds=30)
"""Start-to-close of one attempt of the activities that return at once."""
_STATE = "_waitgate_temporal_state"


class _Waits:
    """What the helpers keep for one workflow run, and its signal and query handlers."""

    def __init__(self) -> None:
        self.count = 0
        self.links: dict[str, Links] = {}
        self.resumed: dict[int, dict[str, Any]] = {}
        self.canceled: set[int] = set()

    def on_parked(self, raw: Any) -> None:
        try:
            links = Links.from_wire(raw)
        except (KeyError, TypeError, ValueError):
            workflow.logger.warning("ignored a malformed %s signal", PARKED_SIGNAL)
            return
        self.links[links.key] = links

    def on_resumed(self, raw: Any) -> None:
        execution_id = _execution_id(raw)
        if execution_id is None:
            workflow.logger.warning("ignored a malformed %s signal", RESUMED_SIGNAL)
            return
        self.resumed.setdefault(execution_id, raw)  # the first one counts; repeats change nothing

    def on_canceled(self, raw: Any) -> None:
        execution_id = _execution_id(raw)
        if execution_id is None:
            workflow.logger.warning("ignored a malformed %s signal", CANCELED_SIGNAL)
            return
        self.canceled.add(execution_id)

    def query(self) -> dict[str, dict[str, Any]]:
        return {key: links.to_wire() for key, links in self.links.items()}


def _execution_id(raw: Any) -> int | None:
    value = raw.get("executionId") if isinstance(raw, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _waits() -> _Waits:
    """This run's state, made (and its handlers set) by the first wait."""
    instance = workflow.instance()
    found: _Waits | None = getattr(instance, _STATE, None)
    if found is None:
        found = _Waits()
        setattr(instance, _STATE, found)
        workflow.set_signal_handler(PARKED_SIGNAL, found.on_parked)
        workflow.set_signal_handler(RESUMED_SIGNAL, found.on_resumed)
        workflow.set_signal_handler(CANCELED_SIGNAL, found.on_canceled)
        workflow.set_query_handler(LINKS_QUERY, found.query)
    return found


def _request(
    waits: _Waits,
    timeout: timedelta,
    key: str | None,
    name: str | None,
    wait: Mapping[str, Any],
    custom_data: Mapping[str, str] | None,
    data: Any,
) -> ParkRequest:
    if timeout <= timedelta(0):
        raise ValueError("timeout must be positive")
    waits.count += 1
    spec = {kind: value for kind, value in wait.items() if value is not None}
    return ParkRequest(
        key=key or str(waits.count),
        wait=spec or {"webhook": {"httpMethod": "POST"}},
        wait_till=(workflow.now() + timeout).isoformat(),
        name=name or workflow.info().workflow_type,
        custom_data=dict(custom_data or {}),
        data=data,
    )


async def wait_for(
    *,
    timeout: timedelta,  # noqa: ASYNC109 - the wait's deadline in waitgate, not a cancel-after
    default: Any = None,
    webhook: Mapping[str, Any] | None = None,
    approval: Mapping[str, Any] | None = None,
    form: Mapping[str, Any] | None = None,
    events: Sequence[Mapping[str, Any]] | None = None,
    key: str | None = None,
    name: str | None = None,
    custom_data: Mapping[str, str] | None = None,
    data: Any = None,
    grace: timedelta = DEFAULT_GRACE,
    task_queue: str | None = None,
    retry_policy: RetryPolicy | None = None,
) -> Resumed:
    """Park a wait (``webhook``, ``approval``, ``form``, ``events`` as ``POST
    /executions/{id}/wait`` takes them; a POST webhook when none is given) with a deadline
    ``timeout`` from now, and return how it ended: ``default`` as payload at the deadline.

    The ``waitgate_park`` activity completes when the relay hears the wait ended; it may take
    ``timeout + grace`` in all. Raises ``ApplicationError`` of type ``WaitgateCanceled`` when
    the execution is stopped in waitgate.
    """
    waits = _waits()
    wait = {"webhook": webhook, "approval": approval, "form": form, "events": events}
    request = _request(waits, timeout, key, name, wait, custom_data, data)
    try:
        raw = await workflow.execute_activity(
            PARK_ACTIVITY,
            request,
            activity_id=f"waitgate-{waits.count}",
            schedule_to_close_timeout=timeout + grace,
            task_queue=task_queue,
            retry_policy=retry_policy,
        )
    except ActivityError as error:
        return await _failed(error, waits, request.key, default, task_queue)
    except asyncio.CancelledError:
        await _stop(waits, request.key, task_queue)
        raise
    resumed = Resumed.from_wire(raw, default)
    known = waits.links.get(request.key)
    if known is not None and known.execution_id != resumed.execution_id:
        # customData changed through the API to point another execution's callback here.
        raise ApplicationError(
            f"wait {request.key!r} parked execution {known.execution_id} but was completed by "
            f"execution {resumed.execution_id}",
            type="WaitgateMismatch",
            non_retryable=True,
        )
    return await _finish(resumed, task_queue)


async def wait_for_signal(
    *,
    timeout: timedelta,  # noqa: ASYNC109 - the wait's deadline in waitgate, not a cancel-after
    default: Any = None,
    webhook: Mapping[str, Any] | None = None,
    approval: Mapping[str, Any] | None = None,
    form: Mapping[str, Any] | None = None,
    events: Sequence[Mapping[str, Any]] | None = None,
    key: str | None = None,
    name: str | None = None,
    custom_data: Mapping[str, str] | None = None,
    data: Any = None,
    grace: timedelta = DEFAULT_GRACE,
    task_queue: str | None = None,
    retry_policy: RetryPolicy | None = None,
) -> Resumed:
    """Like ``wait_for``, but the park activity returns at once and the relay signals the
    workflow (``waitgate_resumed``); no activity is open while it waits. Past ``timeout +
    grace`` without a signal, it takes ``default`` as if waitgate's deadline had said so."""
    waits = _waits()
    wait = {"webhook": webhook, "approval": approval, "form": form, "events": events}
    request = _request(waits, timeout, key, name, wait, custom_data, data)
    raw_links = await workflow.execute_activity(
        PARK_FOR_SIGNAL_ACTIVITY,
        request,
        activity_id=f"waitgate-{waits.count}",
        start_to_close_timeout=CALL_TIMEOUT,
        schedule_to_close_timeout=max(timeout, CALL_TIMEOUT * 4),
        task_queue=task_queue,
        retry_policy=retry_policy,
    )
    parked = Links.from_wire(raw_links)
    waits.links[parked.key] = parked
    ended = parked.execution_id
    try:
        await workflow.wait_condition(
            lambda: ended in waits.resumed or ended in waits.canceled,
            timeout=timeout + grace,
        )
    except TimeoutError:
        return await _no_callback(waits, parked.key, default, task_queue)
    except asyncio.CancelledError:
        await _stop(waits, parked.key, task_queue)
        raise
    if ended in waits.resumed:
        return await _finish(Resumed.from_wire(waits.resumed[ended], default), task_queue)
    raise _canceled(ended)


async def links(key: str) -> Links:
    """The links of the wait named ``key`` (``wait_for(key=…)``), once it is parked: run the
    wait as a task and hand its URL out meanwhile."""
    waits = _waits()
    await workflow.wait_condition(lambda: key in waits.links)
    return waits.links[key]


async def _failed(
    error: ActivityError, waits: _Waits, key: str, default: Any, task_queue: str | None
) -> Resumed:
    """What a failed ``waitgate_park`` means for the workflow."""
    cause = error.cause
    known = waits.links.get(key)
    execution_id = known.execution_id if known is not None else 0
    if isinstance(cause, ApplicationError) and cause.type == CANCELED_ERROR:
        raise _canceled(execution_id) from error
    if isinstance(cause, TemporalTimeout):
        return await _no_callback(waits, key, default, task_queue)
    if isinstance(cause, CancelledError):
        await _stop(waits, key, task_queue)
    raise error


async def _no_callback(waits: _Waits, key: str, default: Any, task_queue: str | None) -> Resumed:
    """``timeout + grace`` passed without a callback (waitgate or the relay down that long):
    the run takes its default, and the execution is stopped so that its link acts no more."""
    known = waits.links.get(key)
    execution_id = known.execution_id if known is not None else 0
    workflow.logger.warning("no callback for waitgate execution %s: default taken", execution_id)
    await _stop(waits, key, task_queue)
    return Resumed(execution_id=execution_id, resumed_by="timeout", payload=default, timed_out=True)


async def _finish(resumed: Resumed, task_queue: str | None) -> Resumed:
    """Mark the execution done in waitgate (``success``): the run has taken its outcome. A
    gateway that cannot be reached does not hold the run up: it is logged and passed over."""
    try:
        await workflow.execute_activity(
            FINISH_ACTIVITY,
            args=[resumed.execution_id, {"resumedBy": resumed.resumed_by}],
            start_to_close_timeout=CALL_TIMEOUT,
            schedule_to_close_timeout=CALL_TIMEOUT * 4,
            task_queue=task_queue,
        )
    except ActivityError as error:
        workflow.logger.warning(
            "waitgate execution %s was not finished: %s", resumed.execution_id, error.cause
        )
    return resumed


def _canceled(execution_id: int) -> ApplicationError:
    return ApplicationError(
        f"waitgate execution {execution_id} was canceled", type=CANCELED_ERROR, non_retryable=True
    )


async def _stop(waits: _Waits, key: str, task_queue: str | None) -> None:
    """Stop the wait's execution (the run no longer waits for it) so nobody answers in vain;
    a gateway out of reach is logged and passed over."""
    known = waits.links.get(key)
    if known is None:
        return
    try:
        await workflow.execute_activity(
            STOP_ACTIVITY,
            known.execution_id,
            start_to_close_timeout=CALL_TIMEOUT,
            schedule_to_close_timeout=CALL_TIMEOUT * 4,
            task_queue=task_queue,
        )
    except ActivityError as error:
        workflow.logger.warning(
            "waitgate execution %s was not stopped: %s", known.execution_id, error.cause
        )
