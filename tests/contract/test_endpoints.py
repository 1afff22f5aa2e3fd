"""The store's endpoint verbs on both backends: claims that honour each endpoint's breaker and
concurrency even when replicas claim at the same moment, one probe only, the breaker's
transitions, the maximum age that does not count open time, and legacy rows."""

from __future__ import annotations

import asyncio

from gateway.domain import NewExecution, ResumedBy, WebhookSpec
from gateway.endpoints import Breaker, EndpointState, Transition
from gateway.outbox_model import Delivery, DeliveryAttempt
from persistence import script as q
from persistence.base import Store
from persistence.script import Script

NOW = 1_800_000_000_000
SLOW = "https://slow.example:443"
FAST = "https://fast.example:443"
BREAKER = Breaker(threshold=2, cooldown_ms=10_000)
LEASE = 60_000


async def pending_callbacks(store: Store, origin: str, count: int) -> None:
    """``count`` executions resumed, each with a callback to ``origin`` in the outbox."""
    hook = WebhookSpec(methods=("POST",), suffix="")
    for _ in range(count):
        eid = (
            await store.create_execution(NewExecution("wf", callback_url=origin + "/hook"), NOW)
        ).id
        assert await store.park(eid, None, hook, NOW)
        assert await store.resume(eid, 1, ResumedBy.WEBHOOK, None, NOW)


async def fail(store: Store, delivery: Delivery, now: int) -> Transition | None:
    attempt = DeliveryAttempt(delivery.id, now, 5, 503, "answered 503")
    return await store.record_attempt(
        attempt, next_attempt_at=now + 1, now=now, endpoint=delivery.endpoint, breaker=BREAKER
    )


async def succeed(store: Store, delivery: Delivery, now: int) -> Transition | None:
    attempt = DeliveryAttempt(delivery.id, now, 5, 200)
    return await store.record_attempt(
        attempt, next_attempt_at=None, now=now, endpoint=delivery.endpoint, breaker=BREAKER
    )


async def state(store: Store, endpoint: str) -> EndpointState:
    (found,) = [e for e in await store.list_endpoints(None, 10) if e.endpoint == endpoint]
    return found.state


async def claim_together(
    store: Store, now: int, replicas: int, per_endpoint: int
) -> list[Delivery]:
    """What ``replicas`` claims made at the same moment took, together."""
    batches = await asyncio.gather(
        *(store.claim_deliveries(now, 100, LEASE, per_endpoint) for _ in range(replicas))
    )
    return [d for batch in batches for d in batch]


async def test_concurrent_claims_never_exceed_an_endpoints_concurrency(store: Store) -> None:
    await pending_callbacks(store, SLOW, 10)
    await pending_callbacks(store, FAST, 2)
    claimed = await claim_together(store, NOW, 4, per_endpoint=3)
    by_endpoint = sorted(d.endpoint for d in claimed)
    assert by_endpoint == [FAST] * 2 + [SLOW] * 3
    assert len({d.id for d in claimed}) == len(claimed)
    # in flight (leased) deliveries count: nothing more until one ends
    assert await claim_together(store, NOW + 1, 2, per_endpoint=3) == []
    await succeed(store, next(d for d in claimed if d.endpoint == SLOW), NOW + 2)
    (more,) = await claim_together(store, NOW + 3, 3, per_endpoint=3)
    assert more.endpoint == SLOW


