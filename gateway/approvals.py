"""Approvals: who is asked, what they may answer, and when their decisions end the wait.

An approval without ``approvers`` is answered once by whoever holds its page link (the page's
own rules, ``gateway.routes.approval``). With approvers, each approver has a personal link and
decides at most once; every decision is kept, and the wait ends when a rule is met:

- **approved** when ``required`` approvers approved;
- **rejected**, with ``rejectWhen: any``, at the first rejection; with ``majority``, as soon as
  more than half of the approvers who may decide rejected (``2 * rejections > eligible``) or
  the approvals still possible cannot reach ``required`` (``eligible - rejections <
  required``).

Approval is judged first, so the decision that brings the ``required``-th approval approves.
The ``requester`` may not decide (no self-approval); if it is one of the approvers it does not
count among the eligible ones, and ``required`` may not exceed them.

``options`` are what an approver picks: ``reject`` (if listed) rejects, any other option
approves. With the default ``["approve", "reject"]`` the page shows Approve and Reject as ever.
The payload's ``option`` is the approving option most approvers picked (a tie goes to the one
listed first); with ``multiple``, ``options`` are those every approving decision picked. A
``branch`` map names, for the engine, where each option leads.

Time (``persistence.reminders``): each of ``reminders`` (milliseconds after the park) tells the
approvers who have not decided yet again, through the same channels; ``escalation``, if the
wait is still open ``after`` the park, adds its approvers to the wait (they are told, and may
decide through their personal links). ``required`` stays as it was: the escalated approvers
count among the eligible ones, so ``required`` of the larger set must approve, and the
``majority`` rejection rule judges against the larger set.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from gateway.domain import Execution, ResumedBy, WebhookSpec, format_instant
from gateway.errors import InvalidInput

OnReject = Literal["resume", "cancel"]
"""What rejecting an approval does: resume (with ``approved: false``) or stop the execution."""
RejectWhen = Literal["any", "majority"]
CommentRule = Literal["optional", "required"]
OnTimeout = Literal["approve", "reject", "resume", "cancel"]
"""What the deadline of an approval does: decide it, resume without a decision, or cancel."""
Verdict = Literal["approve", "reject"]
Via = Literal["page", "email", "slack", "teams", "api"]
Ended = Literal["approved", "rejected"]

REJECT = "reject"
DEFAULT_OPTIONS = ("approve", REJECT)
APPROVER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MAX_COMMENT = 1000


@dataclass(frozen=True)
class Approver:
    """A person asked to decide, with where to reach them."""

    id: str
    email: str = ""
    name: str = ""
    slack: str = ""


@dataclass(frozen=True)
class Escalation:
    """Who else is asked when the approval is still open ``after`` (ms) the park."""

    after: int
    approvers: tuple[Approver, ...]


@dataclass(frozen=True)
class ApprovalSpec:
    """A wait people answer on a page: what is asked, who decides, and what ends it."""

    title: str
    description: str = ""
    on_reject: OnReject = "resume"
    approvers: tuple[Approver, ...] = ()
    required: int = 1
    reject_when: RejectWhen = "any"
    options: tuple[str, ...] = DEFAULT_OPTIONS
    multiple: bool = False
    branch: dict[str, str] = field(default_factory=dict)
    comment: CommentRule = "optional"
    requester: str | None = None
    on_timeout: OnTimeout | None = None
    """``None``: the deadline resumes as any other wait's does (approvals without approvers)."""
    channels: tuple[str, ...] = ()
    """The channels that tell the approvers (``gateway.channels``), by name."""
    reminders: tuple[int, ...] = ()
    """When (ms after the park) the approvers who have not decided are reminded."""
    escalation: Escalation | None = None
    """Who is added if the approval is still open then; ``None`` once it happened."""

    @property
    def eligible(self) -> tuple[str, ...]:
        """The ids of the approvers who may decide (all but the requester)."""
        return tuple(a.id for a in self.approvers if a.id != self.requester)

    @property
    def approving_options(self) -> tuple[str, ...]:
        """The options that approve (every option but ``reject``)."""
        return tuple(o for o in self.options if o != REJECT)

    @property
    def simple(self) -> bool:
        """Approve and Reject, nothing to pick."""
        return self.approving_options == ("approve",)


@dataclass(frozen=True)
class Decision:
    """One approver's decision on one wait."""

    approver: str
    decision: Verdict
    options: tuple[str, ...] = ()
    comment: str = ""
    at: int = 0
    via: Via = "page"


def spec_from_raw(raw: dict[str, Any]) -> ApprovalSpec:
    """An approval as ``dataclasses.asdict`` wrote it (older rows lack the newer fields)."""
    values = dict(raw)
    values["approvers"] = tuple(Approver(**a) for a in raw.get("approvers", ()))
    values["options"] = tuple(raw.get("options", DEFAULT_OPTIONS))
    values["channels"] = tuple(raw.get("channels", ()))
    values["reminders"] = tuple(raw.get("reminders", ()))
    escalation = raw.get("escalation")
    if escalation is not None:
        added = tuple(Approver(**a) for a in escalation["approvers"])
        values["escalation"] = Escalation(escalation["after"], added)
    return ApprovalSpec(**values)


