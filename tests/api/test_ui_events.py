"""The dashboard's events pages (issue 13): the list, one event, Replay; the execution page
names the event that resumed it. Scopes, project isolation, CSRF, masking and escaping."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from starlette.applications import Starlette

from gateway.clock import ManualClock
from gateway.services import Services
from tests.api.test_events import add_source, send, signed, status_of, stripe_body, waiting_for
from tests.api.test_ui import csrf, signed_in
from tests.conftest import BASE_URL, create, get, make_key, park

NONE_VERIFY = {"type": "none", "allowedIps": ["10.0.0.0/8"]}


def event_ids(page: str) -> list[int]:
    """The events a list page links to, in page order."""
    return [int(i) for i in re.findall(r'<a href="/ui/events/(\d+)">', page)]


def execution_links(page: str) -> set[int]:
    return {int(i) for i in re.findall(r'href="/ui/executions/(\d+)"', page)}


async def api_client(app: Starlette, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers={"X-N8N-API-KEY": key}
    )


async def publish(client: httpx.AsyncClient, **event: Any) -> int:
    response = await client.post("/api/v1/events", json=event)
    assert response.status_code == 200, response.text
    found: int = response.json()["id"]
    return found


async def stripe_story(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, clock: ManualClock
) -> dict[str, int]:
    """An order resumed by a Stripe event, its redelivery, and an event nothing waits for."""
    await add_source(client)
    order = await waiting_for(client, "o-1")
    assert (await send(anon, clock, stripe_body("o-1", "evt_paid"))).json() == {"matched": 1}
    assert (await send(anon, clock, stripe_body("o-1", "evt_paid"))).json()["duplicate"] is True
    assert (await send(anon, clock, stripe_body("o-9", "evt_other"))).json() == {"matched": 0}
    listed = (await client.get("/api/v1/events")).json()["data"]
    by_status = {e["status"]: e["id"] for e in listed}
    return {"order": order, **by_status}


async def test_the_events_page_lists_newest_first_with_status_and_filters(
    app: Starlette,
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    clock: ManualClock,
    admin_key: str,
) -> None:
    story = await stripe_story(client, anon, clock)
    ui = await signed_in(app, admin_key)
    home = await ui.get("/ui")
    assert '<a class="nav" href="/ui/events">Events</a>' in home.text
    page = await ui.get("/ui/events")
    assert page.status_code == 200
    assert event_ids(page.text) == [story["unmatched"], story["duplicate"], story["matched"]]
    rows = re.findall(r"<tr>\s*<td><a href=\"/ui/events/(\d+)\">.*?</tr>", page.text, re.S)
    assert len(rows) == 3
    matched_row = re.search(rf'<a href="/ui/events/{story["matched"]}">.*?</tr>', page.text, re.S)
    assert matched_row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", matched_row.group(0), re.S)
    assert cells == [
        "stripe",
        "payment_intent.succeeded",
        "<code>evt_paid</code>",
        "matched",
        '<time datetime="2026-01-01T00:00:00.000Z" title="2026-01-01T00:00:00.000Z">now</time>',
        "1",
    ]
    only_matched = await ui.get("/ui/events", params={"status": "matched"})
    assert event_ids(only_matched.text) == [story["matched"]]
    assert '<option value="matched" selected>' in only_matched.text
    duplicates = await ui.get("/ui/events", params={"status": "duplicate", "source": "stripe"})
    assert event_ids(duplicates.text) == [story["duplicate"]]
    other_source = await ui.get("/ui/events", params={"source": "github"})
    assert event_ids(other_source.text) == []
    assert "No events match." in other_source.text
    assert '<option value="stripe">' in page.text  # the admin may read sources: offered
    bad = await ui.get("/ui/events", params={"status": "refused"})
    assert bad.status_code == 400
    assert "refused events are never stored" in bad.text


async def test_the_events_page_pages_with_a_cursor(
    app: Starlette, client: httpx.AsyncClient, admin_key: str
) -> None:
    await client.post("/api/v1/event-sources", json={"name": "orders", "verify": NONE_VERIFY})
    published = [await publish(client, source="orders", data={"n": i}) for i in range(53)]
    ui = await signed_in(app, admin_key)
    first = await ui.get("/ui/events", params={"status": "unmatched"})
    assert event_ids(first.text) == published[::-1][:50]
    older = re.search(r'<a href="\?([^"]+)">Older events', first.text)
    assert older is not None
    second = await ui.get("/ui/events?" + html.unescape(older.group(1)))
    assert second.status_code == 200
    assert event_ids(second.text) == published[::-1][50:]
    assert "Older events" not in second.text
    assert (await ui.get("/ui/events", params={"cursor": "nonsense"})).status_code == 400


async def test_the_execution_page_names_the_event_that_resumed_it(
    app: Starlette,
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    clock: ManualClock,
    svc: Services,
    admin_key: str,
) -> None:
    story = await stripe_story(client, anon, clock)
    resumed_at = (await get(client, story["order"], includeData="true"))["data"]["waits"][0][
        "resumedAt"
    ]
    ui = await signed_in(app, admin_key)
    page = await ui.get(f"/ui/executions/{story['order']}")
    assert page.status_code == 200
    card = re.search(r'<div class="card resumed-by-event">.*?</div>', page.text, re.S)
    assert card is not None
    text = card.group(0)
    for shown in (resumed_at, "payment_intent.succeeded", "stripe", "<code>evt_paid</code>"):
        assert shown in text
    assert f'<a href="/ui/events/{story["matched"]}">Event {story["matched"]}</a>' in text
    signature = signed(stripe_body("o-1", "evt_paid"), clock)["Stripe-Signature"]
    assert signature.split("v1=")[1] not in page.text  # the payload is masked as before
    assert "**redacted**" in page.text
    waiting = await create(client)
    await park(client, waiting["id"], webhook={})
    assert "resumed-by-event" not in (await ui.get(f"/ui/executions/{waiting['id']}")).text

    reader = await signed_in(app, await make_key(svc, "execution:read", "execution:list"))
    no_events = await reader.get(f"/ui/executions/{story['order']}")
    assert "<code>evt_paid</code>" in no_events.text  # what the payload says, it may see
    assert "/ui/events/" not in no_events.text  # no link to a page it may not open
    assert 'href="/ui/events"' not in no_events.text


async def test_the_event_page_shows_it_masked_with_the_waits_it_resumed(
    app: Starlette,
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    clock: ManualClock,
    admin_key: str,
) -> None:
    story = await stripe_story(client, anon, clock)
    ui = await signed_in(app, admin_key)
    page = await ui.get(f"/ui/events/{story['matched']}")
    assert page.status_code == 200
    assert "evt_paid" in page.text
    assert '"orderId": "o-1"' in page.text  # the body, as JSON
    assert execution_links(page.text) == {story["order"]}
    assert re.search(r"<th>stripe-signature</th><td><code>\*\*redacted\*\*</code>", page.text)
    signature = signed(stripe_body("o-1", "evt_paid"), clock)["Stripe-Signature"]
    assert signature.split("v1=")[1] not in page.text
    assert '<button type="submit">Replay</button>' in page.text
    duplicate = await ui.get(f"/ui/events/{story['duplicate']}")
    assert f'<a href="/ui/events/{story["matched"]}">event {story["matched"]}</a>' in duplicate.text
    assert "Replay</button>" not in duplicate.text  # a duplicate is not replayed
    unmatched = await ui.get(f"/ui/events/{story['unmatched']}")
    assert execution_links(unmatched.text) == set()
    assert "applied at park until" in unmatched.text
    missing = await ui.get("/ui/events/999999")
    assert missing.status_code == 404
    assert "does not exist" in missing.text
    assert (await ui.get(f"/ui/events/{2**64}")).status_code == 404


async def test_scope_refusals(
    app: Starlette,
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    clock: ManualClock,
    svc: Services,
) -> None:
    story = await stripe_story(client, anon, clock)
    executions_only = await signed_in(app, await make_key(svc, "execution:read", "execution:list"))
    home = await executions_only.get("/ui")
    assert home.status_code == 200
    assert 'href="/ui/events"' not in home.text
    for path in ("/ui/events", f"/ui/events/{story['matched']}"):
        refused = await executions_only.get(path)
        assert refused.status_code == 403, path
        assert "This key may not read events." in refused.text
        assert 'href="/ui/events"' not in refused.text
    token = csrf(home.text)
    replay = f"/ui/events/{story['unmatched']}/replay"
    assert (await executions_only.post(replay, data={"csrf": token})).status_code == 403

    reader = await signed_in(app, await make_key(svc, "event:read"))
    page = await reader.get(f"/ui/events/{story['matched']}")
    assert page.status_code == 200
    assert "Replay</button>" not in page.text
    assert execution_links(page.text) == set()  # it may not open executions
    assert f"<td>{story['order']}</td>" in page.text
    assert '<option value="stripe">' not in (await reader.get("/ui/events")).text
    refused = await reader.post(replay, data={"csrf": csrf(page.text)})
    assert refused.status_code == 403
    assert (await reader.get(f"/ui/executions/{story['order']}")).status_code == 403

    anonymous = await anon.get("/ui/events")
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/ui/login")
    for path in ("/ui/events", f"/ui/events/{story['matched']}"):
        shown = await reader.get(path)
        assert shown.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in shown.headers["content-security-policy"]
        assert shown.headers["cache-control"] == "no-store"


async def test_replay_needs_the_csrf_token_and_event_write(
    app: Starlette, client: httpx.AsyncClient, svc: Services, admin_key: str
) -> None:
    await client.post(
        "/api/v1/event-sources",
        json={"name": "orders", "verify": NONE_VERIFY, "lookbackSeconds": 0},
    )
    kept = await publish(client, source="orders", name="paid", id="p-1", data={"n": "1"})
    again = await publish(client, source="orders", name="paid", id="p-1", data={"n": "1"})
    execution = await create(client)
    await park(client, execution["id"], events=[{"source": "orders", "match": {"n": "1"}}])
    ui = await signed_in(app, admin_key)
    page = await ui.get(f"/ui/events/{kept}")
    token = csrf(page.text)
    for data in ({}, {"csrf": "forged"}, {"csrf": token + "x"}):
        forged = await ui.post(f"/ui/events/{kept}/replay", data=data)
        assert forged.status_code == 403
    other_session = await signed_in(app, admin_key)
    stolen = await other_session.post(f"/ui/events/{kept}/replay", data={"csrf": "x" + token})
    assert stolen.status_code == 403
    assert await status_of(client, execution["id"]) == "waiting"
    assert (await ui.get(f"/ui/events/{kept}/replay")).status_code == 405

    writer = await signed_in(app, await make_key(svc, "event:read", "event:write"))
    page = await writer.get(f"/ui/events/{kept}")
    assert "Replay</button>" in page.text
    done = await writer.post(f"/ui/events/{kept}/replay", data={"csrf": csrf(page.text)})
    assert (done.status_code, done.headers["location"]) == (
        303,
        f"/ui/events/{kept}?done=replay-done",
    )
    assert await status_of(client, execution["id"]) == "running"
    shown = await writer.get(done.headers["location"])
    assert "Replay: done; the waits it matches now were resumed." in shown.text
    assert f"<td>{execution['id']}</td>" in shown.text
    api_view = (await client.get(f"/api/v1/events/{kept}")).json()
    assert api_view["status"] == "matched"
    assert api_view["resumed"] == [{"executionId": execution["id"], "seq": 1}]
    nothing = await writer.post(f"/ui/events/{kept}/replay", data={"csrf": csrf(page.text)})
    assert nothing.headers["location"] == f"/ui/events/{kept}?done=replay-none"
    dup = await writer.post(f"/ui/events/{again}/replay", data={"csrf": csrf(page.text)})
    assert dup.headers["location"] == f"/ui/events/{again}?done=replay-failed"
    assert "it is a duplicate" in (await writer.get(dup.headers["location"])).text
    missing = await writer.post("/ui/events/999999/replay", data={"csrf": csrf(page.text)})
    assert missing.status_code == 404


async def test_a_project_bound_key_sees_only_its_projects_events(
    app: Starlette, client: httpx.AsyncClient, svc: Services, admin_key: str
) -> None:
    keys = {p: await make_key(svc, "admin", project=p) for p in ("p1", "p2")}
    events: dict[str, int] = {}
    for project, key in keys.items():
        async with await api_client(app, key) as api:
            source = f"src-{project}"
            created = await api.post(
                "/api/v1/event-sources", json={"name": source, "verify": NONE_VERIFY}
            )
            assert created.status_code == 201
            execution = await create(api)
            await park(api, execution["id"], events=[{"source": source, "match": {"k": "v"}}])
            events[project] = await publish(api, source=source, data={"k": "v"})
    mine = await signed_in(app, keys["p1"])
    listing = await mine.get("/ui/events")
    assert event_ids(listing.text) == [events["p1"]]
    assert '<option value="src-p1">' in listing.text
    assert "src-p2" not in listing.text
    assert event_ids((await mine.get("/ui/events", params={"source": "src-p2"})).text) == []
    assert (await mine.get(f"/ui/events/{events['p2']}")).status_code == 404
    own = await mine.get(f"/ui/events/{events['p1']}")
    assert own.status_code == 200
    (resumed,) = execution_links(own.text)
    assert (await mine.get(f"/ui/executions/{resumed}")).status_code == 200
    refused = await mine.post(f"/ui/events/{events['p2']}/replay", data={"csrf": csrf(own.text)})
    assert refused.status_code == 404
    everything = await signed_in(app, admin_key)
    assert event_ids((await everything.get("/ui/events")).text) == [events["p2"], events["p1"]]


async def test_event_data_is_escaped_never_markup(
    app: Starlette, client: httpx.AsyncClient, anon: httpx.AsyncClient, admin_key: str
) -> None:
    attack = "<script>alert(1)</script>"
    verify = {"type": "header", "header": "X-Token", "value": "t0ps3cr3t"}
    await client.post(
        "/api/v1/event-sources",
        json={"name": "hook", "verify": verify, "eventNamePath": "kind", "eventIdPath": "id"},
    )
    execution = await create(client)
    await park(client, execution["id"], events=[{"source": "hook", "match": {"order": attack}}])
    body = {"kind": attack, "id": attack, "order": attack, "note": "</pre>" + attack}
    response = await anon.post(
        "/events/hook", json=body, headers={"X-Token": "t0ps3cr3t", "X-Extra": attack}
    )
    assert response.json() == {"matched": 1}
    text_body = await anon.post(
        "/events/hook",
        content=b"not json " + attack.encode(),
        headers={"X-Token": "t0ps3cr3t", "Content-Type": "text/plain"},
    )
    assert text_body.json() == {"matched": 0}
    ui = await signed_in(app, admin_key)
    listed = (await client.get("/api/v1/events")).json()["data"]
    pages = [
        await ui.get("/ui/events"),
        await ui.get("/ui/events", params={"source": attack, "status": attack}),
        await ui.get("/ui/events", params={"source": '"><script>alert(1)</script>'}),
        *[await ui.get(f"/ui/events/{e['id']}", params={"done": attack}) for e in listed],
        await ui.get(f"/ui/executions/{execution['id']}"),
    ]
    for page in pages:
        assert page.status_code in (200, 400), page.url
        assert "<script>alert" not in page.text, page.url
        assert "t0ps3cr3t" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[3].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[-1].text  # the event's name
    assert 'role="status"' not in pages[4].text  # ?done= text is never shown
