"""``WaitgateNotifier``: Airflow's HITL operators ask through waitgate.

    ApprovalOperator(
        task_id="approve",
        subject="Ship order {{ params.order }}?",
        defaults="Reject",
        notifiers=[WaitgateNotifier(approvers=["ana@example.com"], channels=["mail"],
                                    timeout=timedelta(hours=8))],
    )

When the operator (``ApprovalOperator``, ``HITLOperator``, ``HITLBranchOperator``) has written
its request, the notifier publishes it to waitgate as an approval: the operator's subject and
body, its options (see ``hitl_options``), its approvers (``approvers=`` or the operator's
``assigned_users``) and the channels that tell them, with a deadline. Its callbacks go to the
relay (``waitgate relay --engine airflow``), which answers Airflow's ``hitlDetails`` API with
the decision, or with the operator's ``defaults`` when the deadline passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier

from gateway.approvals import APPROVER_ID
from gateway.integrations.airflow.connection import gateway_of, relay_url_of
from gateway.integrations.airflow.hitl_options import approval_fields
from gateway.integrations.airflow.operators import EXECUTION_KEY, URL_KEY, coordinates
from gateway.integrations.airflow.waitgate_api import deadline, park

ApproverGiven = str | Mapping[str, str]
MAX_TITLE = 200


def approver(given: ApproverGiven) -> dict[str, str]:
    """A waitgate approver from an id (an e-mail address counts as both) or a mapping
    (``id``, ``name``, ``email``, ``slack``; an Airflow ``HITLUser`` is one)."""
    fields = {"id": given} if isinstance(given, str) else dict(given)
    person = {k: str(v) for k, v in fields.items() if k in {"id", "name", "email", "slack"} and v}
    ident = person.get("id", "")
    if not APPROVER_ID.fullmatch(ident):
        raise ValueError(f"approver id {ident!r} may only hold A-Z a-z 0-9 _ . @ - (1 to 64)")
    if "@" in ident and "email" not in person:
        person["email"] = ident
    return person


class WaitgateNotifier(BaseNotifier):
    """Publish a HITL request to waitgate as an approval whose answer the relay returns.

    :param approvers: waitgate approvers (ids or mappings); default: ``assigned_users``.
    :param channels: waitgate channels (by name) that tell the approvers.
    :param timeout: waitgate's deadline; default: the operator's ``response_timeout``.
    :param relay_url: where waitgate sends the callback; default: the connection's extra
        ``relay_url``.
    :param approval: more fields of waitgate's approval (``required``, ``reminders``, …).
    :param waitgate_conn_id: the connection naming waitgate.
    """

    template_fields: Sequence[str] = ("relay_url",)

    def __init__(
        self,
        *,
        approvers: Sequence[ApproverGiven] | None = None,
        channels: Sequence[str] = (),
        timeout: timedelta | None = None,
        relay_url: str | None = None,
        approval: Mapping[str, Any] | None = None,
        waitgate_conn_id: str = "waitgate_default",
    ) -> None:
        super().__init__()
        self.approvers = None if approvers is None else list(approvers)
        self.channels = list(channels)
        self.timeout = timeout
        self.relay_url = relay_url
        self.approval = dict(approval or {})
        self.waitgate_conn_id = waitgate_conn_id

    def approval_body(self, task: Any) -> dict[str, Any]:
        """The waitgate approval for this HITL operator."""
        given = self.approvers if self.approvers is not None else task.assigned_users or []
        people = [approver(a) for a in given]
        body: dict[str, Any] = {"title": str(task.subject)[:MAX_TITLE]}
        if task.body:
            body["description"] = str(task.body)
        if people:
            body["approvers"] = people
            if self.channels:
                body["channels"] = self.channels
        elif self.channels:
            raise ValueError("channels tell named approvers: give approvers (or assigned_users)")
        body.update(
            approval_fields(task.options, multiple=task.multiple, named_approvers=bool(people))
        )
        return {**body, **self.approval}

    def notify(self, context: Any) -> None:
        """Park the request in waitgate; push its link to XCom and log it."""
        task = context["task"]
        connection = BaseHook.get_connection(self.waitgate_conn_id)
        relay = self.relay_url or relay_url_of(connection)
        if not relay:
            raise ValueError(
                "WaitgateNotifier needs the relay's URL: relay_url=... or the connection's "
                'extra {"relay_url": ...} (waitgate relay --engine airflow)'
            )
        wait: dict[str, Any] = {"approval": self.approval_body(task)}
        wait_till = deadline(self.timeout or task.response_timeout, datetime.now(UTC))
        if wait_till is not None:
            wait["waitTill"] = wait_till
        where = coordinates(context)
        parked = park(
            gateway_of(connection),
            workflow_id=f"{where.dag_id}.{where.task_id}",
            custom_data=where.custom_data("hitl"),
            wait=wait,
            callback_url=relay,
        )
        context["ti"].xcom_push(key=EXECUTION_KEY, value=parked.execution_id)
        context["ti"].xcom_push(key=URL_KEY, value=parked.link)
        self.log.info("Asked in waitgate execution %s: %s", parked.execution_id, parked.link)
