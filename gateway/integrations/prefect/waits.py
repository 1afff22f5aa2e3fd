"""Inside a Prefect flow: park a waitgate wait, hand out its link, pause (or suspend) the flow
run until the relay resumes it, and return what the person answered.

    @flow
    async def ship(order: str) -> str:
        decision = await wait_for_approval(f"Ship {order}?", timeout=timedelta(hours=4))
        form = await wait_for_input(Shipping, title="Where to?", timeout=timedelta(days=1))

Each wait is one waitgate execution whose customData names the flow run
(``prefect_flowRunId``) and the run input it answers (``prefect_inputKey``), with the relay as
its ``callbackUrl``. The relay (``gateway.integrations.prefect.adapter``) resumes the run with
``resume_flow_run(id, run_input=...)``; at the deadline it resumes it with the default this
module stored in the flow run's inputs when it parked.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from uuid import UUID

import anyio
import httpx
from prefect import get_client
from prefect.artifacts import acreate_link_artifact
from prefect.client.orchestration import PrefectClient
from prefect.context import FlowRunContext
from prefect.exceptions import Abort
from prefect.flow_runs import apause_flow_run, asuspend_flow_run
from prefect.input.run_input import RunInput, keyset_from_base_key
from prefect.logging import get_run_logger
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import BaseModel, Field

from gateway.integrations.prefect.forms import defaults, form_schema

M = TypeVar("M", bound=BaseModel)
Mode = Literal["pause", "suspend"]
"""``pause``: the flow's process waits, polling Prefect (works for any flow run).
``suspend``: the process ends and a worker runs the flow again on resume (needs a deployment)."""
Kind = Literal["input", "approval"]

NO_DEADLINE_SECONDS = 30 * 86_400
"""How long Prefect keeps a run paused when the wait has no deadline."""
GRACE = timedelta(hours=1)
"""Prefect's own pause timeout is the waitgate deadline plus this, so waitgate's timer (which
resumes with the default) always comes first and Prefect never fails the run on its own."""
DEFAULT_SUFFIX = "waitgate-default"
EXECUTION_SUFFIX = "waitgate-execution"
log = logging.getLogger("waitgate.prefect")
KEY = re.compile(r"[A-Za-z0-9-]{1,200}")
"""A wait's key: what Prefect takes in a run input's key, short enough for customData."""


class WaitEndedError(Abort):
    """The flow run was ended from outside while it waited: failed by the relay (an answer the
    flow refuses) or canceled. A Prefect ``Abort``, so the flow engine leaves that state be."""


class WaitCanceledError(WaitEndedError):
    """The wait's waitgate execution was canceled, and with it the flow run."""


class ApprovalDecision(RunInput):
    """What an approval wait returns: the verdict, who decided, and whether the deadline did."""

    approved: bool
    option: str | None = None
    comment: str = ""
    decided_by: list[str] = Field(default_factory=list)
    timed_out: bool = False


@dataclass(frozen=True)
class Waitgate:
    """Where the gateway is, the API key that parks, and the relay callbacks go to."""

    url: str
    api_key: str
    callback_url: str | None = None

    @classmethod
    def from_env(cls) -> Waitgate:
        """``WAITGATE_URL``, ``WAITGATE_API_KEY`` and ``WAITGATE_RELAY_URL``."""
        try:
            return cls(
                os.environ["WAITGATE_URL"],
                os.environ["WAITGATE_API_KEY"],
                os.environ.get("WAITGATE_RELAY_URL"),
            )
        except KeyError as missing:
            raise RuntimeError(f"set {missing.args[0]} (or pass gate=Waitgate(...))") from None


@dataclass(frozen=True)
class WaitLinks:
    """The links of a parked wait: hand out ``link`` (the page a person answers)."""

    execution_id: int
    link: str
    resume_url: str | None
    approval_urls: Mapping[str, str]
    wait_till: str | None


LinkHandler = Callable[[WaitLinks], Awaitable[None] | None]


@dataclass(frozen=True)
class _Wait:
    """One wait as the shared path parks it."""

    kind: Kind
    title: str
    park: dict[str, Any]
    answer: type[BaseModel]
    default: dict[str, Any] | None
    timeout: timedelta | None


