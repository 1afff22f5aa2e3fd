"""Airflow 3 for the adapter's tests: its own home, database and API server, all in this process.

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it: a temporary ``AIRFLOW_HOME`` with an SQLite database (created once
per session), the test DAGs of ``dags/`` as the DAG folder, and a simple-auth-manager user
``waitgate`` for the relay. The session serves, each on a loopback socket in its own thread:
waitgate (``tests.engines.harness.GatewayThread``, ManualClock), Airflow's API server (the
relay's peer for HITL responses) and the relay (``waitgate relay``'s app with the Airflow
adapter). ``dag.test()`` runs in the test's thread; people act from another one.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HOME = Path(tempfile.mkdtemp(prefix="waitgate-airflow-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)
DAGS = Path(__file__).parent / "dags"
RELAY_USER, RELAY_PASSWORD = "waitgate", "relay-password-for-tests"
(HOME / "passwords.json").write_text(json.dumps({RELAY_USER: RELAY_PASSWORD}))
os.environ.update(
    {
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{RELAY_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(HOME / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "airflow-tests-jwt-secret-" + "x" * 64,
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
)


from gateway.integrations.airflow import relay_adapter  # noqa: E402
from gateway.integrations.relay import relay_app  # noqa: E402
from tests.engines.harness import GatewayThread, ServedApp  # noqa: E402
from tests.receiver import free_port  # noqa: E402

AIRFLOW_WARNINGS = [
    # Airflow's own deprecations, raised inside Airflow while it runs a DAG (not our calls).
    "ignore::DeprecationWarning:airflow.*",
    "ignore::PendingDeprecationWarning:airflow.*",
    "ignore::airflow.exceptions.RemovedInAirflow4Warning",
    # svcs (Airflow's execution API) imports starlette.testclient, which warns about httpx.
    "ignore:Using `httpx` with `starlette.testclient` is deprecated:UserWarning",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Airflow's own deprecation warnings are not errors here (``filterwarnings = error``).
    The timeout runs in a thread: ``dag.test()`` installs its own signal handlers."""
    for item in items:
        item.add_marker(pytest.mark.timeout(180, method="thread"))
        for rule in AIRFLOW_WARNINGS:
            item.add_marker(pytest.mark.filterwarnings(rule))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database, created once (the home goes when the session ends)."""
    from airflow.utils.db import resetdb

    resetdb()
    return HOME


@pytest.fixture(scope="session")
def airflow_api(airflow_db: Path) -> Iterator[ServedApp]:
    """Airflow's API server (``/api/v2``, ``/auth``) on this session's database."""
    from airflow.api_fastapi.app import create_app

    with ServedApp(create_app(apps="core"), "airflow-api") as served:
        yield served


@pytest.fixture(scope="session")
def relay_port() -> int:
    """Where the relay listens (waitgate must allow it as a callback origin at start)."""
    return free_port()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, relay_port: int) -> Iterator[GatewayThread]:
    """waitgate, with the relay as an allowed callback origin; its connection for Airflow."""
    data = tmp_path_factory.mktemp("waitgate")
    relay = f"http://127.0.0.1:{relay_port}"
    with GatewayThread(data, allowed_origins=(relay,)) as served:
        os.environ["AIRFLOW_CONN_WAITGATE_DEFAULT"] = json.dumps(
            {
                "conn_type": "http",
                "host": served.url,
                "password": served.admin_key,
                "extra": {"relay_url": f"{relay}/callbacks"},
            }
        )
        yield served
    os.environ.pop("AIRFLOW_CONN_WAITGATE_DEFAULT", None)


@pytest.fixture(scope="session")
def relay(gateway: GatewayThread, airflow_api: ServedApp, relay_port: int) -> Iterator[ServedApp]:
    """``waitgate relay --engine airflow`` as it runs: ``relay_adapter()`` built from the
    environment, logging in to Airflow as ``waitgate``. Its clock is the gateway's, so callbacks
    signed after the ManualClock moved are still fresh."""
    os.environ.update(
        {
            "AIRFLOW_API_URL": airflow_api.url,
            "AIRFLOW_API_USERNAME": RELAY_USER,
            "AIRFLOW_API_PASSWORD": RELAY_PASSWORD,
        }
    )
    app = relay_app(
        relay_adapter, [gateway.callback_secret], now=lambda: gateway.clock.now_ms() / 1000
    )
    with ServedApp(app, "relay", port=relay_port) as served:
        yield served


@pytest.fixture(autouse=True)
def _real_time_again(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with waitgate's ManualClock at the real time: Airflow computes deadlines
    from its own (real) clock, and an earlier test may have moved waitgate's hours ahead."""
    yield
    if "gateway" in request.fixturenames:
        gateway: GatewayThread = request.getfixturevalue("gateway")
        gateway.advance(int(time.time() * 1000) - gateway.clock.now_ms())
