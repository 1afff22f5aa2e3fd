"""The OpenAPI document against the app in this process, and against n8n's document.

schemathesis generates requests for every documented operation (valid and invalid ones) and
sends them, with the admin key, to the app the fixtures run (lifespan, store, scheduler): no
answer may be a 5xx, and every answer must be documented (status code, content type, body
schema). Valid calls of a resume URL carry the signature of a freshly parked wait, so they
really resume. A stateful run then chains operations along the links schemathesis infers.
Hypothesis runs in a worker thread; each request is handed to the app on the test's loop.

The compatibility test reads n8n's document from ``../shared/n8n/executions-openapi.json``
beside the repository and checks the served document against it.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jsonschema_rs
import pytest
import requests
import requests.adapters
import schemathesis
import urllib3
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Flaky
from hypothesis.stateful import Bundle, initialize
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.generation.stateful.state_machine import (
    APIStateMachine,
    StepInput,
    StepOutput,
)
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)
from starlette.applications import Starlette
from urllib3 import HTTPHeaderDict

from gateway.routes.docs import openapi_document, openapi_text
from tests.conftest import BASE_URL, create, park

REPOSITORY = Path(__file__).resolve().parents[2]
N8N_DOCUMENT = REPOSITORY.parent / "shared" / "n8n" / "executions-openapi.json"
SCHEMA = schemathesis.openapi.from_dict(openapi_document())


def all_operations() -> list[Any]:
    """Every operation of the document; one that schemathesis cannot read is an error."""
    found = []
    for result in SCHEMA.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return found


OPERATIONS = all_operations()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
STATEFUL_CHECKS = [*CHECKS, use_after_free, ensure_resource_availability]
HEALTH_CHECKS = list(HealthCheck)
FUZZ_SETTINGS = settings(
    max_examples=10, deadline=None, database=None, suppress_health_check=HEALTH_CHECKS
)
STATEFUL_SETTINGS = settings(
    phases=[Phase.generate],
    max_examples=20,
    stateful_step_count=8,
    deadline=None,
    database=None,
    suppress_health_check=HEALTH_CHECKS,
)
RESUME_PATH = "/webhook-waiting/{id}"
ALL_METHODS = ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"]


class LoopAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter that hands each request to the app on another thread's loop."""

    def __init__(self, http: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._http = http
        self._loop = loop

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send through the app's loop, wait for the answer, and dress it as requests'."""
        body = request.body.encode() if isinstance(request.body, str) else request.body
        assert body is None or isinstance(body, bytes), "schemathesis sends whole bodies"
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        call = self._http.request(
            str(request.method), str(request.url), headers=headers, content=body
        )
        answer = asyncio.run_coroutine_threadsafe(call, self._loop).result(timeout=60)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.content),
            headers=HTTPHeaderDict(answer.headers.multi_items()),
            status=answer.status_code,
            reason=answer.reason_phrase,
            version=11,
            preload_content=False,
            request_method=request.method,
        )
        return self.build_response(request, raw)


class Caller:
    """Sends schemathesis cases, from a worker thread, to the app with the admin key."""

    def __init__(self, http: httpx.AsyncClient, admin_key: str) -> None:
        self.session = requests.Session()
        adapter = LoopAdapter(http, asyncio.get_running_loop())
        self.session.mount("http://", adapter)
        self.auth = {"X-N8N-API-KEY": admin_key}

    def kwargs(self) -> dict[str, Any]:
        """What ``case.call`` needs to reach the app as the admin."""
        return {"base_url": BASE_URL, "session": self.session, "headers": self.auth}

    def api(self, method: str, path: str, body: Any) -> dict[str, Any]:
        """One call of the API that must succeed; its JSON."""
        response = self.session.request(method, BASE_URL + path, json=body, headers=self.auth)
        assert response.ok, response.text
        found: dict[str, Any] = response.json()
        return found

    def parked_wait(self) -> tuple[str, str]:
        """A new execution parked at a webhook wait any method resumes: id and signature."""
        created = self.api("POST", "/api/v1/executions", {"workflowId": "wf-resume"})
        parked = self.api(
            "POST",
            f"/api/v1/executions/{created['id']}/wait",
            {"webhook": {"httpMethod": ALL_METHODS}},
        )
        (signature,) = parse_qs(urlsplit(parked["resumeUrl"]).query)["signature"]
        return str(created["id"]), signature

    def send(self, case: Any) -> None:
        """Call and check; a valid resume call gets a live wait to resume."""
        rig = case.operation.path == RESUME_PATH and case.method.upper() != "OPTIONS"
        if rig and case.meta is not None and case.meta.generation.mode.is_positive:
            case.path_parameters["id"], case.query["signature"] = self.parked_wait()
        response = case.call(**self.kwargs())
        case.validate_response(response, checks=CHECKS, headers=self.auth)


@pytest.fixture
async def caller(app: Starlette, admin_key: str) -> AsyncIterator[Caller]:
    """A caller of the running app, which holds a few executions in every state and a tag."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        the_caller = Caller(http, admin_key)
        await asyncio.to_thread(seed, the_caller)
        yield the_caller


def seed(caller: Caller) -> None:
    """Running, waiting and failed executions, and a tag."""
    for n in range(6):
        created = caller.api("POST", "/api/v1/executions", {"workflowId": f"wf{n}"})
        if n % 3 == 1:
            caller.api("POST", f"/api/v1/executions/{created['id']}/wait", {"webhook": {}})
        if n % 3 == 2:
            caller.api("POST", f"/api/v1/executions/{created['id']}/finish", {"status": "error"})
    caller.api("POST", "/api/v1/tags", {"name": "seed"})


def fuzz(operation: Any, mode: GenerationMode, send: Callable[[Any], None]) -> None:
    """Generate cases of ``operation`` in ``mode`` and ``send`` each one."""

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        send(case)

    run()


def negatable(operation: Any) -> bool:
    """Whether the operation takes anything an invalid request could get wrong."""
    return bool(list(operation.iter_parameters()) or list(operation.body))


FUZZ_CASES = [
    pytest.param(operation, mode, id=f"{operation.label} {mode}")
    for operation in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or negatable(operation)
]


@pytest.mark.parametrize(("operation", "mode"), FUZZ_CASES)
async def test_every_operation_answers_as_documented(
    operation: Any, mode: GenerationMode, caller: Caller
) -> None:
    await asyncio.to_thread(fuzz, operation, mode, caller.send)


def run_workflows(caller: Caller, failures: list[str]) -> None:
    """Scenarios along the inferred links, each starting from a newly created execution.

    The app keeps its state from one scenario to the next, so replaying a scenario may take
    another turn and Hypothesis gives up with ``Flaky``; like schemathesis' own runner, check
    failures are counted when they happen, and a run cut short is started again.
    """
    create = SCHEMA["/api/v1/executions"]["POST"]

    class Workflow(SCHEMA.as_state_machine()):  # type: ignore[misc]
        @initialize(target=Bundle("catch_all"), case=create.as_strategy())
        def create_execution(self, case: Any) -> StepOutput | None:
            # What schemathesis' own root rules do, so that links can follow this step.
            start = StepInput.initial(case)
            self.recorder.record_case(case=case)
            self.control.record_step(start, self.recorder)
            output: StepOutput | None = APIStateMachine._step(self, input=start)
            return output

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return caller.kwargs()

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            try:
                case.validate_response(
                    response, checks=STATEFUL_CHECKS, headers=caller.auth, transport_kwargs=kwargs
                )
            except FailureGroup as exc:
                failures.append(str(exc))
                raise

    for _ in range(3):
        try:
            Workflow.run(settings=STATEFUL_SETTINGS)
        except Flaky:
            if not failures:
                continue
        return


async def test_operation_sequences_answer_as_documented(caller: Caller) -> None:
    failures: list[str] = []
    await asyncio.to_thread(run_workflows, caller, failures)
    assert failures == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/webhook-waiting/\u00b2", 401),  # "²".isdigit() is true, int("²") fails
        ("/webhook-waiting/1?signature=\u00b2.abc", 401),
        ("/api/v1/executions?limit=\u00b2", 400),
        ("/api/v1/tags?limit=\u00b2", 400),
        ("/api/v1/executions?startedAfter=0001-01-01T00:00:00%2B01:00", 400),
    ],
)
async def test_what_schemathesis_found_is_a_4xx(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert response.json()["message"]


async def test_instants_before_the_year_1000_keep_four_digits(client: httpx.AsyncClient) -> None:
    created = await create(client)
    parked = await park(client, created["id"], waitTill="0052-08-25T12:47:47Z")
    assert parked["waitTill"] == "0052-08-25T12:47:47.000Z"
    too_early = await client.post(
        f"/api/v1/executions/{created['id']}/wait", json={"waitTill": "0001-01-01T00:00:00+01:00"}
    )
    assert too_early.status_code == 400
    assert "years 1 to 9999" in too_early.json()["message"]


async def test_the_document_is_served_as_shipped(client: httpx.AsyncClient) -> None:
    as_yaml = await client.get("/api/v1/openapi.yml")
    assert as_yaml.status_code == 200
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert as_yaml.text == openapi_text()
    as_json = await client.get("/api/v1/openapi.json")
    assert as_json.status_code == 200
    assert as_json.json() == yaml.safe_load(openapi_text())


async def test_the_docs_page_names_every_operation(anon: httpx.AsyncClient) -> None:
    """Listed on the server too, for a browser without JavaScript."""
    page = await anon.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = html.unescape(page.text)
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete", "head", "options"}:
                assert f'id="{operation["operationId"]}"' in text, (method, path)
                assert path in text, (method, path)
                assert operation["summary"] in text, (method, path)


async def test_the_docs_page_loads_everything_from_the_gateway(anon: httpx.AsyncClient) -> None:
    page = await anon.get("/api/v1/docs")
    text = page.text
    assert "http://" not in text
    assert "https://" not in text
    assert "//" not in text.replace("<!--", "")  # no protocol-relative URL either
    sources = re.findall(r'(?:src|href)="([^"]+)"', text)
    assets = [s for s in sources if s.startswith("docs/assets/")]
    assert {"openapi.yml", "openapi.json"} <= set(sources)
    assert set(sources) - set(assets) == {"openapi.yml", "openapi.json"}
    assert re.findall(r"<script[^>]*>", text) == [
        f'<script src="{s}">' for s in assets if ".js?" in s
    ]  # no inline script: the CSP allows scripts of this origin only
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "default-src 'none'" in policy
    assert "unsafe" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    types = {".js?": "text/javascript", ".css?": "text/css", ".png?": "image/png"}
    for source in assets:
        asset = await anon.get(f"/api/v1/{source}")
        assert asset.status_code == 200, source
        (kind,) = [t for ext, t in types.items() if ext in source]
        assert asset.headers["content-type"].startswith(kind), source
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert "immutable" in asset.headers["cache-control"]
    for unknown in ("index.html", "swagger-ui.js.map", "..%2Fopenapi.yml", "%2e%2e"):
        assert (await anon.get(f"/api/v1/docs/assets/{unknown}")).status_code == 404, unknown


def test_every_request_body_has_an_example_its_schema_accepts() -> None:
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
                assert "example" in media, (method, path, media_type)
                schema = {**media.get("schema", {}), "components": document["components"]}
                validator = jsonschema_rs.validator_for(schema)
                assert validator.is_valid(media["example"]), (method, path, media_type)


# n8n compatibility -----------------------------------------------------------------------


def resolve(document: dict[str, Any], node: Any) -> Any:
    """Follow ``$ref`` within ``document`` until a real node."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def same_type(theirs: Any, ours: Any, name: str) -> bool:
    """Equal types, an integer where n8n says number, or the string ``workflowId``."""
    allowed = {("number", "integer")}
    if name == "workflowId":
        allowed.add(("number", "string"))
    return theirs == ours or (theirs, ours) in allowed


class Compatibility:
    """Walks n8n's schemas beside ours; ``problems`` collects every difference."""

    def __init__(self, n8n: dict[str, Any], ours: dict[str, Any]) -> None:
        self.n8n = n8n
        self.ours = ours
        self.problems: list[str] = []

    def schema(self, theirs: Any, ours: Any, where: str, *, answer: bool, name: str = "") -> None:
        """``ours`` keeps every property of ``theirs`` with its type (``answer``: a response)."""
        theirs, ours = resolve(self.n8n, theirs), resolve(self.ours, ours)
        if not same_type(theirs.get("type"), ours.get("type"), name):
            self.problems.append(f"{where}: {ours.get('type')} here, {theirs.get('type')} in n8n")
        if answer and ours.get("nullable") and not theirs.get("nullable"):
            self.problems.append(f"{where}: may be null here, never in n8n")
        their_enum, our_enum = set(theirs.get("enum", ())), set(ours.get("enum", ())) - {None}
        if their_enum and answer and not our_enum <= their_enum:
            self.problems.append(f"{where}: answers {our_enum - their_enum} unknown to n8n")
        if their_enum and not answer and not their_enum <= our_enum:
            self.problems.append(f"{where}: refuses n8n's {their_enum - our_enum}")
        for prop, sub in theirs.get("properties", {}).items():
            if prop not in ours.get("properties", {}):
                self.problems.append(f"{where}: property {prop} is missing")
            else:
                self.schema(
                    sub, ours["properties"][prop], f"{where}.{prop}", answer=answer, name=prop
                )
        if "items" in theirs:
            self.schema(theirs["items"], ours.get("items", {}), f"{where}[]", answer=answer)

    def operation(self, theirs: dict[str, Any], ours: dict[str, Any], where: str) -> None:
        """Parameters, request body and responses of one operation."""
        our_params = {
            (p["in"], p["name"]): p
            for p in (resolve(self.ours, p) for p in ours.get("parameters", []))
        }
        for param in (resolve(self.n8n, p) for p in theirs.get("parameters", [])):
            key = (param["in"], param["name"])
            if key not in our_params:
                self.problems.append(f"{where}: parameter {key} is missing")
            else:
                ours_schema = our_params[key]["schema"]
                self.schema(param["schema"], ours_schema, f"{where} {key}", answer=False)
        if "requestBody" in theirs:
            json_body = theirs["requestBody"]["content"]["application/json"]["schema"]
            our_body = ours["requestBody"]["content"]["application/json"]["schema"]
            self.schema(json_body, our_body, f"{where} body", answer=False)
        for code, response in theirs["responses"].items():
            content = resolve(self.n8n, response).get("content", {}).get("application/json")
            if code not in ours["responses"]:
                self.problems.append(f"{where}: answer {code} is not documented")
            elif content is not None:
                our_content = resolve(self.ours, ours["responses"][code])["content"]
                answer = our_content["application/json"]["schema"]
                self.schema(content["schema"], answer, f"{where} {code}", answer=True)


@pytest.fixture
def n8n() -> dict[str, Any]:
    """n8n's executions document, from beside the repository."""
    if not N8N_DOCUMENT.exists():
        pytest.skip("n8n's document ../shared/n8n/executions-openapi.json is not beside the repo")
    document: dict[str, Any] = json.loads(N8N_DOCUMENT.read_text())
    return document


async def test_every_n8n_operation_is_served_compatibly(
    n8n: dict[str, Any], client: httpx.AsyncClient
) -> None:
    ours = (await client.get("/api/v1/openapi.json")).json()
    prefix = n8n["servers"][0]["url"]
    compatibility = Compatibility(n8n, ours)
    checked = 0
    for path, item in n8n["paths"].items():
        for method, theirs in item.items():
            where = f"{method.upper()} {prefix}{path}"
            mine = ours["paths"].get(prefix + path, {}).get(method)
            if mine is None:
                compatibility.problems.append(f"{where} is not documented")
                continue
            compatibility.operation(theirs, mine, where)
            checked += 1
            served = await client.request(method, prefix + path.replace("{id}", "999999"))
            if served.status_code in {404, 405} and "does not exist" not in served.text:
                compatibility.problems.append(f"{where} is not served")
    assert checked == 8
    assert compatibility.problems == []


def test_the_compatibility_check_notices_removed_and_retyped_properties(
    n8n: dict[str, Any],
) -> None:
    execution = n8n["components"]["schemas"]["execution"]
    ours = json.loads(json.dumps(execution))
    del ours["properties"]["retryOf"]
    ours["properties"]["finished"]["type"] = "string"
    ours["properties"]["startedAt"]["nullable"] = True
    ours["properties"]["status"]["enum"].append("sleeping")
    compatibility = Compatibility(n8n, {})
    compatibility.schema(execution, ours, "execution", answer=True)
    assert compatibility.problems == [
        "execution.finished: string here, boolean in n8n",
        "execution: property retryOf is missing",
        "execution.startedAt: may be null here, never in n8n",
        "execution.status: answers {'sleeping'} unknown to n8n",
    ]
