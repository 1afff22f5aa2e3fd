"""Events at scale: inbound events matched against a million parked waits, against the
same-run baseline of resumes by URL in the same database, on a real ``waitgate serve``.

The database holds ``parked`` executions waiting for events of one HMAC-signed source
(``shop``): execution ``n`` waits for ``payment_intent.succeeded`` with
``data.object.metadata.orderId = ord_<n>`` and ``data.object.metadata.tenant = t-<n % 100>``
(a key ten thousand waits share, as a tenant or currency does), or for
``payment_intent.payment_failed`` with the same order. Beside them, executions parked on a
plain webhook wait, for the baseline. Each round then sends, over the same connections with the
same load generator: (a) resumes by URL, (b) signed events each matching exactly one wait, (c)
signed events matching nothing (kept unmatched for the lookback). At the end the database is
checked: every matched event resumed exactly its one wait, and nothing else moved.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path

import msgspec

from gateway.config import Secret
from gateway.event_model import EventCondition, EventSource
from gateway.signing import ResumeSigner
from tests.load.bulk import fill
from tests.load.bulk_events import fill_event_waits
from tests.load.loadgen import Request, Result, run
from tests.process import GatewayProcess

PARKED = 1_000_000
TENANTS = 100
SOURCE = "shop"
SIGNATURE_HEADER = "X-Shop-Signature"
ORDER = "data.object.metadata.orderId"
TENANT = "data.object.metadata.tenant"
SUCCEEDED = "payment_intent.succeeded"
FAILED = "payment_intent.payment_failed"
JSON = {"content-type": "application/json"}
BODY = msgspec.json.encode({"approved": True, "by": "someone@example.com", "note": "x" * 140})


def shop_source(secret: str) -> EventSource:
    """The benchmark's source: an HMAC-SHA256 of the body, hex, as GitHub-like providers send."""
    verify = {"type": "hmac", "header": SIGNATURE_HEADER, "secret": secret, "prefix": "sha256="}
    return EventSource(SOURCE, verify, event_id_path="id", event_name_path="type")


def conditions(n: int) -> tuple[EventCondition, ...]:
    """What execution ``n`` waits for: its order paid (in its tenant), or its payment failed."""
    order = f"ord_{n}"
    return (
        EventCondition(SOURCE, SUCCEEDED, ((ORDER, order), (TENANT, f"t-{n % TENANTS}"))),
        EventCondition(SOURCE, FAILED, ((ORDER, order),)),
    )


def event(secret: str, event_id: str, order: str, tenant: str) -> Request:
    """A signed ``payment_intent.succeeded`` for ``order``, about 300 bytes of JSON."""
    body = msgspec.json.encode(
        {
            "id": event_id,
            "type": SUCCEEDED,
            "created": 1_767_225_600,
            "data": {
                "object": {
                    "id": "pi_" + event_id,
                    "amount": 1999,
                    "currency": "usd",
                    "status": "succeeded",
                    "metadata": {"orderId": order, "tenant": tenant},
                }
            },
        }
    )
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return ("POST", f"/events/{SOURCE}", body, {**JSON, SIGNATURE_HEADER: f"sha256={digest}"})


def _merge(results: list[Result]) -> Result:
    merged = Result(sum(r.requests for r in results), sum(r.seconds for r in results))
    for r in results:
        merged.latencies_ms.extend(r.latencies_ms)
        merged.statuses.update(r.statuses)
    return merged


def check(
    db: Path,
    event_ids: range,
    hook_ids: range,
    matched: list[int],
    resumed_hooks: int,
    unmatched: int,
) -> list[str]:
    """What is wrong in the database after the run (nothing, if the list is empty)."""
    problems = []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        first = event_ids.start
        expected = sorted(first + n for n in matched)
        got = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM executions WHERE workflow_id = 'bench-events' "
                "AND status <> 'waiting' ORDER BY id"
            )
        ]
        if got != expected:
            problems.append(f"event waits resumed: {len(got)} (expected {len(expected)})")
        pairs = conn.execute(
            "SELECT e.body, m.execution_id, w.resumed_by FROM event_matches m "
            "JOIN events e ON e.id = m.event_id "
            "JOIN waits w ON w.execution_id = m.execution_id AND w.seq = m.seq"
        ).fetchall()
        wrong = [
            p
            for p in pairs
            if p[2] != "event"
            or int(msgspec.json.decode(p[0])["data"]["object"]["metadata"]["orderId"][4:])
            != p[1] - first
        ]
        if len(pairs) != len(matched) or wrong:
            problems.append(f"event matches: {len(pairs)}, {len(wrong)} wrong")
        by_status = dict(conn.execute("SELECT status, count(*) FROM events GROUP BY status"))
        if by_status != {"matched": len(matched), "unmatched": unmatched}:
            problems.append(f"events by status: {by_status}")
        still = conn.execute(
            "SELECT count(*) FROM wait_events WHERE execution_id IN "
            "(SELECT execution_id FROM event_matches)"
        ).fetchone()[0]
        if still:
            problems.append(f"{still} conditions of resumed waits remain")
        hooks = conn.execute(
            "SELECT count(*) FROM waits WHERE resumed_by = 'webhook' "
            "AND execution_id BETWEEN ? AND ?",
            (hook_ids.start, hook_ids.stop - 1),
        ).fetchone()[0]
        if hooks != resumed_hooks:
            problems.append(f"resumed by URL: {hooks} (expected {resumed_hooks})")
    finally:
        conn.close()
    return problems


