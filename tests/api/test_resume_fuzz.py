"""Hostile calls of ``/webhook-waiting/...``: never a 5xx, always a JSON answer, no resume
without the live signature.

Hypothesis throws random paths, methods, signatures (random, truncated, altered, of another
execution, wait, suffix or action), headers (huge values, many of them), bodies and content
types at the resume endpoint of the app in this process; the resumed waits in the store are
counted before and after every call. Fixed cases cover what random generation rarely reaches:
JSON and XML nested thousands of levels deep (both were 500s once: a ``RecursionError``), a gzip
bomb sent with ``content-encoding: gzip`` (kept as the opaque bytes it is, never inflated),
numbers too large for JSON decoders, XML entity expansion (billion laughs) and external
entities, and the engine API's answer to the same deep nesting.
"""

from __future__ import annotations

import gzip
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.clock import ManualClock
from gateway.routes.webhook import MAX_IDEMPOTENCY_KEY
from gateway.services import Services
from gateway.signing import Action
from gateway.stored import MAX_HEADER_VALUE
from tests.conftest import create, get, park

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
METHODS = ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"]
TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
HEADER_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
CONTENT_TYPES = [
    "application/json",
    "application/vnd.api+json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "text/xml",
    "application/atom+xml",
    "text/plain",
    "text/plain; charset=latin-1",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "",
    ";;;",
    "application/json; charset=utf-8; charset=ascii",
]
ENTITIES = ['<!ENTITY lol0 "lol">'] + [
    f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
]
BILLION_LAUGHS = f'<?xml version="1.0"?><!DOCTYPE l [{"".join(ENTITIES)}]><l>&lol9;</l>'.encode()
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]><r>&x;</r>'
)
AMPLIFIED = (  # 12 KB that expat expands to 8 MB of text, under its own amplification limit
    f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "{"a" * 10_000}">]><r>{"&x;" * 800}</r>'
).encode()
XML_ATTACKS = {
    "billion-laughs": BILLION_LAUGHS,
    "external-entity": EXTERNAL_ENTITY,
    "entity-amplification": AMPLIFIED,
}


@dataclass
class Targets:
    """Executions in every state the endpoint distinguishes, and their signatures."""

    ids: list[int]
    live: dict[int, str]
    foreign: list[str]
    aimed: list[tuple[str, str]]
    """(path, signature) pairs whose signature is genuine for the path yet resumes nothing."""


def signature(url: str) -> str:
    """The ``signature`` query value of a resume URL."""
    (value,) = parse_qs(urlsplit(url).query)["signature"]
    return value


async def resumed_waits(svc: Services, ids: list[int]) -> dict[int, int]:
    """How many waits of each execution have resumed, read from the store."""
    counts = {}
    for eid in ids:
        execution = await svc.store.get_execution(eid, with_waits=True)
        waits = [] if execution is None else execution.waits
        counts[eid] = sum(w.resumed_at is not None for w in waits)
    return counts


@pytest.fixture
async def targets(client: httpx.AsyncClient, svc: Services) -> Targets:
    """Waiting (webhook, webhook with suffix, timer), running, canceled, finished."""
    hook = await park(client, (await create(client))["id"], webhook={"httpMethod": "POST"})
    suffixed = await park(
        client,
        (await create(client))["id"],
        webhook={"httpMethod": METHODS, "suffix": "approve/now"},
    )
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    timer = await park(client, (await create(client))["id"], waitTill=later)
    running = await create(client)
    canceled = await park(client, (await create(client))["id"], webhook={})
    assert (await client.post(f"/api/v1/executions/{canceled['id']}/stop")).status_code == 200
    finished = await create(client)
    done = await client.post(
        f"/api/v1/executions/{finished['id']}/finish", json={"status": "success"}
    )
    assert done.status_code == 200
    ids = [e["id"] for e in (hook, suffixed, timer, running, canceled, finished)]
    live = {hook["id"]: signature(hook["resumeUrl"])}
    live[suffixed["id"]] = signature(suffixed["resumeUrl"])
    nonces = {}
    for eid in ids:
        found = await svc.store.get_execution(eid)
        assert found is not None
        nonces[eid] = found.nonce

    def token(eid: int, seq: int, suffix: str = "", action: Action = Action.RESUME) -> str:
        return svc.signer.token(eid, nonces[eid], seq, suffix, action)

    first, second = hook["id"], suffixed["id"]
    foreign = [
        token(first, 1, "approve/now"),  # another suffix
        token(second, 1),  # no suffix
        token(first, 2),  # a later wait
        token(first, 0),
        token(first, 999_999_999),
        *(token(first, 1, "", action) for action in Action if action is not Action.RESUME),
        token(timer["id"], 1),  # a timer-only wait
        token(running["id"], 1),  # the next wait of a running execution
        token(canceled["id"], 1),
        svc.signer.token(first, "0" * 32, 1),  # an execution with this id in another database
        svc.signer.token(first, "", 1),  # ... or from before nonces
    ]
    aimed = [
        (f"/webhook-waiting/{timer['id']}", token(timer["id"], 1)),  # no webhook: 404
        (f"/webhook-waiting/{running['id']}", token(running["id"], 1)),  # early: 202
        (f"/webhook-waiting/{canceled['id']}", token(canceled["id"], 1)),  # 409
        (f"/webhook-waiting/{finished['id']}", token(finished["id"], 1)),  # 409
        (f"/webhook-waiting/{first}", token(first, 2)),  # a later wait: 409
        (f"/webhook-waiting/{first}/approve", token(first, 1, "approve")),  # 404
        (f"/webhook-waiting/{second}", token(second, 1)),  # suffix missing: 404
    ]
    return Targets(ids, live, foreign, aimed)


