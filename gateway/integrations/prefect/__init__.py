"""waitgate for Prefect 3 (``pip install 'waitgate[prefect]'``).

In a flow, ``wait_for_approval`` and ``wait_for_input`` park a waitgate wait, hand out its
link and pause (or suspend) the flow run; ``waitgate relay --engine prefect`` runs the
``relay_adapter`` that resumes it. See ``docs/engines/prefect.md``.
"""

from gateway.integrations.prefect.adapter import PrefectAdapter, relay_adapter
from gateway.integrations.prefect.forms import NotAFormError, form_schema
from gateway.integrations.prefect.waits import (
    ApprovalDecision,
    WaitCanceledError,
    WaitEndedError,
    Waitgate,
    WaitLinks,
    wait_for_approval,
    wait_for_approval_sync,
    wait_for_input,
    wait_for_input_sync,
)

__all__ = [
    "ApprovalDecision",
    "NotAFormError",
    "PrefectAdapter",
    "WaitCanceledError",
    "WaitEndedError",
    "WaitLinks",
    "Waitgate",
    "form_schema",
    "relay_adapter",
    "wait_for_approval",
    "wait_for_approval_sync",
    "wait_for_input",
    "wait_for_input_sync",
]
