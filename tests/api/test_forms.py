"""Form waits: the form, field checks that use nothing up, files, and exactly one submission."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.conftest import create, get, park

FIELDS: list[dict[str, Any]] = [
    {"label": "Your name", "name": "name", "required": True},
    {"label": "Email", "name": "email", "type": "email", "required": True},
    {"label": "Seats", "name": "seats", "type": "number"},
    {"label": "Start", "name": "start", "type": "date"},
    {"label": "Plan", "name": "plan", "type": "dropdown", "options": ["basic", "pro"]},
    {"label": "Notes", "name": "notes", "type": "textarea"},
    {"label": "I agree", "name": "agree", "type": "checkbox", "required": True},
    {"label": "Contract", "name": "contract", "type": "file", "maxBytes": 64},
]


async def form_wait(client: httpx.AsyncClient) -> dict[str, Any]:
    execution = await create(client)
    return await park(
        client,
        execution["id"],
        form={"title": "Sign up", "description": "Tell us <who> you are", "fields": FIELDS},
    )


async def test_a_valid_submission_resumes_with_the_values_and_the_file(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await form_wait(client)
    url = wait["resumeFormUrl"]
    assert url.startswith(f"http://127.0.0.1:5678/form-waiting/{wait['id']}?signature=")
    page = await anon.get(url)
    assert page.status_code == 200
    assert "Tell us &lt;who&gt; you are" in page.text
    for field in FIELDS:
        assert f'name="{field["name"]}"' in page.text
    sent = await anon.post(
        url,
        data={
            "name": "Ada",
            "email": "ada@example.com",
            "seats": "3",
            "start": "2026-12-01",
            "plan": "pro",
            "notes": "hi",
            "agree": "on",
        },
        files={"contract": ("c.pdf", b"%PDF-1.4 tiny", "application/pdf")},
    )
    assert sent.status_code == 200, sent.text
    assert "Thank you" in sent.text
    resumed = (await get(client, wait["id"], includeData="true"))["data"]["waits"][0]
    assert resumed["resumedBy"] == "form"
    data = resumed["payload"]["formData"]
    assert {k: data[k] for k in ("name", "email", "seats", "start", "plan", "agree")} == {
        "name": "Ada",
        "email": "ada@example.com",
        "seats": 3,
        "start": "2026-12-01",
        "plan": "pro",
        "agree": True,
    }
    assert data["contract"]["fileName"] == "c.pdf"
    assert data["contract"]["mimeType"] == "application/pdf"
    assert base64.b64decode(data["contract"]["data"]) == b"%PDF-1.4 tiny"
    again = await anon.get(url)
    assert again.status_code == 409
    assert "already submitted" in again.text


async def test_invalid_fields_show_the_form_again_and_use_nothing_up(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await form_wait(client)
    url = wait["resumeFormUrl"]
    refused = await anon.post(
        url,
        data={"name": "", "email": "nope", "seats": "many", "start": "01/12/2026", "plan": "gold"},
        files={"contract": ("big.bin", b"x" * 65, "application/octet-stream")},
    )
    assert refused.status_code == 400
    for message in (
        "This field is required.",
        "Enter an email address.",
        "Enter a number.",
        "Enter a date as YYYY-MM-DD.",
        "Choose one of the options.",
        "Tick this box to continue.",
        "The file is larger than 64 bytes.",
    ):
        assert message in refused.text
    assert 'value="nope"' in refused.text  # what was typed is kept
    assert (await get(client, wait["id"]))["status"] == "waiting"


async def test_the_form_url_is_its_own_signature(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    wait = await form_wait(client)
    resume_token = wait["resumeUrl"].split("signature=")[1]
    assert (
        await anon.get(f"/form-waiting/{wait['id']}?signature={resume_token}")
    ).status_code == 401
    assert (await anon.get("/form-waiting/x?signature=1.a")).status_code == 401


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"title": "t", "fields": []}, "1 to 50 fields"),
        ({"title": "t", "fields": [{"label": "x", "type": "color"}]}, ".type must be one of"),
        ({"title": "t", "fields": [{"label": "x", "type": "dropdown"}]}, ".options must list"),
        (
            {"title": "t", "fields": [{"label": "x", "name": "a"}, {"label": "y", "name": "a"}]},
            "distinct",
        ),
        ({"title": "t", "fields": [{"label": "x", "name": "bad name"}]}, ".name may only"),
    ],
)
async def test_bad_form_definitions_are_400(
    client: httpx.AsyncClient, form: dict[str, Any], fragment: str
) -> None:
    execution = await create(client)
    response = await client.post(f"/api/v1/executions/{execution['id']}/wait", json={"form": form})
    assert response.status_code == 400
    assert fragment in response.json()["message"]
