"""Resume by call: what a correctly signed call of a resume URL does (the webhook's use case).

The call resumes the wait its signature names in one transaction (the wait's caller checks run
inside it), is kept until that wait is parked when it comes early, or is refused; a retry of a
call with an ``Idempotency-Key`` gets the first answer again. The outcome says which, and the
route turns it into n8n's answer and the audit row. Only a refusal costs a second look at the
store, and it reads nothing more: the refusing transaction returns the state that refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from gateway import metrics, tracing
from gateway.answers import configured_answer, json_answer
from gateway.caller_auth import checker
from gateway.confirm import wants_confirmation
from gateway.domain import (
    Execution,
    Refusal,
    ResumedBy,
    Status,
    StoredAnswer,
    Wait,
    WebhookSpec,
)
from gateway.early import CallEvidence
from gateway.executions import resumed
from gateway.services import Services
from gateway.signed import issued_for
from gateway.signing import SignedTarget
from gateway.stored import clip_headers

log = logging.getLogger("waitgate.webhook")
EARLY_MESSAGE = (
    "Resume received before the execution was parked; it will be applied when the wait begins."
)
EARLY_AFTER_OTHERS = (
    "Resume received before the execution was parked and kept after another; it will be applied "
    "when the wait begins only if the wait's checks refuse the calls kept before it."
)


@dataclass(frozen=True)
class Call:
    """A correctly signed call of a resume URL: what it names and what it brought."""

    target: SignedTarget
    method: str
    suffix: str
    headers: Mapping[str, str]
    body: bytes
    payload: dict[str, Any]
    """What the call sent, as the engine receives it (``gateway.payloads``)."""
    ip: str | None
    idempotency_key: str | None
    started: float
    """``time.perf_counter()`` when the call arrived (for ``waitgate_resume_seconds``)."""

    @property
    def replay_key(self) -> str:
        """The call as its first answer is kept: what the signature names, not how the URL was
        spelled or which of the configured keys signed it."""
        target = self.target
        return (
            f"{self.method} /webhook-waiting/{target.execution_id}/{self.suffix} "
            f"{target.wait_seq}.{target.nonce}"
        )


@dataclass(frozen=True)
class Answered:
    """The call's answer: it resumed the wait (the wait's own answer, or for a wait that holds
    its caller the engine's), was kept until its wait is parked (202), or repeats an
    ``Idempotency-Key`` whose first answer is replayed."""

    kind: Literal["resumed", "early", "replayed"]
    answer: StoredAnswer


@dataclass(frozen=True)
class Confirm:
    """A browser's GET on a wait that resumes on POST only: show the confirmation page."""


class Why(StrEnum):
    """Why a call was refused."""

    NO_EXECUTION = "no execution"
    NOT_OURS = "issued by another database"
    NO_MATCHING_WEBHOOK = "no matching webhook"
    CALLER_REFUSED = "refused by the wait's caller checks"
    NOT_RESUMABLE = "not resumable"
    NO_ANSWER = "the engine did not answer in time"
    """The call resumed the wait, but the engine did not answer its held caller in time."""


@dataclass(frozen=True)
class Refused:
    """A call refused: why, and for ``NOT_RESUMABLE`` the execution as the refusing
    transaction saw it, for ``CALLER_REFUSED`` the checks' refusal, for
    ``NO_MATCHING_WEBHOOK`` what the wait takes."""

    why: Why
    execution: Execution | None = None
    refusal: Refusal | None = None
    expected: WebhookSpec | None = None
    """For ``NO_MATCHING_WEBHOOK``: the waiting webhook, whose methods and suffix the call
    missed."""


Outcome = Answered | Confirm | Refused


async def answer_call(svc: Services, call: Call) -> Outcome:
    """Resume the wait the call names, exactly once. With an ``Idempotency-Key``, the first
    answer under 300 is kept, and a repeat that finds the wait resumed gets it again."""
    if call.idempotency_key is None:
        return await _resume(svc, call)
    outcome = await _resume(svc, call)
    if isinstance(outcome, Refused):
        if outcome.why is Why.NOT_RESUMABLE:
            first = await svc.store.get_idempotent_answer(call.idempotency_key, call.replay_key)
            if first is not None:
                return Answered("replayed", first)
        return outcome
    if isinstance(outcome, Answered) and outcome.answer.status_code < 300:
        await svc.store.put_idempotent_answer(
            call.idempotency_key,
            call.replay_key,
            call.target.execution_id,
            outcome.answer,
            svc.clock.now_ms(),
        )
    return outcome


