"""Form waits: ``/form-waiting/{id}?signature=…`` (n8n's "On form submitted").

The page shows the wait's fields, or those its JSON Schema describes; a submission is checked
field by field (a bad one shows the form again with its errors, nothing used up) and resumes
the wait with the values — files as binary data (base64, mime type, name, size) within each
field's ``maxBytes``; a schema form's values typed as its schema says and validated by it. The
body is counted as it streams against the form's own limit, and the wait's caller checks apply.
"""

from __future__ import annotations

import base64
from datetime import date
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import executions
from gateway.domain import Execution, FormField, FormSpec, ResumedBy, Status, Wait
from gateway.ended import ended_in_words
from gateway.form_schema import (
    MAX_TEXT,
    SchemaField,
    is_email,
    refusal,
    schema_fields,
    typed_values,
)
from gateway.http import capped
from gateway.pages import deadline, own_action, page, signed_wait
from gateway.signed import caller_refusal
from gateway.signing import Action

TEXT_BYTES = 4 * MAX_TEXT  # MAX_TEXT characters of UTF-8
PART_BYTES = 1024  # a multipart part's boundary and headers
CLOSED = "This form was already submitted or has closed."

SUBMITTED = "This form was already submitted."


def _closed(execution: Execution, wait: Wait) -> str:
    """Why the form takes no answer: submitted, expired, canceled (never "submitted" when
    nobody submitted it)."""
    if wait.resumed_by is ResumedBy.FORM:
        return SUBMITTED
    return ended_in_words(execution, wait) or CLOSED


def _fields(spec: FormSpec) -> tuple[FormField, ...] | tuple[SchemaField, ...]:
    """The fields the page shows: the form's own, or those of its schema."""
    return spec.fields if spec.schema is None else schema_fields(spec.schema)


def _page(status: int, spec: FormSpec | None, state: str, **extra: Any) -> Response:
    return page(
        "form.html",
        status,
        title=spec.title if spec else "Form",
        description=spec.description if spec else "",
        fields=_fields(spec) if spec else (),
        state=state,
        values=extra.pop("values", {}),
        ticked=extra.pop("ticked", {}),
        errors=extra.pop("errors", {}),
        **extra,
    )


def _check(field: FormField, raw: Any) -> tuple[Any, str | None]:
    """The value of one field, or why it is refused."""
    if field.type == "checkbox":
        if field.required and raw is None:
            return False, "Tick this box to continue."
        return raw is not None, None
    if field.type == "file":
        if not isinstance(raw, UploadFile) or not raw.filename:
            return None, "Choose a file." if field.required else None
        return raw, None
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return None, "This field is required." if field.required else None
    if len(text) > MAX_TEXT:
        return None, f"At most {MAX_TEXT} characters."
    return _typed(field, text)


def _typed(field: FormField, text: str) -> tuple[Any, str | None]:
    """A non-empty text value checked against its field's type."""
    if field.type == "number":
        try:
            return float(text) if "." in text or "e" in text.lower() else int(text), None
        except ValueError:
            return None, "Enter a number."
    if field.type == "email" and not is_email(text):
        return None, "Enter an email address."
    if field.type == "date":
        try:
            return date.fromisoformat(text).isoformat(), None
        except ValueError:
            return None, "Enter a date as YYYY-MM-DD."
    if field.type == "dropdown" and text not in field.options:
        return None, "Choose one of the options."
    return text, None


async def _binary(upload: UploadFile, limit: int) -> tuple[dict[str, Any] | None, str | None]:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        return None, f"The file is larger than {limit} bytes."
    return {
        "fileName": upload.filename,
        "mimeType": upload.content_type or "application/octet-stream",
        "fileSize": len(data),
        "data": base64.b64encode(data).decode("ascii"),
    }, None


