"""What the Temporal adapter's three parts agree on: names, customData keys, wire shapes.

The workflow helpers (``workflow.py``), the activities (``activities.py``) and the relay
adapter (``adapter.py``) talk through Temporal: activity arguments and results, signals and a
query. Their shapes are declared here once. This module imports nothing but the standard
library, so Temporal's workflow sandbox may import it freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ENGINE = "temporal"

PARK_ACTIVITY = "waitgate_park"
"""Parks a wait and completes asynchronously when the relay hears it ended."""
PARK_FOR_SIGNAL_ACTIVITY = "waitgate_park_for_signal"
"""Parks a wait and returns its links at once; the relay signals the workflow when it ends."""
FINISH_ACTIVITY = "waitgate_finish"
"""Finishes a waitgate execution whose wait the workflow has taken (``success``)."""
STOP_ACTIVITY = "waitgate_stop"
"""Stops a waitgate execution (the workflow was cancelled while it waited)."""

PARKED_SIGNAL = "waitgate_parked"
"""Sent by ``waitgate_park`` to its own workflow with the wait's links."""
RESUMED_SIGNAL = "waitgate_resumed"
"""Sent by the relay to a workflow waiting through ``wait_for_signal``: how the wait ended."""
CANCELED_SIGNAL = "waitgate_canceled"
"""Sent by the relay to a workflow waiting through ``wait_for_signal``: the execution was
stopped in waitgate."""
LINKS_QUERY = "waitgate_links"
"""Answers the links of every wait the workflow parked, by key."""

CANCELED_ERROR = "WaitgateCanceled"
"""The ``type`` of the ``ApplicationError`` a wait raises when its execution is stopped."""

Mode = Literal["activity", "signal"]

# customData keys (letters, digits and _ only) that lead the relay back to the waiting run.
KEY_ENGINE = "waitgate_engine"
KEY_WORKFLOW_ID = "temporal_workflowId"
KEY_RUN_ID = "temporal_runId"
KEY_ACTIVITY_ID = "temporal_activityId"
"""Present for the async activity variant only; its absence means "signal the workflow"."""
RESERVED_KEYS = (KEY_ENGINE, KEY_WORKFLOW_ID, KEY_RUN_ID, KEY_ACTIVITY_ID)


@dataclass
class ParkRequest:
    """The argument of the park activities: one wait of one workflow run."""

    key: str
    """The wait's name in its workflow (the links query answers by it)."""
    wait: dict[str, Any]
    """``webhook``, ``approval``, ``form`` and/or ``events`` of ``POST /executions/{id}/wait``."""
    wait_till: str
    """The deadline, an RFC 3339 instant fixed by the workflow (the same on every retry)."""
    name: str
    """The execution's ``workflowId`` in waitgate (by default the workflow's type)."""
    custom_data: dict[str, str] = field(default_factory=dict)
    data: Any = None


@dataclass(frozen=True)
class Links:
    """Where people and partners end a wait: what ``POST /executions/{id}/wait`` answered."""

    key: str
    execution_id: int
    resume_url: str | None = None
    approval_url: str | None = None
    form_url: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """As sent in signals, activity results and the links query."""
        return {
            "key": self.key,
            "executionId": self.execution_id,
            "resumeUrl": self.resume_url,
            "approvalUrl": self.approval_url,
            "resumeFormUrl": self.form_url,
        }

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Links:
        """The links of ``to_wire``."""
        return cls(
            key=str(raw["key"]),
            execution_id=int(raw["executionId"]),
            resume_url=raw.get("resumeUrl"),
            approval_url=raw.get("approvalUrl"),
            form_url=raw.get("resumeFormUrl"),
        )


@dataclass(frozen=True)
class Resumed:
    """How a wait ended, as the workflow sees it.

    ``payload`` is what resumed it (the resume call's body and query, the approval decision,
    the form's values, the event) or, when the deadline passed (``timed_out``), the
    ``default`` given to the helper.
    """

    execution_id: int
    resumed_by: str
    payload: Any
    timed_out: bool = False

    @classmethod
    def from_wire(cls, raw: dict[str, Any], default: Any) -> Resumed:
        """From what the relay sent (activity result or signal); a timeout takes ``default``."""
        resumed_by = str(raw.get("resumedBy") or "api")
        timed_out = resumed_by == "timeout"
        return cls(
            execution_id=int(raw["executionId"]),
            resumed_by=resumed_by,
            payload=default if timed_out else raw.get("payload"),
            timed_out=timed_out,
        )
