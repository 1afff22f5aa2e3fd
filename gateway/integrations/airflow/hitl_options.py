"""How an Airflow HITL request becomes a waitgate approval, and its answer Airflow's response.

Airflow's options are waitgate's options by name, except one named ``Reject`` (any case),
which is waitgate's rejecting option ``reject``. Without named approvers waitgate's page has
only Approve and Reject: the request then needs exactly one option besides a reject option
(``ApprovalOperator``'s ``Approve``/``Reject``). Both sides call these pure functions, so the
notifier and the relay agree without storing the mapping anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

REJECT = "reject"
MAX_OPTION = 64


def waitgate_option(option: str) -> str:
    """The waitgate option an Airflow option is shown as."""
    return REJECT if option.strip().lower() == REJECT else option


def approval_fields(
    options: Sequence[str], *, multiple: bool, named_approvers: bool
) -> dict[str, Any]:
    """The ``options``/``multiple`` part of the approval; ``ValueError`` if it cannot be shown."""
    names = [waitgate_option(o) for o in options]
    if len(set(names)) < len(names):
        raise ValueError(f"the HITL options {list(options)} are not distinct once mapped")
    too_long = [o for o in names if not 1 <= len(o) <= MAX_OPTION]
    if too_long:
        raise ValueError(f"waitgate options hold 1 to {MAX_OPTION} characters: {too_long[0]!r}")
    approving = [o for o in names if o != REJECT]
    if not approving:
        raise ValueError("the HITL options need one that approves (not only Reject)")
    if named_approvers:
        return {"options": names, "multiple": multiple}
    if len(approving) > 1 or multiple:
        raise ValueError(
            f"HITL options {list(options)} need named approvers in waitgate (approvers=... or "
            "the operator's assigned_users): without them the page has only Approve and Reject"
        )
    return {}


def chosen_options(options: Sequence[str], payload: Mapping[str, Any]) -> list[str] | None:
    """The Airflow options an approval's payload chose; ``None``: it chose none of them
    (no verdict, or a rejection where the request has no reject option)."""
    approved = payload.get("approved")
    if not isinstance(approved, bool):
        return None
    by_name = {waitgate_option(o): o for o in options}
    if not approved:
        return [by_name[REJECT]] if REJECT in by_name else None
    picked = payload.get("options")
    if not isinstance(picked, list):
        one = payload.get("option")
        picked = [one] if isinstance(one, str) else []
    chosen = [by_name[name] for name in picked if name in by_name and name != REJECT]
    if chosen:
        return chosen
    return [next(o for name, o in by_name.items() if name != REJECT)]
