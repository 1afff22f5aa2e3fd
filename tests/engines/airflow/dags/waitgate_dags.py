"""The DAGs the Airflow adapter's tests run with ``dag.test()`` (this folder is the DAG folder).

Triggers poll fast here (every 50 ms at first) so the tests wait little in real time; the
deadlines are waitgate's and pass only when a test moves waitgate's ManualClock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import DAG, task

from gateway.integrations.airflow.notifier import WaitgateNotifier
from gateway.integrations.airflow.operators import WaitgateOperator

FAST: dict[str, Any] = {"poll_interval": 0.05, "max_poll_interval": 0.2}
DEFAULT = {"approved": False, "reason": "nobody answered in time"}


@task
def received(payload: Any) -> Any:
    """What the wait gave the next task."""
    return payload


with DAG("wg_webhook", schedule=None, catchup=False) as webhook_dag:
    partner = WaitgateOperator(
        task_id="wait_for_partner",
        webhook={"httpMethod": "POST"},
        timeout=timedelta(hours=1),
        default=DEFAULT,
        **FAST,
    )
    received(partner.output)

with DAG("wg_approval", schedule=None, catchup=False) as approval_dag:
    approval = WaitgateOperator(
        task_id="wait_for_approval",
        approval={"title": "Refund order A-1001?", "approvers": [{"id": "ana"}]},
        timeout=timedelta(hours=4),
        default=DEFAULT,
        **FAST,
    )
    received(approval.output)

with DAG("wg_deadline", schedule=None, catchup=False) as deadline_dag:
    late = WaitgateOperator(
        task_id="wait_with_deadline",
        webhook={"httpMethod": "POST"},
        timeout=timedelta(hours=2),
        default=DEFAULT,
        **FAST,
    )
    received(late.output)

with DAG("wg_hitl_approval", schedule=None, catchup=False) as hitl_approval_dag:
    approve = ApprovalOperator(
        task_id="approve_shipment",
        subject="Ship order A-1001?",
        body="Two pallets to Lyon.",
        defaults="Reject",
        notifiers=[WaitgateNotifier(approvers=[{"id": "ana", "name": "Ana"}])],
    )
    received(approve.output)

with DAG("wg_hitl_deadline", schedule=None, catchup=False) as hitl_deadline_dag:
    choose = HITLOperator(
        task_id="choose_route",
        subject="Which route for order A-1002?",
        options=["Sea", "Air", "Reject"],
        defaults=["Sea"],
        notifiers=[WaitgateNotifier(approvers=["ana", "ben"], timeout=timedelta(hours=2))],
    )
    received(choose.output)

with DAG("wg_stopped", schedule=None, catchup=False) as stopped_dag:
    stopped = WaitgateOperator(task_id="wait_then_stopped", **FAST)
    received(stopped.output)

with DAG("wg_form", schedule=None, catchup=False) as form_dag:
    address = WaitgateOperator(
        task_id="ask_address",
        form={"title": "Where to deliver?", "fields": [{"label": "City", "name": "city"}]},
        timeout=timedelta(days=1),
        **FAST,
    )
    received(address.output)
