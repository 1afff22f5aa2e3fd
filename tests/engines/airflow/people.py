"""What happens outside the DAG run while ``dag.test()`` holds the test's thread: people and
partners acting on waitgate from a thread of their own."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from tests.engines.harness import GatewayThread

T = TypeVar("T")


def waiting(gateway: GatewayThread, workflow_id: str) -> dict[str, Any]:
    """The one execution of ``workflow_id`` waiting right now (as the API shows it), once
    there is one."""

    def find() -> dict[str, Any] | None:
        with gateway.client() as api:
            page = api.get("/executions", params={"workflowId": workflow_id, "status": "waiting"})
            found = page.json()["data"]
            if not found:
                return None
            assert len(found) == 1, found
            # includeData: without it the view leaves out approvalUrl(s) and resumeFormUrl
            params = {"includeData": "true"}
            one: dict[str, Any] = api.get(f"/executions/{found[0]['id']}", params=params).json()
            return one

    found: dict[str, Any] = gateway.wait_until(find, within=60, what=f"{workflow_id} waiting")
    return found


def stop_waiting(gateway: GatewayThread, workflow_id: str) -> None:
    """Cancel every waiting execution of ``workflow_id`` (a failed test must not leave a
    trigger reading forever)."""
    with gateway.client() as api:
        page = api.get("/executions", params={"workflowId": workflow_id, "status": "waiting"})
        for execution in page.json()["data"]:
            api.post(f"/executions/{execution['id']}/stop")


def run_while(
    gateway: GatewayThread,
    workflow_id: str,
    run: Callable[[], Any],
    act: Callable[[], T],
    *,
    abort: Callable[[], None] | None = None,
) -> tuple[Any, T]:
    """``run()`` (the DAG run) here while ``act()`` (the people) runs in another thread;
    both results. If ``act`` fails, its wait is stopped (and ``abort()`` ends what else the run
    waits for) so that the run ends and the failure is reported."""

    def guarded() -> T:
        try:
            return act()
        except BaseException:
            traceback.print_exc()
            stop_waiting(gateway, workflow_id)
            if abort is not None:
                abort()
            raise

    with ThreadPoolExecutor(1, thread_name_prefix="people") as pool:
        acted = pool.submit(guarded)
        outcome = run()
        return outcome, acted.result(timeout=60)


@dataclass
class InlineTriggers:
    """The triggers ``dag.test()`` ran inline, as their ``serialize()`` described them."""

    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@contextmanager
def recording_triggers(monkeypatch: pytest.MonkeyPatch) -> Iterator[InlineTriggers]:
    """Record each trigger a deferred task handed to ``dag.test()``'s inline triggerer (a spy:
    the trigger still runs)."""
    from airflow.sdk.definitions import dag as dag_module

    record = InlineTriggers()
    original = dag_module._run_inline_trigger

    def spy(trigger: Any, ti: Any) -> Any:
        record.seen.append(trigger.serialize())
        return original(trigger, ti)

    monkeypatch.setattr(dag_module, "_run_inline_trigger", spy)
    yield record
