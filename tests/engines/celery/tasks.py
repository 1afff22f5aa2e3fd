"""A Celery app for the engine tests: a task that parks a refund question and ends, and the
continuation the relay sends with the answer (it records each run in Redis).

Everything lives in Redis database 13 (``REDIS_URL``), which the tests empty before and after.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import redis
from celery import Celery

from gateway.integrations.asks import Approval, Ask, Webhook
from gateway.integrations.celery import park

REDIS_URL = "redis://127.0.0.1:6379/13"
RUNS = "waitgate-tests:after-refund"
"""The Redis list each run of the continuation appends to."""
CONTINUATION = "waitgate_tests.after_refund"

app = Celery("waitgate_tests", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_default_queue="waitgate-tests",
    worker_hijack_root_logger=False,
    task_track_started=True,
)


def question(order: str, kind: str, default: Any) -> Ask:
    """An approval (``default``: the decision at the deadline) or a partner's webhook."""
    if kind == "approval":
        return Approval(
            f"Refund order {order}?", default=bool(default), deadline=timedelta(hours=1)
        )
    return Webhook(default=default, deadline=timedelta(hours=1))


@app.task(name="waitgate_tests.request_refund")
def request_refund(order: str, kind: str = "approval", default: Any = None) -> dict[str, Any]:
    """Park the question and end; what to hand out."""
    parked = park(CONTINUATION, question(order, kind, default), key=order, workflow_id="refunds")
    return {"executionId": parked.execution_id, "url": parked.url, "resumeUrl": parked.resume_url}


@app.task(name=CONTINUATION, bind=True)
def after_refund(self: Any, answer: dict[str, Any], key: str | None = None) -> None:
    """The continuation: records the answer, the key and its own task id."""
    record = {"answer": answer, "key": key, "taskId": self.request.id}
    with redis.Redis.from_url(REDIS_URL) as db:
        db.rpush(RUNS, json.dumps(record))


@app.task(name="waitgate_tests.barrier")
def barrier() -> str:
    """Run after everything sent before it (one solo worker takes tasks in order)."""
    return "ok"
