"""What an operator needs on the dashboard: a failed execution's error and result data, the
links to re-send (to keys that may resume), a workflow prefix filter, a word on a malformed
customData filter, and how long finished executions are kept (issue 18)."""

from __future__ import annotations

import html

import httpx
from starlette.applications import Starlette

from gateway.services import Services
from tests.api.test_ui import signed_in
from tests.conftest import create, make_key, park

APPROVERS = {"title": "Pay?", "approvers": [{"id": "ada"}, {"id": "bob"}]}


async def test_a_failed_execution_shows_its_error_and_result(
    app: Starlette, client: httpx.AsyncClient, admin_key: str
) -> None:
    execution = await create(client)
    finished = await client.post(
        f"/api/v1/executions/{execution['id']}/finish",
        json={"status": "error", "error": {"message": "card <declined>"}, "data": {"step": 3}},
    )
    assert finished.status_code == 200, finished.text
    ui = await signed_in(app, admin_key)
    page = (await ui.get(f"/ui/executions/{execution['id']}")).text
    assert "<h2>Error</h2>" in page
    assert "card \\u003cdeclined\\u003e" in page  # escaped, never injected
    assert "<declined>" not in page
    assert "Result data" in page
    assert "&#34;step&#34;: 3" in page or '"step": 3' in html.unescape(page)


async def test_the_links_to_resend_show_only_to_keys_that_may_resume(
    app: Starlette, client: httpx.AsyncClient, svc: Services
) -> None:
    execution = await create(client)
    wait = await park(client, execution["id"], approval=APPROVERS, webhook={})
    writer = await signed_in(app, await make_key(svc, "execution:read", "execution:write"))
    page = html.unescape((await writer.get(f"/ui/executions/{execution['id']}")).text)
    assert "Links to re-send" in page
    assert wait["resumeUrl"] in page
    for who, url in wait["approvalUrls"].items():
        assert f"Approval page of {who}" in page
        assert url in page
    reader = await signed_in(app, await make_key(svc, "execution:read", "execution:list"))
    hidden = html.unescape((await reader.get(f"/ui/executions/{execution['id']}")).text)
    assert "Links to re-send" not in hidden
    assert "signature=" not in hidden


async def test_the_list_filters_by_workflow_prefix(
    app: Starlette, client: httpx.AsyncClient, admin_key: str
) -> None:
    billing = await create(client, workflowId="billing-refunds")
    other = await create(client, workflowId="shipping")
    literal = await create(client, workflowId="bill_x")
    for execution in (billing, other, literal):
        await park(client, execution["id"], webhook={})
    ui = await signed_in(app, admin_key)
    listing = (await ui.get("/ui", params={"q": "billing"})).text
    assert f'/ui/executions/{billing["id"]}"' in listing
    assert f'/ui/executions/{other["id"]}"' not in listing
    wildcard = (await ui.get("/ui", params={"q": "bil_"})).text  # "_" is no wildcard
    assert f'/ui/executions/{billing["id"]}"' not in wildcard
    assert f'/ui/executions/{literal["id"]}"' not in wildcard
    exact = (await ui.get("/ui", params={"q": "bill_x"})).text
    assert f'/ui/executions/{literal["id"]}"' in exact
    cased = (await ui.get("/ui", params={"q": "Billing"})).text
    assert f'/ui/executions/{billing["id"]}"' not in cased


async def test_a_malformed_customdata_filter_says_so(
    app: Starlette, client: httpx.AsyncClient, admin_key: str
) -> None:
    execution = await create(client, customData={"tenant": "t1"})
    await park(client, execution["id"], webhook={})
    ui = await signed_in(app, admin_key)
    for malformed in ("tenant", "=t1"):
        shown = await ui.get("/ui", params={"cd": malformed})
        assert shown.status_code == 400
        assert "must read key=value" in shown.text
        assert f'/ui/executions/{execution["id"]}"' not in shown.text


async def test_the_list_says_how_long_finished_executions_are_kept(
    app: Starlette, admin_key: str
) -> None:
    ui = await signed_in(app, admin_key)
    listing = (await ui.get("/ui")).text
    assert "are kept 14 days and at most the newest 10,000" in listing
    assert "WAITGATE_RETENTION_MAX_AGE" in listing
    assert "WAITGATE_RETENTION_MAX_COUNT" in listing
