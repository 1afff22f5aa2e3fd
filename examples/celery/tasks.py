"""A refund flow in Celery whose approval waits in waitgate without holding a worker.

``request_refund`` parks the question (an approval page; nobody answering within 10 minutes
means "rejected") and ends; waitgate's relay sends ``after_refund`` with the answer once the
page is answered, or at the deadline. The broker and result backend are Redis
(``CELERY_BROKER_URL``, default ``redis://127.0.0.1:6379/0``).

    celery -A examples.celery.tasks worker          # the worker
    python -m examples.celery.tasks A-1001 120      # start one refund; prints the link

See README.md beside this file for the whole walkthrough.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

from celery import Celery

from gateway.integrations.asks import Answer, Approval
from gateway.integrations.celery import park

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")

app = Celery("refunds", broker=BROKER, backend=BROKER)
app.conf.broker_connection_retry_on_startup = True


@app.task(name="refunds.request_refund")
def request_refund(order: str, amount: int) -> str:
    """Ask for approval, hand out the link, and end."""
    parked = park(
        "refunds.after_refund",
        Approval(
            f"Refund {amount} EUR for order {order}?",
            description="The customer says the parcel arrived damaged.",
            default=False,
            deadline=timedelta(minutes=10),
        ),
        key=order,
        workflow_id="refunds",
    )
    print(f"refund {order}: waiting for an answer at {parked.url}")
    return parked.url


@app.task(name="refunds.after_refund")
def after_refund(answer: dict[str, Any], key: str | None = None) -> str:
    """The continuation: pay or refuse, with who decided."""
    got = Answer.from_json(answer)
    outcome = "paid" if got.approved else "refused"
    print(f"refund {key}: {outcome} (decided by {got.resumed_by})")
    return outcome


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m examples.celery.tasks ORDER AMOUNT")
    link = request_refund.delay(sys.argv[1], int(sys.argv[2])).get(timeout=30)
    print(f"waiting for an answer: {link}")