def mangled(token: str) -> st.SearchStrategy[str]:
    """A live token cut short, with a character changed, or with something appended."""
    flip = st.integers(0, len(token) - 1).map(
        lambda i: token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
    )
    return st.one_of(
        st.integers(0, len(token) - 1).map(lambda n: token[:n]),
        flip,
        st.text(min_size=1, max_size=5).map(lambda extra: token + extra),
        st.just(token.upper() if token.upper() != token else token.lower()),
    )


def signatures(targets: Targets, eid: int | None) -> st.SearchStrategy[str | None]:
    """Every signature but the live one of execution ``eid``."""
    other_live = [tok for other, tok in targets.live.items() if other != eid]
    own = targets.live.get(eid) if eid is not None else None
    choices: list[st.SearchStrategy[str | None]] = [
        st.none(),
        st.text(max_size=80),
        st.from_regex(r"[0-9]{1,12}\.[A-Za-z0-9_-]{0,60}", fullmatch=True),
        st.from_regex(r"[0-9]{1,12}\.[0-9a-f]{32}\.[A-Za-z0-9_-]{0,60}", fullmatch=True),
        st.sampled_from(targets.foreign + other_live),
    ]
    if own is not None:
        choices.append(mangled(own))
    return st.one_of(*choices)


def paths(targets: Targets) -> st.SearchStrategy[tuple[str, int | None]]:
    """A path under ``/webhook-waiting/`` and the execution it names, if any."""
    known = st.sampled_from(targets.ids).map(lambda eid: (str(eid), eid))
    unknown = st.one_of(
        st.integers(10**6, 10**30).map(str),
        st.sampled_from(["-1", "0x1", "1e3", "", " 1", "\u0661", "%00", "..", "1;2"]),
        st.text(min_size=1, max_size=30),
    ).map(lambda text: (text, None))
    suffix = st.one_of(
        st.just(""),
        st.sampled_from(["approve/now", "approve", "approve/now/", "../1", "a//b", "%2e%2e"]),
        st.text(max_size=40),
    )

    def join(named: tuple[str, int | None], tail: str) -> tuple[str, int | None]:
        text, eid = named
        path = "/webhook-waiting/" + quote(text, safe="%")
        return (path + "/" + quote(tail, safe="/%") if tail else path), eid

    return st.builds(join, st.one_of(known, unknown), suffix)


def headers() -> st.SearchStrategy[dict[bytes, bytes]]:
    """Few or many headers; a few values very large."""
    name = (
        st.text(TCHAR, min_size=1, max_size=30)
        .filter(lambda n: n.lower() not in {"content-length", "transfer-encoding", "host"})
        .map(str.encode)
    )
    value = st.one_of(
        st.text(HEADER_TEXT, max_size=60).map(lambda v: v.strip().encode("latin-1")),
        st.integers(1, 200_000).map(lambda n: b"v" * n),
    )
    return st.one_of(
        st.dictionaries(name, value, max_size=8),
        st.integers(100, 600).map(lambda n: {b"x-many-%d" % i: b"%d" % i for i in range(n)}),
    )


