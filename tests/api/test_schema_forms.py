"""Forms from a JSON Schema (issue 14): refused at park unless a form can take the schema, the
page it renders, submissions typed and validated by it (a refusal uses nothing up), and the
same schema validating a resume through the API."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from gateway.domain import FormSpec, WebhookSpec
from persistence.rows import dump_webhook, load_webhook
from tests.conftest import create, get, park

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Trip <script>alert(1)</script>",
    "description": "Tell us about the trip",
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Your name", "minLength": 2, "maxLength": 40},
        "email": {"type": "string", "format": "email", "title": "Email"},
        "day": {"type": "string", "format": "date", "title": "Day"},
        "nights": {"type": "integer", "minimum": 1, "maximum": 14, "title": "Nights"},
        "amount": {"type": "number", "minimum": 0, "title": "Amount", "description": "In EUR"},
        "refundable": {"type": "boolean", "title": "Refundable <b>"},
        "seat": {"enum": ["aisle", "window"], "title": "Seat"},
        "tags": {
            "type": "array",
            "title": "Tags",
            "items": {"enum": ["travel", "food", "hotel"]},
            "uniqueItems": True,
        },
    },
    "required": ["name", "email", "nights"],
}
VALID = {"name": "Ada", "email": "ada@example.com", "nights": "3"}


async def schema_wait(client: httpx.AsyncClient, schema: dict[str, Any] = SCHEMA) -> dict[str, Any]:
    execution = await create(client)
    return await park(client, execution["id"], form={"schema": schema})


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


# Park: only schemas a form can take ------------------------------------------------------

MANY = obj(**{f"p{n}": {"type": "string"} for n in range(51)})


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        pytest.param(
            {"schema": {"type": "string"}}, "form.schema.type must be object", id="not-object"
        ),
        pytest.param({"schema": {"properties": {"a": {}}}}, "type must be object", id="no-type"),
        pytest.param(
            {"schema": obj(name={"type": "string", "pattern": "^a"})},
            "form.schema.properties.name: 'pattern' is not supported",
            id="unsupported-keyword",
        ),
        pytest.param(
            {"schema": {**obj(a={"type": "string"}), "allOf": []}},
            "form.schema: 'allOf' is not supported",
            id="unsupported-top-keyword",
        ),
        pytest.param(
            {"schema": obj(a={"type": "object"})},
            "form.schema.properties.a.type must be one of",
            id="nested-object",
        ),
        pytest.param({"schema": MANY}, "1 to 50 properties", id="too-many-properties"),
        pytest.param({"schema": obj()}, "1 to 50 properties", id="no-properties"),
        pytest.param(
            {"schema": obj(a={"enum": [str(n) for n in range(101)]})},
            "enum must list 1 to 100 values",
            id="enum-too-long",
        ),
        pytest.param(
            {"schema": obj(a={"enum": [{"x": 1}]})}, "enum values must be strings", id="enum-object"
        ),
        pytest.param(
            {"schema": obj(a={"enum": ["x", "x"]})}, "enum values must be distinct", id="enum-twice"
        ),
        pytest.param(
            {"schema": obj(a={"type": "string", "maxLength": 10**6})},
            "maxLength must be an integer from 0 to 10000",
            id="maxLength-unbounded",
        ),
        pytest.param(
            {"schema": obj(a={"type": "string", "format": "uri"})},
            "format must be one of email, date",
            id="format",
        ),
        pytest.param(
            {"schema": obj(a={"type": "array", "items": {"type": "string"}})},
            "items must be an enum",
            id="array-of-text",
        ),
        pytest.param(
            {"schema": obj(a={"type": "string", "title": {"deep": [[[]]]}})},
            "title must be a string",
            id="title-object",
        ),
        pytest.param(
            {"schema": obj(**{"bad name": {"type": "string"}})}, "property name", id="name"
        ),
        pytest.param(
            {"schema": {**obj(a={"type": "string"}), "required": ["a", "a"]}},
            "form.schema['required'] is not valid JSON Schema: ['a', 'a'] has non-unique",
            id="invalid-schema",
        ),
        pytest.param(
            {"schema": obj(a={"type": "array", "items": {"enum": ["x"]}, "uniqueItems": "yes"})},
            "is not valid JSON Schema: 'yes' is not of type 'boolean'",
            id="invalid-schema-nested",
        ),
        pytest.param(
            {"schema": {**obj(a={"type": "string"}), "required": ["b"]}},
            "required names 'b', which is not a property",
            id="required-unknown",
        ),
        pytest.param(
            {
                "schema": {
                    **obj(a={"type": "string"}),
                    "$schema": "http://json-schema.org/draft-07/schema#",
                }
            },
            "$schema must be https://json-schema.org/draft/2020-12/schema",
            id="other-draft",
        ),
        pytest.param(
            {"schema": SCHEMA, "fields": [{"label": "x"}]}, "exactly one", id="fields-and-schema"
        ),
        pytest.param({"title": "t"}, "exactly one", id="neither"),
        pytest.param({"fields": [{"label": "x"}]}, "form.title is required", id="fields-no-title"),
        pytest.param(
            {"schema": "object"}, "got `str` - at `$.form.schema`", id="schema-not-json-object"
        ),
    ],
)
async def test_a_schema_no_form_can_take_is_400(
    client: httpx.AsyncClient, form: dict[str, Any], fragment: str
) -> None:
    execution = await create(client)
    response = await client.post(f"/api/v1/executions/{execution['id']}/wait", json={"form": form})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["message"]
    assert (await get(client, execution["id"]))["status"] == "running"


async def test_a_deeply_nested_schema_is_400(client: httpx.AsyncClient) -> None:
    execution = await create(client)
    deep = '{"type": "string", "title": ' + "[" * 5000 + "]" * 5000 + "}"
    body = '{"form": {"schema": {"type": "object", "properties": {"a": ' + deep + "}}}}"
    response = await client.post(
        f"/api/v1/executions/{execution['id']}/wait",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400


def test_a_stored_form_without_a_schema_is_read_as_before() -> None:
    old = (
        '{"methods": ["POST"], "suffix": "", "responseCode": 200, "responseData": null,'
        ' "responseHeaders": {}, "form": {"title": "t", "description": "", "fields":'
        ' [{"name": "a", "label": "A", "type": "text", "required": false, "options": [],'
        ' "max_bytes": 10}]}}'
    )
    spec = load_webhook(old)
    assert spec is not None
    assert spec.form is not None
    assert spec.form.schema is None
    assert spec.form.fields[0].name == "a"
    again = load_webhook(dump_webhook(spec))
    assert again == spec
    with_schema = load_webhook(dump_webhook(WebhookSpec(form=FormSpec("t", (), "", SCHEMA))))
    assert with_schema is not None
    assert with_schema.form is not None
    assert with_schema.form.schema == SCHEMA
    assert list(with_schema.form.schema["properties"]) == list(SCHEMA["properties"])


# The page ---------------------------------------------------------------------------------


def tag(page: str, name: str) -> str:
    """The opening tag of the element with ``id=name``."""
    found = re.search(rf'<(input|select|fieldset)[^>]*\bid="{name}"[^>]*>', page, re.S)
    assert found is not None, name
    return " ".join(found.group(0).split())


async def test_the_page_renders_the_schema(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await schema_wait(client)
    page = await anon.get(wait["resumeFormUrl"])
    assert page.status_code == 200
    text = page.text
    assert "<script>alert" not in text
    assert "Trip &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Tell us about the trip" in text
    assert "Refundable &lt;b&gt;" in text
    assert 'type="email"' in tag(text, "email")
    assert 'type="date"' in tag(text, "day")
    nights = tag(text, "nights")
    assert all(a in nights for a in ('type="number"', 'min="1"', 'max="14"', 'step="1"'))
    assert "required" in nights
    assert 'step="any"' in tag(text, "amount")
    assert 'aria-describedby="amount-hint"' in tag(text, "amount")
    assert '<p class="hint" id="amount-hint">In EUR</p>' in text
    name = tag(text, "name")
    assert 'minlength="2"' in name
    assert 'maxlength="40"' in name
    assert 'type="checkbox"' in tag(text, "refundable")
    assert '<option value="aisle"' in text
    assert '<option value="window"' in text
    assert "<legend>Tags</legend>" in text
    for n, option in enumerate(["travel", "food", "hotel"]):
        assert f'id="tags-{n}" name="tags" value="{option}"' in " ".join(text.split())
        assert f'<label for="tags-{n}">{option}</label>' in text
    labels = re.findall(r'<label for="(\w+)">([^<]*)(<span class="req">\*</span>)?', text)
    required = {for_ for for_, _, star in labels if star}
    assert required == {"name", "email", "nights"}
    order = [m for m in re.findall(r'\bid="(\w+)"', text) if m in SCHEMA["properties"]]
    assert order == list(SCHEMA["properties"])


# Submissions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "field", "message"),
    [
        ({**VALID, "nights": "many"}, "nights", "Enter a whole number."),
        ({**VALID, "nights": "2.5"}, "nights", "Enter a whole number."),
        ({**VALID, "nights": "15"}, "nights", "Enter a number of at most 14."),
        ({**VALID, "nights": "0"}, "nights", "Enter a number of at least 1."),
        ({**VALID, "amount": "lots"}, "amount", "Enter a number."),
        ({**VALID, "amount": "nan"}, "amount", "Enter a number."),
        ({**VALID, "amount": "-0.5"}, "amount", "Enter a number of at least 0."),
        ({**VALID, "email": "ada@nowhere"}, "email", "Enter an email address."),
        ({**VALID, "day": "2026-02-30"}, "day", "Enter a date as YYYY-MM-DD."),
        ({**VALID, "day": "01/12/2026"}, "day", "Enter a date as YYYY-MM-DD."),
        ({**VALID, "name": "A"}, "name", "Enter at least 2 characters."),
        ({**VALID, "name": "A" * 41}, "name", "Enter at most 40 characters."),
        ({**VALID, "name": "  "}, "name", "This field is required."),
        ({"email": "ada@example.com", "nights": "2"}, "name", "This field is required."),
        ({**VALID, "seat": "middle"}, "seat", "Choose one of the options."),
    ],
)
async def test_a_wrong_value_shows_the_form_again_and_uses_nothing_up(
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    sent: dict[str, str],
    field: str,
    message: str,
) -> None:
    wait = await schema_wait(client)
    refused = await anon.post(wait["resumeFormUrl"], data=sent)
    assert refused.status_code == 400
    text = refused.text
    assert f'<p class="error" id="{field}-error">{html.escape(message, quote=False)}</p>' in text
    label = SCHEMA["properties"][field]["title"]
    assert f'<a href="#{field}">{label}: {message}</a>' in text  # the summary names the field
    assert 'aria-invalid="true"' in tag(text, field)
    assert f"{field}-error" in tag(text, field)
    if field != "name":
        assert 'value="Ada"' in text  # what was typed is kept
    assert (await get(client, wait["id"]))["status"] == "waiting"


async def test_every_problem_is_shown_at_once(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await schema_wait(client)
    refused = await anon.post(wait["resumeFormUrl"], data={"email": "x", "nights": "99"})
    assert refused.status_code == 400
    for field in ("name", "email", "nights"):
        assert f'id="{field}-error"' in refused.text
    assert (await get(client, wait["id"]))["status"] == "waiting"


async def test_a_valid_submission_resumes_once_with_typed_values(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await schema_wait(client)
    url = wait["resumeFormUrl"]
    sent = {
        **VALID,
        "day": "2026-12-01",
        "amount": "12.5",
        "refundable": "on",
        "seat": "window",
        "tags": ["travel", "hotel"],
    }
    done = await anon.post(url, data=sent)
    assert done.status_code == 200, done.text
    assert "Thank you" in done.text
    waits = (await get(client, wait["id"], includeData="true"))["data"]["waits"]
    assert waits[0]["resumedBy"] == "form"
    assert waits[0]["payload"]["formData"] == {
        "name": "Ada",
        "email": "ada@example.com",
        "day": "2026-12-01",
        "nights": 3,
        "amount": 12.5,
        "refundable": True,
        "seat": "window",
        "tags": ["travel", "hotel"],
    }
    again = await anon.post(url, data=sent)
    assert again.status_code == 409
    assert "already submitted" in again.text
    after = await get(client, wait["id"], includeData="true")
    assert [w["resumedBy"] for w in after["data"]["waits"]] == ["form"]


async def test_empty_optional_fields_are_left_out_and_an_unticked_box_is_false(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await schema_wait(client)
    done = await anon.post(wait["resumeFormUrl"], data={**VALID, "nights": "3.0", "amount": ""})
    assert done.status_code == 200, done.text
    data = (await get(client, wait["id"], includeData="true"))["data"]["waits"][0]["payload"]
    assert data["formData"] == {**VALID, "nights": 3, "refundable": False}


@pytest.mark.parametrize(
    ("ticked", "message"),
    [
        (["travel", "spa"], "Choose one of the options."),
        (["food", "food"], "Choose each option only once."),
        ([], "This field is required."),
    ],
)
async def test_a_multi_select_takes_only_its_options(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, ticked: list[str], message: str
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"enum": ["travel", "food"]},
                "uniqueItems": True,
                "maxItems": 1,
            },
            "more": {"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 2},
        },
        "required": ["tags"],
    }
    wait = await schema_wait(client, schema)
    refused = await anon.post(wait["resumeFormUrl"], data={"tags": ticked})
    assert refused.status_code == 400
    assert message in refused.text
    for kept in (t for t in ticked if t != "spa"):
        assert re.search(rf'value="{kept}"\s+checked', refused.text)
    assert (await get(client, wait["id"]))["status"] == "waiting"
    too_many = await anon.post(wait["resumeFormUrl"], data={"tags": ["food", "travel"]})
    assert "Choose at most 1 option." in too_many.text
    too_few = await anon.post(wait["resumeFormUrl"], data={"tags": ["food"], "more": "x"})
    assert "Choose at least 2 options." in too_few.text
    done = await anon.post(wait["resumeFormUrl"], data={"tags": ["food"]})
    assert done.status_code == 200
    data = (await get(client, wait["id"], includeData="true"))["data"]["waits"][0]["payload"]
    assert data["formData"] == {"tags": ["food"]}  # nothing ticked: left out


async def test_number_enums_come_back_as_numbers(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    schema = obj(
        size={"type": "integer", "enum": [1, 2, 3]},
        rates={"type": "array", "items": {"type": "number", "enum": [0.5, 1.5]}},
    )
    wait = await schema_wait(client, schema)
    done = await anon.post(wait["resumeFormUrl"], data={"size": "2", "rates": ["1.5", "0.5"]})
    assert done.status_code == 200, done.text
    data = (await get(client, wait["id"], includeData="true"))["data"]["waits"][0]["payload"]
    assert data["formData"] == {"size": 2, "rates": [1.5, 0.5]}


# The form's limits ------------------------------------------------------------------------


async def test_more_parts_than_a_schema_form_can_have_is_400(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await schema_wait(client, obj(a={"type": "string"}, b={"enum": ["x", "y"]}))
    many = await anon.post(wait["resumeFormUrl"], data={"a": "1", "b": "x", "c": ["1", "2", "3"]})
    assert many.status_code == 400
    assert "Too many fields" in many.json()["message"]
    upload = await anon.post(wait["resumeFormUrl"], files={"a": ("a.txt", b"x", "text/plain")})
    assert upload.status_code == 400
    assert "Too many files" in upload.json()["message"]
    assert (await get(client, wait["id"]))["status"] == "waiting"


async def test_a_schema_form_body_past_its_own_limit_is_413(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await schema_wait(client, obj(tags={"type": "array", "items": {"enum": ["x"]}}))
    # one tiny checkbox: the form's limit is a few KiB, far below the 64 KiB body limit
    refused = await anon.post(wait["resumeFormUrl"], data={"tags": "x" * 20_000})
    assert refused.status_code == 413
    assert (await get(client, wait["id"]))["status"] == "waiting"


# The API resume ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        (
            {"name": "Ada", "email": "ada@example.com", "nights": 20},
            [{"field": "nights", "message": "Enter a number of at most 14."}],
        ),
        (
            {"name": "Ada", "email": "ada@example.com", "nights": "3"},
            [{"field": "nights", "message": "Enter a whole number."}],
        ),
        (
            {"email": "ada@example.com", "nights": 3, "tags": ["spa"]},
            [
                {"field": "tags", "message": "Choose one of the options."},
                {"field": "name", "message": "This field is required."},
            ],
        ),
        (None, [{"field": "", "message": "Send a JSON object."}]),
        ([1, 2], [{"field": "", "message": "Send a JSON object."}]),
    ],
)
async def test_an_api_resume_must_match_the_schema(
    client: httpx.AsyncClient, data: Any, problems: list[dict[str, str]]
) -> None:
    wait = await schema_wait(client)
    url = f"/api/v1/executions/{wait['id']}/resume"
    refused = await client.post(url, json={"data": data})
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert sorted(body["errors"], key=str) == sorted(problems, key=str)
    assert body["message"].startswith("data does not match the form's schema: ")
    assert (await get(client, wait["id"]))["status"] == "waiting"


async def test_an_api_resume_that_matches_the_schema_resumes_with_form_data(
    client: httpx.AsyncClient,
) -> None:
    wait = await schema_wait(client)
    data = {"name": "Ada", "email": "ada@example.com", "nights": 3, "tags": ["food"]}
    done = await client.post(f"/api/v1/executions/{wait['id']}/resume", json={"data": data})
    assert done.status_code == 200, done.text
    waits = (await get(client, wait["id"], includeData="true"))["data"]["waits"]
    assert waits[0]["resumedBy"] == "api"
    assert waits[0]["payload"] == {"formData": data, "resumedBy": "api"}
    again = await client.post(f"/api/v1/executions/{wait['id']}/resume", json={"data": data})
    assert again.status_code == 409


async def test_the_schema_binds_only_its_own_wait(client: httpx.AsyncClient) -> None:
    wait = await schema_wait(client)
    eid = wait["id"]
    good = {"name": "Ada", "email": "ada@example.com", "nights": 3}
    assert (await client.post(f"/api/v1/executions/{eid}/resume", json={"data": good})).is_success
    await park(client, eid, webhook={})
    anything = await client.post(f"/api/v1/executions/{eid}/resume", json={"data": [1]})
    assert anything.status_code == 200
    waits = (await get(client, eid, includeData="true"))["data"]["waits"]
    assert waits[1]["payload"] == {"body": [1], "resumedBy": "api"}


async def test_costly_api_data_is_refused_cheaply(client: httpx.AsyncClient) -> None:
    wait = await schema_wait(client)
    url = f"/api/v1/executions/{wait['id']}/resume"
    many = {**VALID, "nights": 3, "tags": [[n] for n in range(5_000)]}
    refused = await client.post(url, json={"data": many})  # no pairwise uniqueItems check
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"field": "tags", "message": "Choose at most 100 options."}]
    backtracking = {**VALID, "nights": 3, "email": "a@" + "." * 30_000 + " "}
    refused = await client.post(url, json={"data": backtracking})  # bounded before the pattern
    assert refused.json()["errors"] == [{"field": "email", "message": "Enter an email address."}]
    assert (await get(client, wait["id"]))["status"] == "waiting"
