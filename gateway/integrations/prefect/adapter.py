"""The relay's Prefect side: a waitgate callback resumes (or cancels) the flow run it names.

``execution.resumed`` becomes ``resume_flow_run(id, run_input=...)``: the form's data, the
approval's decision, or at the deadline (``resumedBy: "timeout"``) the default the flow stored
when it parked. ``execution.canceled`` sets the flow run Cancelled. Both are idempotent against
Prefect itself: a wait whose run input is already there (the run was resumed, by this relay or
anyone) or a run already in a final state is done, not an error; a run that has not reached its
pause yet is an error, so the relay answers 503 and waitgate delivers again later.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.input.run_input import Keyset, keyset_from_base_key
from prefect.states import Cancelled, Failed

from gateway.integrations.prefect.waits import DEFAULT_SUFFIX, read_input
from gateway.integrations.relay import Callback

log = logging.getLogger("waitgate.relay.prefect")
MAX_COMMENT = 1000


class NotPausedYetError(Exception):
    """The flow run has not reached the pause this callback answers; deliver it again later."""


class RefusedInputError(Exception):
    """What resumed the wait is not an answer the flow takes."""


def approval_input(payload: Any) -> dict[str, Any]:
    """An ``ApprovalDecision`` from what ended an approval wait: its page, named approvers'
    decisions, or a call of its resume URL or the API with ``{"approved": true|false}``."""
    source = payload
    if isinstance(payload, dict) and "approved" not in payload:
        source = payload.get("body")
    if not isinstance(source, dict) or not isinstance(source.get("approved"), bool):
        raise RefusedInputError("an approval is resumed with {approved: true|false}")
    decisions = [d for d in source.get("decisions") or () if isinstance(d, dict)]
    comments = [d.get("comment") for d in decisions] or [source.get("comment")]
    option = source.get("option")
    return {
        "approved": source["approved"],
        "option": option if isinstance(option, str) else None,
        "comment": "; ".join(c for c in comments if isinstance(c, str) and c)[:MAX_COMMENT],
        "decided_by": [d["approver"] for d in decisions if isinstance(d.get("approver"), str)],
        "timed_out": source.get("timedOut") is True,
    }


def form_input(payload: Any) -> dict[str, Any]:
    """The data of a form wait: the form's (or the API's) ``formData``, or the JSON object a
    call of the resume URL sent."""
    if isinstance(payload, dict):
        data = payload.get("formData", payload.get("body"))
        if isinstance(data, dict):
            return data
    raise RefusedInputError("a form wait is resumed with the form's fields as a JSON object")


class PrefectAdapter:
    """Resumes and cancels the flow runs waitgate callbacks name, through one Prefect client."""

    def __init__(self, client: PrefectClient) -> None:
        self.client = client

    async def resumed(self, callback: Callback) -> None:
        """Resume the flow run with the answer (the stored default after a deadline)."""
        target = _target(callback)
        if target is None:
            return
        run_id, base = target
        keyset = keyset_from_base_key(base)
        if await self._answered(run_id, keyset, callback):
            return
        try:
            if callback.timed_out:
                run_input = await read_input(self.client, run_id, f"{base}-{DEFAULT_SUFFIX}")
                if not isinstance(run_input, dict):
                    raise RefusedInputError("the wait has no default to resume with")
            elif callback.custom_data.get("prefect_kind") == "approval":
                run_input = approval_input(callback.payload)
            else:
                run_input = form_input(callback.payload)
        except RefusedInputError as exc:
            await self._fail(run_id, callback, str(exc))
            return
        await self._resume(run_id, keyset, run_input, callback)

    async def canceled(self, callback: Callback) -> None:
        """Cancel the flow run, unless its wait was answered already or it has ended."""
        target = _target(callback)
        if target is None:
            return
        run_id, base = target
        if await self._answered(run_id, keyset_from_base_key(base), callback):
            return
        message = f"waitgate execution {callback.execution_id} was canceled"
        await self.client.set_flow_run_state(run_id, Cancelled(message=message), force=True)
        log.info("flow run %s canceled (execution %s)", run_id, callback.execution_id)

    async def _answered(self, run_id: UUID, keyset: Keyset, callback: Callback) -> bool:
        """Whether nothing is left to do: the wait has its answer, or the run has ended."""
        if await read_input(self.client, run_id, keyset["response"]) is not None:
            log.info("flow run %s already resumed at %s", run_id, keyset["response"])
            return True
        state = (await self.client.read_flow_run(run_id)).state
        if state is not None and state.is_final():
            log.info("flow run %s is %s; execution %s", run_id, state.name, callback.execution_id)
            return True
        return False

    async def _resume(
        self, run_id: UUID, keyset: Keyset, run_input: dict[str, Any], callback: Callback
    ) -> None:
        state = (await self.client.read_flow_run(run_id)).state
        paused_at = state.state_details.run_input_keyset if state is not None else None
        if state is None or not state.is_paused() or paused_at != keyset:
            raise NotPausedYetError(f"flow run {run_id} is not paused at {keyset['response']}")
        result = await self.client.resume_flow_run(run_id, run_input=run_input)
        if result.status == SetStateStatus.ACCEPT:
            log.info("flow run %s resumed (execution %s)", run_id, callback.execution_id)
            return
        if await self._answered(run_id, keyset, callback):  # resumed meanwhile, or timed out
            return
        reason = getattr(result.details, "reason", "") or ""
        if result.status != SetStateStatus.REJECT or "not found" in reason:
            raise NotPausedYetError(f"flow run {run_id} cannot be resumed yet: {reason}")
        if result.state is not None and result.state.type == StateType.FAILED:
            return
        await self._fail(run_id, callback, reason)

    async def _fail(self, run_id: UUID, callback: Callback, reason: str) -> None:
        """A wait resumed with something the flow refuses: retrying cannot help, so the run
        fails, saying why."""
        message = f"waitgate execution {callback.execution_id} resumed with a refused answer: "
        message += reason
        await self.client.set_flow_run_state(run_id, Failed(message=message[:2000]), force=True)
        log.warning("flow run %s failed: %s", run_id, message)


def _target(callback: Callback) -> tuple[UUID, str] | None:
    """The flow run and the wait's input key; ``None`` (logged, and the callback taken as
    done, since no retry can help) for an execution that names none."""
    try:
        run_id = UUID(callback.custom_data["prefect_flowRunId"])
        return run_id, callback.custom_data["prefect_inputKey"]
    except (KeyError, ValueError):
        log.warning(
            "execution %s names no Prefect flow run (customData prefect_flowRunId and "
            "prefect_inputKey): callback %s ignored",
            callback.execution_id,
            callback.id,
        )
        return None


@asynccontextmanager
async def relay_adapter() -> AsyncIterator[PrefectAdapter]:
    """The adapter for ``waitgate relay --engine prefect``: a Prefect client of the API that
    ``PREFECT_API_URL`` (and ``PREFECT_API_KEY``) name."""
    async with get_client() as client:
        yield PrefectAdapter(client)