@dataclass(frozen=True)
class _Options:
    key: str | None
    mode: Mode
    on_link: LinkHandler | None
    gate: Waitgate | None
    poll_interval: float
    artifact: bool


def _seconds(value: timedelta | float | None) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)


async def wait_for_input(
    model: type[M],
    *,
    title: str | None = None,
    description: str = "",
    timeout: timedelta | float | None = None,  # noqa: ASYNC109 - the wait's deadline, not ours
    default: M | None = None,
    key: str | None = None,
    mode: Mode = "pause",
    on_link: LinkHandler | None = None,
    gate: Waitgate | None = None,
    poll_interval: float = 10,
    artifact: bool = True,
) -> M:
    """Ask a person to fill in ``model`` as a waitgate form; the validated answer.

    At ``timeout`` (a waitgate timer) the run goes on with ``default``, or the model built from
    its own defaults (every field then needs one). ``key`` names the wait within the flow run
    (letters, digits and dashes; by default ``waitgate-1``, ``waitgate-2`` … in call order).
    """
    deadline = _seconds(timeout)
    fallback = default.model_dump(mode="json") if default is not None else defaults(model)
    if deadline is not None and fallback is None:
        raise ValueError(
            f"{model.__name__} needs a default for every field, or pass default=, "
            "so the deadline can resume with it"
        )
    schema = form_schema(model, title)
    park = {"form": {"schema": schema, "description": description}}
    wait = _Wait("input", schema["title"], park, model, fallback, deadline)
    options = _Options(key, mode, on_link, gate, poll_interval, artifact)
    answer = await _park_and_wait(wait, options)
    validated: M = model.model_validate(answer.model_dump())
    return validated


async def wait_for_approval(
    title: str,
    *,
    description: str = "",
    approvers: Sequence[str] = (),
    required: int = 1,
    channels: Sequence[str] = (),
    timeout: timedelta | float | None = None,  # noqa: ASYNC109 - the wait's deadline, not ours
    default: bool = False,
    key: str | None = None,
    mode: Mode = "pause",
    on_link: LinkHandler | None = None,
    gate: Waitgate | None = None,
    poll_interval: float = 10,
    artifact: bool = True,
) -> ApprovalDecision:
    """Ask for Approve or Reject on a waitgate approval page; the decision.

    ``approvers`` (waitgate approver ids) each get a personal link, ``required`` of them must
    approve, and ``channels`` (defined in waitgate) tell them. At ``timeout`` the run goes on
    with ``approved=default`` and ``timed_out=True``.
    """
    approval: dict[str, Any] = {"title": title, "description": description}
    if approvers:
        approval |= {"approvers": [{"id": a} for a in approvers], "required": required}
    if channels:
        approval["channels"] = list(channels)
    fallback = ApprovalDecision(approved=default, timed_out=True).model_dump(mode="json")
    park = {"approval": approval}
    wait = _Wait("approval", title, park, ApprovalDecision, fallback, _seconds(timeout))
    answer = await _park_and_wait(wait, _Options(key, mode, on_link, gate, poll_interval, artifact))
    decision: ApprovalDecision = ApprovalDecision.model_validate(answer.model_dump())
    return decision


def wait_for_input_sync(model: type[M], **options: Any) -> M:
    """``wait_for_input`` in a synchronous flow (the same keyword arguments)."""
    answer: M = run_coro_as_sync(wait_for_input(model, **options))
    return answer


def wait_for_approval_sync(title: str, **options: Any) -> ApprovalDecision:
    """``wait_for_approval`` in a synchronous flow (the same keyword arguments)."""
    decision: ApprovalDecision = run_coro_as_sync(wait_for_approval(title, **options))
    return decision


def _pause_key(context: FlowRunContext, key: str | None) -> str:
    if key is not None:
        if not KEY.fullmatch(key):
            raise ValueError("key must be 1 to 200 letters, digits or dashes")
        return key
    counter: int = context.observed_flow_pauses.get("waitgate", 0) + 1
    context.observed_flow_pauses["waitgate"] = counter
    return f"waitgate-{counter}"