async def test_the_breaker_opens_holds_probes_once_and_closes(store: Store) -> None:
    await pending_callbacks(store, SLOW, 4)
    first = await store.claim_deliveries(NOW, 2, LEASE, 2)
    assert await fail(store, first[0], NOW) is None
    assert await fail(store, first[1], NOW) is Transition.DISABLED
    assert await state(store, SLOW) is EndpointState.OPEN
    # open: nothing of it is claimed, due or not, until the cool-down is over
    assert await store.claim_deliveries(NOW + 9_999, 100, LEASE, 4) == []
    assert await store.next_delivery_due() == NOW + BREAKER.cooldown_ms
    # over: of several replicas claiming at once, one takes one probe
    (probe,) = await claim_together(store, NOW + 10_000, 4, per_endpoint=4)
    assert probe.probe
    assert await state(store, SLOW) is EndpointState.HALF_OPEN
    assert await claim_together(store, NOW + 10_001, 3, per_endpoint=4) == []
    # it fails: open again for a cool-down, with no second "disabled"
    assert await fail(store, probe, NOW + 10_100) is None
    assert await state(store, SLOW) is EndpointState.OPEN
    assert await store.claim_deliveries(NOW + 20_000, 100, LEASE, 4) == []
    (probe,) = await store.claim_deliveries(NOW + 20_100, 100, LEASE, 4)
    assert await succeed(store, probe, NOW + 20_200) is Transition.RECOVERED
    assert await state(store, SLOW) is EndpointState.CLOSED
    rest = await store.claim_deliveries(NOW + 20_300, 100, LEASE, 4)
    assert len(rest) == 3  # the other three, none lost


async def test_a_probe_whose_replica_died_is_taken_again_after_its_lease(store: Store) -> None:
    await pending_callbacks(store, SLOW, 2)
    for delivery in await store.claim_deliveries(NOW, 2, LEASE, 2):
        await fail(store, delivery, NOW)
    (probe,) = await store.claim_deliveries(NOW + 10_000, 100, LEASE, 4)
    assert await store.claim_deliveries(NOW + 10_000 + LEASE - 1, 100, LEASE, 4) == []
    (again,) = await store.claim_deliveries(NOW + 10_000 + LEASE, 100, LEASE, 4)
    assert again.probe
    assert again.id == probe.id


async def test_the_time_open_does_not_count_towards_the_maximum_age(store: Store) -> None:
    await pending_callbacks(store, SLOW, 3)
    first = await store.claim_deliveries(NOW, 2, LEASE, 2)
    for delivery in first:
        await fail(store, delivery, NOW)
    waiting = [d for d in await store.list_endpoints(None, 10)]
    assert waiting[0].pending == 3
    (probe,) = await store.claim_deliveries(NOW + 50_000, 100, LEASE, 4)
    await succeed(store, probe, NOW + 50_000)
    for delivery in await store.claim_deliveries(NOW + 50_001, 100, LEASE, 4):
        assert delivery.window_start == NOW + 50_000  # moved forward by the 50 s it was open


def _forget_endpoints() -> Script[None]:
    """What a row written before migration 13 looks like: no endpoint."""
    yield from q.script("legacy", "UPDATE deliveries SET endpoint = ''")


async def test_deliveries_written_before_endpoints_get_theirs_before_any_claim(
    store: Store,
) -> None:
    await pending_callbacks(store, "HTTPS://Legacy.Example", 1)
    await store.db.write(_forget_endpoints)
    legacy = await store.claim_deliveries(NOW, 1, LEASE, 4)
    assert [d.endpoint for d in legacy] == ["https://legacy.example:443"]


async def test_a_redelivery_to_an_open_endpoint_is_probed_at_once(store: Store) -> None:
    await pending_callbacks(store, SLOW, 2)
    for delivery in await store.claim_deliveries(NOW, 2, LEASE, 2):
        attempt = DeliveryAttempt(delivery.id, NOW, 5, 503, "answered 503")
        await store.record_attempt(
            attempt, next_attempt_at=None, now=NOW, endpoint=SLOW, breaker=BREAKER
        )
    assert await state(store, SLOW) is EndpointState.OPEN
    assert await store.claim_deliveries(NOW + 1, 100, LEASE, 4) == []
    again = await store.redeliver(delivery.id, NOW + 2)
    assert again is not None
    (probe,) = await store.claim_deliveries(NOW + 3, 100, LEASE, 4)
    assert (probe.id, probe.probe) == (delivery.id, True)