def bodies() -> st.SearchStrategy[bytes]:
    """Empty, random, invalid UTF-8, deep or odd JSON, XML with entities."""
    return st.one_of(
        st.just(b""),
        st.binary(max_size=300),
        st.binary(max_size=40).map(lambda b: b"\xff\xfe" + b + b"\xc3"),
        st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 5_000).map(lambda n: b'{"a":' * n + b"0" + b"}" * n),
        st.integers(1, 3_000).map(lambda n: b"<r>" * n + b"</r>" * n),
        st.integers(20, 6_000).map(lambda n: b"-" + b"9" * n),
        st.sampled_from(sorted(XML_ATTACKS)).map(XML_ATTACKS.__getitem__),
        st.sampled_from(
            [
                b"1e999999",
                b'{"n": 123456789012345678901234567890}',
                b'"\\ud800"',
                b'{"a":"\\u0000"}',
                b"a=%FF&b",
            ]
        ),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
            max_leaves=20,
        ).map(lambda v: httpx.Request("POST", "/", json=v).read()),
    )


def content_types() -> st.SearchStrategy[str]:
    """Known media types, with parameters, and random text."""
    return st.one_of(st.sampled_from(CONTENT_TYPES), st.text(HEADER_TEXT, max_size=40))


def assert_answer(response: httpx.Response, method: str) -> None:
    """Never a 5xx; an error answer is JSON carrying a ``message``."""
    event(f"answered {response.status_code}")
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code < 300:
        return
    assert response.headers["content-type"].startswith("application/json"), response.headers
    if method == "HEAD":
        return
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body["message"], str), body
    assert body["message"], body


@settings(FUZZ, max_examples=80)
@given(data=st.data())
async def test_random_calls_without_the_live_signature_resume_nothing(
    anon: httpx.AsyncClient,
    svc: Services,
    clock: ManualClock,
    targets: Targets,
    data: st.DataObject,
) -> None:
    # A new minute for each example: the bad-signature limit refills instead of answering 429
    # in place of the code behind it.
    clock.advance(60_000)
    token: str | None
    if data.draw(st.integers(0, 3), "aim") == 0:
        path, token = data.draw(st.sampled_from(targets.aimed), "aimed")
    else:
        path, eid = data.draw(paths(targets), "path")
        token = data.draw(signatures(targets, eid), "signature")
    odd = ["OPTIONS", "TRACE", "get", "FOO"]
    method = data.draw(st.sampled_from([*METHODS, *METHODS, *odd]), "method")
    sent = data.draw(headers(), "headers")
    sent[b"content-type"] = data.draw(content_types(), "content-type").encode("latin-1")
    if data.draw(st.booleans(), "gzip"):
        sent[b"content-encoding"] = b"gzip"
    params = {} if token is None else {"signature": token}
    before = await resumed_waits(svc, targets.ids)
    response = await anon.request(
        method, path, params=params, headers=sent, content=data.draw(bodies(), "body")
    )
    assert_answer(response, method)
    if response.request.url.path.startswith("/webhook-waiting/"):  # ".." may lead elsewhere
        assert response.status_code != 200, response.text[:300]
    assert await resumed_waits(svc, targets.ids) == before


@FUZZ
@given(data=st.data())
async def test_any_body_with_the_live_signature_resumes_once_or_leaves_the_wait(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services, data: st.DataObject
) -> None:
    parked = await park(client, (await create(client))["id"], webhook={"httpMethod": METHODS})
    method = data.draw(st.sampled_from(METHODS), "method")
    sent = data.draw(headers(), "headers")
    sent[b"content-type"] = data.draw(content_types(), "content-type").encode("latin-1")
    if data.draw(st.booleans(), "gzip"):
        sent[b"content-encoding"] = b"gzip"
    body = data.draw(bodies(), "body")
    response = await anon.request(method, parked["resumeUrl"], headers=sent, content=body)
    assert_answer(response, method)
    after = await resumed_waits(svc, [parked["id"]])
    if response.status_code == 200:
        assert after == {parked["id"]: 1}
        again = await anon.request(method, parked["resumeUrl"], content=body)
        assert again.status_code == 409
    else:
        key = next((v for k, v in sent.items() if k.lower() == b"idempotency-key"), None)
        bad_key = key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY
        assert response.status_code in ({400} if bad_key else {413, 422}), response.text[:300]
        assert after == {parked["id"]: 0}
        assert (await get(client, parked["id"]))["status"] == "waiting"


async def waiting(client: httpx.AsyncClient) -> dict[str, Any]:
    """A new execution parked at a POST webhook wait."""
    return await park(client, (await create(client))["id"], webhook={"httpMethod": "POST"})