async def _park_and_wait(wait: _Wait, options: _Options) -> BaseModel:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("wait_for_input and wait_for_approval run inside a Prefect flow")
    run_id: UUID = context.flow_run.id
    key = _pause_key(context, options.key)
    state_name = "suspended" if options.mode == "suspend" else "paused"
    base = f"{state_name}-{key}"
    keyset = keyset_from_base_key(base)
    async with get_client() as client:
        gate = options.gate or Waitgate.from_env()
        answered = await read_input(client, run_id, keyset["response"])
        if answered is not None:  # a suspended run, run again after its resume
            answer = wait.answer.model_validate(answered)
        else:
            links = await _hand_out(gate, client, run_id, base, wait, options)
            pause_seconds = int(
                (wait.timeout + GRACE).total_seconds() if wait.timeout else NO_DEADLINE_SECONDS
            )
            if options.mode == "suspend":  # raises Pause: this process ends here
                answer = await asuspend_flow_run(
                    wait_for_input=wait.answer, timeout=pause_seconds, key=key
                )
            else:
                answer = await _pause(
                    client, run_id, wait, key, pause_seconds, options.poll_interval
                )
            get_run_logger(context=context).info(
                "waitgate execution %s answered", links.execution_id
            )
        await _finish(gate, client, run_id, base, answer)
        return answer


async def _hand_out(
    gate: Waitgate,
    client: PrefectClient,
    run_id: UUID,
    base: str,
    wait: _Wait,
    options: _Options,
) -> WaitLinks:
    """Park the wait (its default kept first) and hand out its link: the flow run's log, a
    link artifact, and ``on_link``."""
    if wait.default is not None:
        await _save_input(client, run_id, f"{base}-{DEFAULT_SUFFIX}", wait.default)
    links = await _park(gate, client, run_id, base, wait)
    get_run_logger().info("Waiting on waitgate for %r: %s", wait.title, links.link)
    if options.artifact:
        await acreate_link_artifact(
            links.link, link_text=wait.title, description=_artifact_text(links), client=client
        )
    if options.on_link is not None:
        handed = options.on_link(links)
        if inspect.isawaitable(handed):
            await handed
    return links


async def _finish(
    gate: Waitgate, client: PrefectClient, run_id: UUID, base: str, answer: BaseModel
) -> None:
    """Finish the wait's execution (``success``, with the answer), so waitgate shows it done
    and nothing can cancel it any more. A wait answered in Prefect (its UI or API) is still
    waiting in waitgate: it is resumed there first with that answer (``resumedBy: "api"``),
    which closes its links; the callback of that resume finds the run answered and changes
    nothing. An execution already ended is fine; any other failure is only logged: the flow
    has its answer."""
    execution_id = await read_input(client, run_id, f"{base}-{EXECUTION_SUFFIX}")
    if not isinstance(execution_id, int):
        return
    url = f"{gate.url.rstrip('/')}/api/v1/executions/{execution_id}"
    data = answer.model_dump(mode="json")
    headers = {"X-N8N-API-KEY": gate.api_key}
    finish = {"status": "success", "data": data}
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(f"{url}/finish", json=finish, headers=headers)
            if response.status_code == 409:  # not running: still waiting, or ended already
                resumed = await http.post(f"{url}/resume", json={"data": data}, headers=headers)
                if resumed.status_code == 200:
                    response = await http.post(f"{url}/finish", json=finish, headers=headers)
        if response.status_code not in (200, 409):
            log.warning("waitgate did not finish execution %s: %s", execution_id, response.text)
    except httpx.HTTPError as exc:
        log.warning("waitgate did not finish execution %s: %r", execution_id, exc)


async def _pause(
    client: PrefectClient,
    run_id: UUID,
    wait: _Wait,
    key: str,
    pause_seconds: int,
    poll_interval: float,
) -> BaseModel:
    """``apause_flow_run``, which only ever notices a resume; beside it a watch for the run
    being ended from outside (canceled, or failed by the relay), which ends the wait."""
    answers: list[BaseModel] = []
    ended: list[Any] = []
    async with anyio.create_task_group() as group:

        async def pause() -> None:
            answers.append(
                await apause_flow_run(
                    wait_for_input=wait.answer,
                    timeout=pause_seconds,
                    poll_interval=poll_interval,
                    key=key,
                )
            )
            group.cancel_scope.cancel()

        async def watch() -> None:
            while True:
                await anyio.sleep(poll_interval)
                state = (await client.read_flow_run(run_id)).state
                if state is not None and (state.is_final() or state.is_cancelling()):
                    ended.append(state)
                    group.cancel_scope.cancel()
                    return

        group.start_soon(pause)
        group.start_soon(watch)
    if answers:
        return answers[0]
    state = ended[0]
    if state.is_cancelled() or state.is_cancelling():
        raise WaitCanceledError(f"the waitgate wait {wait.title!r} was canceled")
    raise WaitEndedError(f"the flow run was set {state.name} while it waited: {state.message}")


