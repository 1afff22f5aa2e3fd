"""Two DAGs that wait for a person through waitgate.

``waitgate_refund``: ``WaitgateOperator`` parks an approval page in waitgate, hands its link out
(XCom ``waitgate_url`` and the task log) and defers: no worker slot is held while it waits. The
next task pays the refund or not. After 4 hours without an answer, waitgate's deadline resumes
it with the default: no refund.

``waitgate_shipment``: Airflow's own ``ApprovalOperator`` with ``WaitgateNotifier``: the request
appears in Airflow's "Required actions" and as a waitgate approval page; a decision there is
written back to Airflow by the relay (``waitgate relay --engine airflow``). After 8 hours
waitgate answers with the operator's default (Reject).

Run one with ``python examples/airflow/dags/waitgate_example.py waitgate_refund`` (Airflow's
``dag.test()``: the trigger runs in this process); see ``README.md``.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, task

from gateway.integrations.airflow.notifier import WaitgateNotifier
from gateway.integrations.airflow.operators import WaitgateOperator


@task
def settle(decision: dict[str, Any]) -> str:
    """Pay the refund when it was approved."""
    outcome = "refund paid" if decision.get("approved") else "no refund"
    print(f"{outcome}: {decision}")
    return outcome


@task
def ship(response: dict[str, Any]) -> str:
    """Ship the order (the task is skipped when the shipment was rejected)."""
    print(f"shipping: {response['chosen_options']}")
    return "shipped"


with DAG("waitgate_refund", schedule=None, catchup=False) as refund:
    approval = WaitgateOperator(
        task_id="approve_refund",
        approval={"title": "Refund 120 EUR for order A-1001?", "description": "Parcel lost."},
        timeout=timedelta(hours=4),
        default={"approved": False, "timedOut": True},
        poll_interval=2.0,
    )
    settle(approval.output)

with DAG("waitgate_shipment", schedule=None, catchup=False) as shipment:
    approve = ApprovalOperator(
        task_id="approve_shipment",
        subject="Ship order A-1001 to Lyon?",
        body="Two pallets, express.",
        defaults="Reject",
        notifiers=[WaitgateNotifier(timeout=timedelta(hours=8))],
    )
    ship(approve.output)


if __name__ == "__main__":
    chosen = {"waitgate_refund": refund, "waitgate_shipment": shipment}
    name = sys.argv[1] if len(sys.argv) > 1 else "waitgate_refund"
    print(f"{name}: {chosen[name].test().state}")
