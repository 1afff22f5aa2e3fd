"""Prefect end to end: a flow run paused at a waitgate wait, resumed through real HTTP calls
(the form page, the approval page, the resume URL, waitgate's timer), with the callback going
through the relay over a socket to Prefect's own test server."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from tests.engines.prefect.conftest import Loop
from tests.engines.prefect.flows import ask_shipping, links


def paused_run(loop: Loop, timeout: float = 30) -> tuple[Any, UUID]:
    """The next link a flow handed out, once its flow run is paused there."""
    link = links.get(timeout=timeout)
    execution = loop.gateway.client().get(f"/executions/{link.execution_id}").json()
    run_id = UUID(execution["customData"]["prefect_flowRunId"])

    def paused() -> bool:
        state = loop.prefect(lambda c: c.read_flow_run(run_id)).state
        return state is not None and state.is_paused()

    loop.gateway.wait_until(paused, what="the flow run pausing")
    return link, run_id


def test_a_form_answer_resumes_the_paused_flow_with_its_data(loop: Loop) -> None:
    gw = loop.gateway
    result = loop.start(ask_shipping, url=gw.url, key=gw.admin_key, relay=loop.relay.url)
    link, run_id = paused_run(loop)
    assert "/form-waiting/" in link.link
    import httpx

    answer = httpx.post(link.link, data={"address": "Storgata 1, Oslo", "parcels": "2"})
    assert answer.status_code == 200, answer.text
    assert result.result(timeout=60) == {
        "address": "Storgata 1, Oslo",
        "express": False,
        "parcels": 2,
    }