async def _values(form: FormData, spec: FormSpec) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in spec.fields:
        value, error = _check(field, form.get(field.name))
        if error is None and isinstance(value, UploadFile):
            value, error = await _binary(value, field.max_bytes)
        if error is not None:
            errors[field.name] = error
        else:
            values[field.name] = value
    return values, errors


async def _schema_values(form: FormData, spec: FormSpec) -> tuple[dict[str, Any], dict[str, str]]:
    """A schema form's values, typed, and the first problem of each field its schema finds."""
    assert spec.schema is not None
    values = typed_values(
        schema_fields(spec.schema),
        lambda name: [v for v in form.getlist(name) if isinstance(v, str)],
    )
    refused = refusal(spec.schema, values)
    errors: dict[str, str] = {}
    for problem in () if refused is None else refused.problems:
        errors.setdefault(problem.field, problem.message)
    return values, errors


def _parts(spec: FormSpec) -> list[int]:
    """The bytes of each part a submission may have: a file field's ``maxBytes``, a text's
    characters, or one ticked choice of a schema form's checkboxes."""
    if spec.schema is None:
        return [f.max_bytes if f.type == "file" else TEXT_BYTES for f in spec.fields]
    return [
        len(text.encode()) if f.type == "checkboxes" else TEXT_BYTES
        for f in schema_fields(spec.schema)
        for text in (f.options if f.type == "checkboxes" else ("",))
    ]


def body_limit(spec: FormSpec, ceiling: int) -> int:
    """The most a submission of this form can need, never more than ``ceiling``: each part's
    bytes, boundary and headers."""
    parts = _parts(spec)
    return min(sum(parts) + PART_BYTES * (len(parts) + 1), ceiling)


async def _submitted(request: Request, spec: FormSpec, ceiling: int) -> FormData:
    """The submitted form, read with a running total capped at the form's own limit (413 as
    soon as it is passed, chunked or not) and no more parts than the form can have (400)."""
    return await capped(request, body_limit(spec, ceiling)).form(
        max_files=sum(f.type == "file" for f in spec.fields),
        max_fields=len(_parts(spec)),
        max_part_size=TEXT_BYTES,
    )


async def form_page(request: Request) -> Response:
    """``GET|POST /form-waiting/{id}``: the form, and its submission."""
    found = await signed_wait(request, Action.FORM)
    if found is False:
        return _page(401, None, "done", message="This link is not valid.")
    spec = None
    if isinstance(found, tuple):
        webhook = found[2].webhook
        spec = None if webhook is None else webhook.form
    if not isinstance(found, tuple) or spec is None:
        return _page(404, None, "done", message="There is no form here.")
    svc, execution, wait = found
    refused = caller_refusal(request, svc, wait)
    if refused is not None:
        shown = _page(refused.status, None, "done", message=refused.message)
        shown.headers.update(refused.headers)
        return shown
    ended = wait.resumed_at is not None or execution.wait_seq != wait.seq
    if ended or execution.status is not Status.WAITING:
        return _page(409, spec, "done", message=_closed(execution, wait))
    if request.method == "GET":
        return _page(200, spec, "ask", action=own_action(request), **deadline(svc, wait))
    form = await _submitted(request, spec, svc.settings.max_body_bytes)
    typed = {k: v for k, v in form.multi_items() if isinstance(v, str)}  # to show again
    ticked = {k: form.getlist(k) for k in form}
    try:
        read = _values if spec.schema is None else _schema_values
        values, errors = await read(form, spec)
    finally:
        await form.close()
    if errors:
        again = {"values": typed, "ticked": ticked, "errors": errors}
        return _page(400, spec, "ask", action=own_action(request), **again, **deadline(svc, wait))
    if not await executions.submit_form(svc, execution.id, wait.seq, values):
        return _page(409, spec, "done", message=CLOSED)
    return _page(200, spec, "done", message="Thank you. Your answer was received.")


routes = [Route("/form-waiting/{id}", form_page, methods=["GET", "POST"])]