async def stored_body(client: httpx.AsyncClient, eid: int) -> Any:
    """The body of the resume payload the store kept."""
    wait = (await get(client, eid, includeData="true"))["data"]["waits"][0]
    assert wait["resumedBy"] == "webhook"
    return wait["payload"]["body"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"[" * 10_000 + b"]" * 10_000),
        ("application/json", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
        ("application/vnd.api+json", b'{"a":[' * 5_000 + b"]}" * 5_000),
        ("application/xml", b"<r>" * 5_000 + b"</r>" * 5_000),
        ("text/xml", b'<r a="1">' * 1_000 + b"</r>" * 1_000),
    ],
    ids=["json-arrays", "json-objects", "json-mixed", "xml", "xml-attributes"],
)
async def test_bodies_nested_thousands_of_levels_are_422_and_the_wait_stays(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, content_type: str, body: bytes
) -> None:
    parked = await waiting(client)
    response = await anon.post(
        parked["resumeUrl"], content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 422, response.text[:300]
    assert response.json()["message"] == "Failed to parse request body"
    assert "nested deeper than 64 levels" in response.json()["hint"]
    assert (await get(client, parked["id"]))["status"] == "waiting"


async def test_gzip_bomb_is_kept_as_opaque_bytes_never_inflated(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    bomb = gzip.compress(b"\0" * (50 << 20), 9)  # 50 MiB of zeros in ~50 KB
    parked = await waiting(client)
    response = await anon.post(
        parked["resumeUrl"],
        content=bomb,
        headers={"content-encoding": "gzip", "content-type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text[:300]
    binary = (await stored_body(client, parked["id"]))["binary"]
    assert binary["fileSize"] == len(bomb)
    assert binary["mimeType"] == "application/octet-stream"


async def test_gzip_bomb_declared_as_json_is_422_and_past_the_limit_413(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, svc: Services
) -> None:
    parked = await waiting(client)
    bomb = gzip.compress(b"[" * (50 << 20), 9)
    as_json = await anon.post(
        parked["resumeUrl"],
        content=bomb,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert as_json.status_code == 422, as_json.text[:300]
    bigger = gzip.compress(b"\0" * (svc.settings.max_body_bytes * 1100), 9)
    assert len(bigger) > svc.settings.max_body_bytes
    too_big = await anon.post(
        parked["resumeUrl"], content=bigger, headers={"content-encoding": "gzip"}
    )
    assert too_big.status_code == 413
    assert (await get(client, parked["id"]))["status"] == "waiting"


@pytest.mark.parametrize(
    "body", [b"1e999999", b"-1e400", b"9" * 5000, b'{"n": -' + b"7" * 9000 + b"}"]
)
async def test_numbers_beyond_any_decoder_are_422(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, body: bytes
) -> None:
    parked = await waiting(client)
    response = await anon.post(
        parked["resumeUrl"], content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text[:300]
    assert (await get(client, parked["id"]))["status"] == "waiting"


@pytest.mark.parametrize("number", [123456789012345678901234567890, -(10**4000)])
async def test_a_large_but_decodable_integer_is_kept_exactly(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, number: int
) -> None:
    parked = await waiting(client)
    response = await anon.post(parked["resumeUrl"], json={"n": number})
    assert response.status_code == 200, response.text[:300]
    assert await stored_body(client, parked["id"]) == {"n": number}


@pytest.mark.parametrize("body", XML_ATTACKS.values(), ids=XML_ATTACKS.keys())
async def test_xml_entity_attacks_are_422(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, body: bytes
) -> None:
    parked = await waiting(client)
    response = await anon.post(
        parked["resumeUrl"], content=body, headers={"content-type": "application/xml"}
    )
    assert response.status_code == 422, response.text[:300]
    assert response.json()["message"] == "Failed to parse request body"
    assert (await get(client, parked["id"]))["status"] == "waiting"


async def test_huge_and_many_headers_resume_and_are_kept_bounded(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    parked = await waiting(client)
    sent = {f"x-h{i}": str(i) for i in range(500)} | {"x-huge": "v" * 200_000}
    response = await anon.post(parked["resumeUrl"], headers=sent, json={"ok": True})
    assert response.status_code == 200, response.text[:300]
    wait = (await get(client, parked["id"], includeData="true"))["data"]["waits"][0]
    assert wait["payload"]["headers"]["x-h499"] == "499"
    huge = wait["payload"]["headers"]["x-huge"]
    assert len(huge) == MAX_HEADER_VALUE
    assert huge.endswith("[truncated]")


async def test_the_engine_api_answers_400_to_the_same_deep_nesting(
    client: httpx.AsyncClient,
) -> None:
    deep = b"[" * 10_000 + b"]" * 10_000
    created = await client.post(
        "/api/v1/executions",
        content=b'{"workflowId": "w", "data": ' + deep + b"}",
        headers={"content-type": "application/json"},
    )
    assert created.status_code == 400, created.text[:300]
    assert created.json()["message"] == "Request body is nested too deeply"
    execution = await create(client)
    custom = await client.put(f"/api/v1/executions/{execution['id']}/custom-data", content=deep)
    assert custom.status_code == 400, custom.text[:300]