def main(
    parked: int = PARKED,
    count: int = 3000,
    connections: int = 32,
    rounds: int = 3,
    quiet: int = 500,
) -> None:
    """Fill, start, measure ``rounds`` rounds of (baseline, matched, unmatched) of ``count``
    requests each over ``connections`` connections, then one of ``quiet`` requests each over
    one connection (the answer time without queueing); print."""
    rng = random.Random(13)
    key, shop_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    plan = [(connections, count)] * rounds + [(1, quiet)]
    total = sum(n for _, n in plan)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "waitgate.db"
        started = time.monotonic()
        event_ids = fill_event_waits(db, parked, shop_source(shop_secret), conditions)
        fill(db, total, lambda n: None)
        hook_ids = range(event_ids.stop, event_ids.stop + total)
        print(
            f"events   filled {parked:,} executions parked on events "
            f"({parked * 2:,} conditions, {parked * 3:,} match keys) and {total:,} "
            f"on a webhook in {time.monotonic() - started:.0f} s"
        )
        signer = ResumeSigner((Secret(key),), "http://unused")
        chosen = rng.sample(range(parked), total)
        gateway = GatewayProcess(
            Path(folder), {"WAITGATE_SECRET_KEYS": key, "WAITGATE_LOG_LEVEL": "warning"}
        )
        gateway.start()
        results: dict[int, tuple[list[Result], list[Result], list[Result]]] = {}
        try:
            at = 0
            for conns, n in plan:
                part = range(at, at + n)
                at += n
                by_url: list[Request] = [
                    (
                        "POST",
                        f"/webhook-waiting/{hook_ids[i]}?signature="
                        f"{signer.token(hook_ids[i], '', 1)}",
                        BODY,
                        JSON,
                    )
                    for i in part
                ]
                hits = [
                    event(shop_secret, f"evt_{c}", f"ord_{c}", f"t-{c % TENANTS}")
                    for c in (chosen[i] for i in part)
                ]
                misses = [
                    event(shop_secret, f"evt_x{i}", f"ord_x{i}", f"t-{i % TENANTS}") for i in part
                ]
                bases, hit, miss = results.setdefault(conns, ([], [], []))
                bases.append(asyncio.run(run(gateway.url, by_url, conns)))
                hit.append(asyncio.run(run(gateway.url, hits, conns)))
                miss.append(asyncio.run(run(gateway.url, misses, conns)))
        finally:
            gateway.stop()
        problems = check(db, event_ids, hook_ids, chosen, total, total)
    for conns, (base_runs, hit_runs, miss_runs) in results.items():
        base = _merge(base_runs)
        print(
            f"events   {conns} connection{'s' if conns > 1 else ''}, "
            f"{len(base_runs)} x {base_runs[0].requests:,} requests of each kind"
        )
        print(f"events     (a) resume by URL (baseline) : {_figures(base)}")
        for name, result in (
            ("(b) event matching one wait ", _merge(hit_runs)),
            ("(c) event matching nothing  ", _merge(miss_runs)),
        ):
            print(
                f"events     {name} : {_figures(result)}  rate {result.rate / base.rate:4.0%} "
                f"of baseline, p99 x{result.percentile(99) / base.percentile(99):.2f}"
            )
    print(
        "events   check: "
        + (
            "; ".join(problems)
            if problems
            else f"ok: {total:,} events each resumed exactly its one wait, {total:,} kept "
            f"unmatched, {total:,} resumed by URL, nothing else moved"
        )
    )


def _figures(result: Result) -> str:
    return (
        f"{result.rate:6.0f} req/s  p50 {result.percentile(50):5.1f} ms  "
        f"p95 {result.percentile(95):5.1f} ms  p99 {result.percentile(99):5.1f} ms  "
        f"statuses {dict(result.statuses)}"
    )


if __name__ == "__main__":
    main()