async def _park(
    gate: Waitgate, client: PrefectClient, run_id: UUID, base: str, wait: _Wait
) -> WaitLinks:
    """Create (or, on a second run of the same wait, find) the execution and park it."""
    headers = {"X-N8N-API-KEY": gate.api_key}
    api = gate.url.rstrip("/") + "/api/v1"
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        known = await read_input(client, run_id, f"{base}-{EXECUTION_SUFFIX}")
        execution = None
        if isinstance(known, int):
            found = await http.get(f"{api}/executions/{known}")
            if found.status_code == 200 and found.json().get("status") == "waiting":
                execution = found.json()
        if execution is None:
            created = _checked(
                await http.post(f"{api}/executions", json=_create_body(gate, run_id, base, wait))
            )
            await _save_input(
                client, run_id, f"{base}-{EXECUTION_SUFFIX}", created["id"], replace=True
            )
            park = dict(wait.park)
            if wait.timeout is not None:
                park["waitTill"] = _deadline(created, wait.timeout)
            parked = await http.post(f"{api}/executions/{created['id']}/wait", json=park)
            if parked.status_code >= 400:  # end the execution that will never wait
                error = {"message": parked.text[:500]}
                ending = {"status": "error", "error": error}
                await http.post(f"{api}/executions/{created['id']}/finish", json=ending)
            execution = _checked(parked)
    return _links(execution, has_deadline=wait.timeout is not None)


def _create_body(gate: Waitgate, run_id: UUID, base: str, wait: _Wait) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workflowId": f"prefect:{_flow_name()}"[:255],
        "customData": {
            "waitgate_engine": "prefect",
            "prefect_flowRunId": str(run_id),
            "prefect_inputKey": base,
            "prefect_kind": wait.kind,
        },
    }
    if gate.callback_url:
        body["callbackUrl"] = gate.callback_url
    return body


def _flow_name() -> str:
    context = FlowRunContext.get()
    flow = context.flow if context is not None else None
    return str(getattr(flow, "name", "flow"))


def _deadline(execution: Mapping[str, Any], timeout: timedelta) -> str:
    """The gateway's own start time plus ``timeout``: the gateway's clock decides, not ours."""
    started = execution.get("startedAt")
    now = datetime.fromisoformat(started) if started else datetime.now(UTC)
    return (now + timeout).isoformat()


def _checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise RuntimeError(f"waitgate answered {response.status_code}: {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


def _links(execution: Mapping[str, Any], *, has_deadline: bool) -> WaitLinks:
    resume_url = execution.get("resumeUrl")
    link = execution.get("approvalUrl") or execution.get("resumeFormUrl") or resume_url or ""
    return WaitLinks(
        execution_id=execution["id"],
        link=link,
        resume_url=resume_url,
        approval_urls=dict(execution.get("approvalUrls") or {}),
        wait_till=execution.get("waitTill") if has_deadline else None,
    )


def _artifact_text(links: WaitLinks) -> str:
    deadline = f", answer by {links.wait_till}" if links.wait_till else ""
    return f"waitgate execution {links.execution_id}{deadline}"


async def read_input(client: PrefectClient, run_id: UUID, key: str) -> Any:
    """A flow run input as JSON data; ``None`` if there is none under ``key``."""
    try:
        return json.loads(await client.read_flow_run_input(run_id, key))
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return None
        raise


async def _save_input(
    client: PrefectClient, run_id: UUID, key: str, value: Any, *, replace: bool = False
) -> None:
    """Keep ``value`` under ``key``; a value already there stays (unless ``replace``)."""
    try:
        if replace:
            await client.delete_flow_run_input(run_id, key)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 404:
            raise
    try:
        await client.create_flow_run_input(run_id, key, json.dumps(value))
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 409:
            raise
