"""What the server-rendered pages share: templates, headers, and the signed wait they name."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from gateway import metrics
from gateway.caller_auth import checker
from gateway.domain import Execution, Refusal, Wait
from gateway.services import Services, services
from gateway.signing import Action

templates = Environment(
    loader=PackageLoader("gateway", "templates"), autoescape=select_autoescape(["html"])
)
HEADERS = {
    "cache-control": "no-store",
    "x-robots-tag": "noindex",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A template rendered as an HTML answer that is never cached or indexed."""
    html = templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


async def signed_wait(
    request: Request, action: Action
) -> tuple[Services, Execution, Wait] | bool | None:
    """The execution and wait a signed page URL (``/…/{id}?signature=…``) names.

    ``False`` when the signature is not valid for ``action``; ``None`` when it is, but the
    execution or the wait no longer exists.
    """
    svc = services(request)
    raw: str = request.path_params["id"]
    token = request.query_params.get("signature", "")
    signed = None
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        signed = svc.signer.verify(int(raw), token, "", action)
    if signed is None:
        metrics.SIGNATURE_FAILURES.inc()
        return False
    execution = await svc.store.get_execution(signed.execution_id, with_waits=True)
    if execution is None:
        return None
    wait = next((w for w in execution.waits if w.seq == signed.wait_seq), None)
    return None if wait is None else (svc, execution, wait)


def own_action(request: Request) -> str:
    """A form ``action`` that posts back to the page's own URL: relative (query only), so the
    scheme, host and path prefix the browser used (a TLS proxy's ``https://``) are kept."""
    return "?" + request.url.query


def caller_refusal(request: Request, svc: Services, wait: Wait) -> Refusal | None:
    """The wait's caller checks (``allowedIps``, Basic, ``ignoreBots``) on a page request; the
    same checks as its resume URL, so a page shows and decides nothing for a caller they refuse.
    Header and HMAC authentication cannot come from a browser and are refused at park."""
    if wait.webhook is None:
        return None
    moment = svc.clock.now_ms() / 1000
    return checker(request.headers, b"", svc.limits.client_ip(request), moment)(wait.webhook)
