"""``WaitgateOperator``: a deferrable task that waits in waitgate for a person or a partner.

    wait = WaitgateOperator(
        task_id="approve_refund",
        approval={"title": "Refund order {{ params.order }}?"},
        timeout=timedelta(hours=4),
        default={"approved": False},
    )

``execute`` creates a waitgate execution (``customData``: ``airflow_dagId``, ``airflow_runId``,
``airflow_taskId``, ``airflow_mapIndex``), parks it on the wait (``webhook``, ``approval`` or
``form``: waitgate's own shapes, see ``POST /api/v1/executions/{id}/wait``; a POST webhook when
none is given), pushes the link to hand out to XCom (``waitgate_url``) and logs it, then defers
on ``WaitgateTrigger``: no worker slot is held while it waits. ``execute_complete`` returns
what resumed the wait (the resume call's payload, the approval's decision, the form's values),
or ``default`` when waitgate's deadline passed first, and marks the execution done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowException

from gateway.client import WaitgateError
from gateway.integrations.airflow.connection import gateway_of
from gateway.integrations.airflow.triggers import WaitgateTrigger
from gateway.integrations.airflow.waitgate_api import (
    Gateway,
    TaskCoordinates,
    deadline,
    find_parked,
    finish,
    park,
)

URL_KEY = "waitgate_url"
EXECUTION_KEY = "waitgate_execution_id"


def coordinates(context: Mapping[str, Any]) -> TaskCoordinates:
    """Which task instance runs, from its Airflow context."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    return TaskCoordinates(ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else map_index)


class WaitgateOperator(BaseOperator):
    """Park in waitgate, defer until the wait ends, return its payload (or ``default``).

    :param webhook: the resume URL's rules (``{"httpMethod": "POST", ...}``).
    :param approval: an approval page (``{"title": ..., "approvers": [...], ...}``).
    :param form: a form (``{"title": ..., "fields": [...]}`` or ``{"schema": {...}}``).
    :param timeout: how long the wait may last; then waitgate's timer resumes it and the task
        returns ``default`` (no deadline: it waits until answered).
    :param default: what the task returns when the deadline resumed the wait.
    :param workflow_id: the execution's ``workflowId`` (default ``<dag_id>.<task_id>``).
    :param waitgate_conn_id: the connection naming waitgate (see ``connection``).
    :param poll_interval: the trigger's first interval between reads of the wait, in seconds.
    :param max_poll_interval: the longest interval the trigger backs off to.
    """

    template_fields: Sequence[str] = ("webhook", "approval", "form", "workflow_id")
    ui_color = "#d9ecff"

    def __init__(
        self,
        *,
        webhook: Mapping[str, Any] | None = None,
        approval: Mapping[str, Any] | None = None,
        form: Mapping[str, Any] | None = None,
        timeout: timedelta | None = None,
        default: Any = None,
        workflow_id: str | None = None,
        waitgate_conn_id: str = "waitgate_default",
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if webhook is None and approval is None and form is None:
            webhook = {"httpMethod": "POST"}
        self.webhook = None if webhook is None else dict(webhook)
        self.approval = None if approval is None else dict(approval)
        self.form = None if form is None else dict(form)
        self.timeout = timeout
        self.default = default
        self.workflow_id = workflow_id
        self.waitgate_conn_id = waitgate_conn_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval

    def _gateway(self) -> Gateway:
        return gateway_of(BaseHook.get_connection(self.waitgate_conn_id))

    def wait_body(self, now: datetime) -> dict[str, Any]:
        """The ``POST …/wait`` body: the wait's kinds and its deadline."""
        body: dict[str, Any] = {}
        for name in ("webhook", "approval", "form"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        wait_till = deadline(self.timeout, now)
        if wait_till is not None:
            body["waitTill"] = wait_till
        return body

    def execute(self, context: Any) -> None:
        """Park the wait (or take the one an earlier try of this task instance parked before
        its worker died), hand out its link, and defer until it ends."""
        task = coordinates(context)
        workflow = self.workflow_id or f"{task.dag_id}.{task.task_id}"
        gateway, custom_data = self._gateway(), task.custom_data("operator")
        try:
            parked = find_parked(gateway, custom_data) or park(
                gateway,
                workflow_id=workflow,
                custom_data=custom_data,
                wait=self.wait_body(datetime.now(UTC)),
            )
        except WaitgateError as exc:
            raise AirflowException(f"waitgate refused the wait: {exc}") from None
        ti = context["ti"]
        ti.xcom_push(key=EXECUTION_KEY, value=parked.execution_id)
        ti.xcom_push(key=URL_KEY, value=parked.link)
        self.log.info(
            "Waiting in waitgate execution %s (deadline %s): %s",
            parked.execution_id,
            parked.wait_till or "none",
            parked.link,
        )
        self.defer(
            trigger=WaitgateTrigger(
                execution_id=parked.execution_id,
                seq=parked.seq,
                waitgate_conn_id=self.waitgate_conn_id,
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """The wait's payload, or ``default`` after the deadline; fails if it never resumed."""
        eid = event["executionId"]
        if event.get("status") != "resumed":
            reason = event.get("error") or "the execution was stopped before its wait resumed"
            raise AirflowException(f"waitgate execution {eid}: {reason}")
        timed_out = event.get("resumedBy") == "timeout"
        result = self.default if timed_out else event.get("payload")
        self.log.info(
            "waitgate execution %s resumed by %s%s",
            eid,
            event.get("resumedBy"),
            "; returning the default" if timed_out else "",
        )
        try:
            finish(self._gateway(), eid, result)
        except (
            WaitgateError,
            httpx.HTTPError,
        ) as exc:  # the result stands; waitgate's row only lags
            self.log.warning("could not mark waitgate execution %s done: %s", eid, exc)
        return result