def ended(spec: ApprovalSpec, decisions: tuple[Decision, ...]) -> Ended | None:
    """Whether these decisions meet a rule (see the module's documentation)."""
    eligible = len(spec.eligible)
    approvals = sum(d.decision == "approve" for d in decisions)
    rejections = len(decisions) - approvals
    if approvals >= spec.required:
        return "approved"
    if spec.reject_when == "any" and rejections:
        return "rejected"
    if 2 * rejections > eligible or eligible - rejections < spec.required:
        return "rejected"
    return None


def _chosen(spec: ApprovalSpec, decisions: tuple[Decision, ...], approved: bool) -> list[str]:
    """The options the payload reports (see the module's documentation)."""
    if not approved:
        return [REJECT]
    picks = [d.options for d in decisions if d.decision == "approve"]
    if not picks:
        return list(spec.approving_options[:1])
    if spec.multiple:
        return [o for o in spec.options if all(o in p for p in picks)]
    votes = Counter(o for p in picks for o in p)
    return [max(spec.approving_options, key=lambda o: (votes[o], -spec.options.index(o)))]


def decision_view(decision: Decision, *, multiple: bool) -> dict[str, Any]:
    """One decision as payloads, pages and the API show it."""
    chosen: dict[str, Any] = (
        {"options": list(decision.options)}
        if multiple
        else {"option": decision.options[0] if decision.options else decision.decision}
    )
    return {
        "approver": decision.approver,
        "decision": decision.decision,
        **chosen,
        "comment": decision.comment,
        "at": format_instant(decision.at),
        "via": decision.via,
    }


def payload(
    spec: ApprovalSpec,
    decisions: tuple[Decision, ...],
    approved: bool | None,
    *,
    timed_out: bool,
    by: ResumedBy,
) -> dict[str, Any]:
    """What the engine gets: the verdict (``None``: none), the option(s), where they branch,
    every decision, and whether the deadline decided."""
    chosen = [] if approved is None else _chosen(spec, decisions, approved)
    body: dict[str, Any] = {"approved": approved}
    if spec.multiple:
        body["options"] = chosen
    else:
        body["option"] = chosen[0] if chosen else None
    if spec.branch:
        branches = [spec.branch[o] for o in chosen if o in spec.branch]
        body["branch"] = branches if spec.multiple else (branches[0] if branches else None)
    body["decisions"] = [decision_view(d, multiple=spec.multiple) for d in decisions]
    body["timedOut"] = timed_out
    body["resumedBy"] = by.value
    return body


TIMEOUT_VERDICTS: dict[OnTimeout, bool | None] = {
    "approve": True,
    "reject": False,
    "resume": None,
    "cancel": None,
}


class NotAllowed(InvalidInput):
    """The approver may not decide this approval (the requester: no self-approval)."""


def check_decision(
    spec: ApprovalSpec,
    approver: str,
    decision: str,
    options: tuple[str, ...],
    comment: str,
) -> tuple[Verdict, tuple[str, ...]]:
    """The decision and options an approver may give; ``InvalidInput`` naming the rule
    (``NotAllowed`` for the requester)."""
    if approver not in {a.id for a in spec.approvers}:
        raise InvalidInput(f"approver {approver!r} is not one of the approvers of this wait")
    if approver == spec.requester:
        raise NotAllowed(f"approver {approver!r} requested this approval and may not decide it")
    if spec.comment == "required" and not comment.strip():
        raise InvalidInput("this approval needs a comment with each decision")
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(f"comment may hold at most {MAX_COMMENT} characters")
    if decision == REJECT:
        if REJECT not in spec.options or options not in {(), (REJECT,)}:
            raise InvalidInput("this approval cannot be rejected with these options")
        return "reject", ()
    if decision != "approve":
        raise InvalidInput("decision must be approve or reject")
    if not options and len(spec.approving_options) == 1:
        options = spec.approving_options
    unknown = [o for o in options if o not in spec.approving_options]
    if unknown:
        raise InvalidInput(f"option {unknown[0]!r} is not one of the approving options")
    if not options or (len(options) > 1 and not spec.multiple) or len(set(options)) < len(options):
        one = "at least one" if spec.multiple else "exactly one"
        raise InvalidInput(f"an approval needs {one} of the options {list(spec.approving_options)}")
    return "approve", options


@dataclass(frozen=True)
class Decided:
    """A decision recorded, or refused because its approver had decided this wait already."""

    execution: Execution
    """After the decision, with its waits."""
    seq: int
    """The wait decided."""
    spec: ApprovalSpec
    decisions: tuple[Decision, ...]
    """Every decision on the wait, this one included."""
    ended: Ended | None = None
    """The rule this decision met: the wait was resumed, or the execution canceled."""
    duplicate: bool = False
    """The approver had decided already: nothing was written."""


@dataclass(frozen=True)
class InboxItem:
    """An open approval wait that asks an approver who has not decided it (their inbox)."""

    execution_id: int
    nonce: str
    seq: int
    title: str
    parked_at: int
    wait_till: int | None
    """The deadline; ``None``: none."""
    webhook: WebhookSpec
    """The wait's caller checks apply to its entry as to its page."""


TimerKind = Literal["reminder", "escalation"]
"""What an approval wait's timer does when it falls due (``approval.reminders``,
``approval.escalation``)."""


class TimerFired(NamedTuple):
    """A reminder or escalation of an approval wait the timer fired: who was told."""

    execution_id: int
    seq: int
    kind: TimerKind
    n: int
    """Which reminder (1 for the first)."""
    late_ms: int
    approvers: tuple[str, ...]
