"""What the server-rendered pages share: templates, headers, and the signed wait they name."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from gateway.domain import Execution, Wait, format_instant
from gateway.http import ApiError
from gateway.relative import when
from gateway.services import Services, services
from gateway.signed import REFUSED_MESSAGE, audit_attempt, check_signature, issued_for
from gateway.signing import Action

if TYPE_CHECKING:
    from jinja2 import Environment

HEADERS = {
    "cache-control": "no-store",
    "x-robots-tag": "noindex",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}


@functools.cache
def templates() -> Environment:
    """The pages' templates (``gateway/templates``). Jinja2 is imported at the first page: a
    gateway that only parks and resumes never loads it (a few MB resident)."""
    from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: PLC0415

    environment = Environment(
        loader=PackageLoader("gateway", "templates"), autoescape=select_autoescape(["html"])
    )
    environment.filters["when"] = when
    return environment


def render(template: str, **context: Any) -> str:
    """A template rendered to text."""
    return templates().get_template(template).render(**context)


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A template rendered as an HTML answer that is never cached or indexed."""
    return HTMLResponse(render(template, **context), status_code=status_code, headers=HEADERS)


async def signed_wait(
    request: Request, action: Action, suffix: str = ""
) -> tuple[Services, Execution, Wait] | bool | None:
    """The execution and wait a signed page URL (``/…/{id}?signature=…``) names.

    ``False`` when the signature is not valid for ``action`` (counted and audited as the
    webhook's are, see ``gateway.signed``), or was made for an execution with this id in
    another database; ``None`` when it is valid, but the execution or the wait no longer
    exists. Past the failed-signature limits, a 429 ``ApiError``. ``suffix`` is what the
    token was signed over besides the wait (an approver's id for a personal approval page).
    """
    svc = services(request)
    try:
        signed = check_signature(svc, request, request.path_params["id"], suffix, action)
    except ApiError as exc:
        if exc.status == 401:
            return False
        raise
    execution = await svc.store.get_execution(signed.execution_id, with_waits=True)
    if execution is None:
        return None
    if not issued_for(execution, signed.nonce):
        audit_attempt(svc, request, execution.id, signed.wait_seq, 401, REFUSED_MESSAGE)
        return False
    wait = next((w for w in execution.waits if w.seq == signed.wait_seq), None)
    return None if wait is None else (svc, execution, wait)


def own_action(request: Request) -> str:
    """A form ``action`` that posts back to the page's own URL: relative (query only), so the
    scheme, host and path prefix the browser used (a TLS proxy's ``https://``) are kept."""
    return "?" + request.url.query


def deadline(svc: Services, wait: Wait) -> dict[str, Any]:
    """What a page that asks for an answer shows of the wait's deadline (``page.html``)."""
    if wait.wait_till is None:
        return {}
    return {"deadline": format_instant(wait.wait_till), "now": svc.clock.now_ms()}
