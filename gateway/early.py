"""Resume calls that arrive before their wait is parked (answered 202, applied at park).

Such a call is kept with what the caller checks need (its headers, raw body and address) and,
when the engine parks the wait it names, judged by that wait's checks inside the park's
transaction, as if it had arrived then: a refused call is dropped, never applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.domain import (
    JSON,
    Admission,
    Execution,
    Refusal,
    ResumeAttempt,
    WebhookSpec,
    webhook_accepts,
)

NOTHING_TO_CHECK = Refusal(
    403, "The resume arrived before the wait was parked and was kept without what its checks need"
)


@dataclass(frozen=True)
class CallEvidence:
    """What a wait's caller checks read from a call: its headers (as sent, in order, each
    bounded), its raw body and the client address."""

    headers: tuple[tuple[str, str], ...]
    body: bytes
    ip: str | None

    @property
    def user_agent(self) -> str | None:
        """The first ``User-Agent`` header."""
        return next((v for k, v in self.headers if k == "user-agent"), None)


@dataclass(frozen=True)
class EarlyResume:
    """A resume call that arrived before its wait was parked."""

    method: str
    suffix: str
    payload: JSON
    received_at: int
    evidence: CallEvidence | None = None
    """``None`` for a call kept by a version that did not keep it (judged as showing nothing)."""


MAX_KEPT = 5
"""Early calls kept per wait: enough that whoever saw a checked wait's URL cannot crowd out its
partner by calling first (the park applies the oldest call the checks admit), few enough that
nobody can grow the table."""

SUPERSEDED = Refusal(409, "an earlier call resumed the wait")
"""Why an admitted early call was not applied: an older kept call resumed the wait at park."""

EarlyAdmission = Callable[[CallEvidence, int], Admission]
"""The caller checks of a kept call, judged at a moment (ms): ``(evidence, at) -> Admission``."""


@dataclass(frozen=True)
class ParkOutcome:
    """The result of parking: the execution and, if one was waiting, the early resume applied."""

    execution: Execution
    early_resume_applied: bool = False
    early_resume_discarded: bool = False
    refused_early: tuple[tuple[EarlyResume, Refusal], ...] = ()
    """The kept calls dropped at this park, oldest first, each with why: the parked wait's
    caller checks refused it, or an earlier kept call resumed the wait (``SUPERSEDED``)."""
    kept_event: int | None = None
    """The id of the event kept within its source's lookback that resumed the wait at park."""
    warnings: tuple[str, ...] = ()
    """What the engine should know of a park that was accepted (a ``waitTill`` in the past)."""


def judge_early(
    early: EarlyResume | None, webhook: WebhookSpec | None, admit: EarlyAdmission | None, now: int
) -> tuple[bool, Refusal | None]:
    """Whether the early resume taken at a park is applied, and the checks' refusal if any.

    A call for another method or suffix is discarded (no refusal). Otherwise it is judged at
    the moment it was received (never later than the park), so a Stripe-style timestamp is
    checked against the time the gateway got the call, not the time the engine parked. A wait
    that checks its callers refuses a call kept without evidence, or when no checks are given.
    """
    if early is None or webhook is None or not webhook_accepts(webhook, early.method, early.suffix):
        return False, None
    if not webhook.auth.checks_caller:
        return True, None
    if admit is None or early.evidence is None:
        return False, NOTHING_TO_CHECK
    refusal = admit(early.evidence, min(early.received_at, now))(webhook)
    return refusal is None, refusal


def choose_early(
    kept: list[EarlyResume], webhook: WebhookSpec | None, admit: EarlyAdmission | None, now: int
) -> tuple[EarlyResume | None, tuple[tuple[EarlyResume, Refusal], ...]]:
    """Of the calls kept for a wait (oldest first), the one its park applies (the oldest that
    ``judge_early`` admits), and the ones dropped with a reason to audit: refused by the
    checks, or ``SUPERSEDED`` by the one applied. Calls for another method or suffix are
    dropped without one (the caller could not have known)."""
    chosen = None
    refused = []
    for early in kept:
        admitted, refusal = judge_early(early, webhook, admit, now)
        if admitted and chosen is None:
            chosen = early
        elif admitted:
            refused.append((early, SUPERSEDED))
        elif refusal is not None:
            refused.append((early, refusal))
    return chosen, tuple(refused)


def refused_early_attempt(
    execution_id: int, seq: int, early: EarlyResume, refusal: Refusal, now: int
) -> ResumeAttempt:
    """The audit row of an early resume the parked wait's checks refused."""
    evidence = early.evidence
    return ResumeAttempt(
        execution_id=execution_id,
        seq=seq,
        attempted_at=now,
        method=early.method,
        status_code=refusal.status,
        outcome="refused",
        reason=f"early resume refused when the wait was parked: {refusal.message}",
        ip=None if evidence is None else evidence.ip,
        user_agent=None if evidence is None else evidence.user_agent,
    )