async def _resume(svc: Services, call: Call) -> Outcome:
    """Resume the wait optimistically (one transaction); a call for a wait not parked yet is
    kept for it, and if the engine parks it meanwhile the call is tried once more."""
    eid, seq, nonce = call.target.execution_id, call.target.wait_seq, call.target.nonce
    started = tracing.started()
    payload = {**call.payload, "resumedBy": ResumedBy.WEBHOOK.value}
    admit = checker(call.headers, call.body, call.ip, svc.clock.now_ms() / 1000)
    seen: Execution | None = None
    for _ in range(2):
        outcome = await svc.store.resume_by_call(
            eid, seq, call.method, call.suffix, payload, svc.clock.now_ms(), admit, nonce=nonce
        )
        if outcome.refusal is not None:
            return Refused(Why.CALLER_REFUSED, refusal=outcome.refusal)
        if outcome.resumed and outcome.wait is not None and outcome.wait.webhook is not None:
            resumed(eid, seq, ResumedBy.WEBHOOK, held=outcome.wait.webhook.holds_caller)
            await tracing.resumed(svc.store, [(eid, seq)], ResumedBy.WEBHOOK, started)
            metrics.RESUME_LATENCY.observe(time.perf_counter() - call.started)
            return await _answer_resumed(svc, eid, seq, outcome.wait.webhook)
        if outcome.wait is not None and not outcome.accepted:
            if wants_confirmation(
                call.method, call.headers.get("accept", ""), outcome.wait.webhook
            ):
                seen = outcome.execution or await svc.store.get_execution(eid)
                if seen is None or _over(outcome.wait, seen):  # the page says why, in words
                    return Refused(Why.NOT_RESUMABLE, seen)
                return Confirm()
            return Refused(Why.NO_MATCHING_WEBHOOK, expected=outcome.wait.webhook)
        seen = outcome.execution
        if seen is None:
            return Refused(Why.NO_EXECUTION)
        if not issued_for(seen, nonce):
            return Refused(Why.NOT_OURS)  # a URL of another database with the same execution id
        if seen.status is not Status.RUNNING or seen.wait_seq != seq:
            return Refused(Why.NOT_RESUMABLE, seen)
        kept = await _keep_early(svc, call, payload)
        if kept is not None:
            message = EARLY_MESSAGE if kept == 1 else EARLY_AFTER_OTHERS
            return Answered("early", json_answer(202, {"message": message}, "early"))
        # The engine parked the wait between our write and our look: try once more.
    return Refused(Why.NOT_RESUMABLE, seen)


def _over(wait: Wait, execution: Execution) -> bool:
    """Whether a wait takes no call any more: resumed, or its execution ended."""
    ended = execution.status not in (Status.WAITING, Status.RUNNING)
    return wait.resumed_at is not None or ended


async def _answer_resumed(svc: Services, eid: int, seq: int, spec: WebhookSpec) -> Outcome:
    """The configured answer, or, for a wait that holds its caller, the engine's answer."""
    if not spec.holds_caller:
        return Answered("resumed", configured_answer(spec))
    timeout_ms = int(svc.settings.response_timeout_seconds * 1000)
    held = await svc.held.wait(eid, seq, timeout_ms)
    if held is None:
        return Refused(Why.NO_ANSWER)
    return Answered("resumed", held)


async def _keep_early(svc: Services, call: Call, payload: dict[str, Any]) -> int | None:
    """Keep a resume for a wait not parked yet, with what the wait's caller checks will need
    when it is parked: its number among the calls kept for the wait; ``None`` if the execution
    moved meanwhile (or enough are kept already)."""
    target = call.target
    evidence = CallEvidence(tuple(clip_headers(call.headers.items())), call.body, call.ip)
    kept = await svc.store.record_early_resume(
        target.execution_id,
        target.wait_seq,
        call.method,
        call.suffix,
        payload,
        svc.clock.now_ms(),
        evidence,
        nonce=target.nonce,
    )
    if kept is not None:
        log.info(
            "early resume kept",
            extra={
                "action": "wait.early_resume",
                "execution_id": target.execution_id,
                "seq": target.wait_seq,
                "kept": kept,
            },
        )
    return kept
