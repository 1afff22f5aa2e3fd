"""The bot-safe GET: a browser opening a POST-only resume URL sees a confirmation page.

Link scanners and chat previews fetch every URL they see with GET; a wait that accepts only
POST is never resumed by them. A person who opens the link gets a page whose button POSTs.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.answers import CONFIRM_KIND, CONFIRM_POLICY
from gateway.domain import StoredAnswer, WebhookSpec
from gateway.pages import HEADERS as PAGE_HEADERS
from gateway.pages import own_action, templates

HEADERS = {
    "content-type": "text/html; charset=utf-8",
    **PAGE_HEADERS,
    "content-security-policy": CONFIRM_POLICY,
}


def wants_confirmation(method: str, accept: str, spec: WebhookSpec | None) -> bool:
    """Whether a call is a browser's GET on a wait that resumes on POST only."""
    return (
        method == "GET"
        and spec is not None
        and "POST" in spec.methods
        and "GET" not in spec.methods
        and "text/html" in accept
    )


def confirmation_page(request: Request) -> StoredAnswer:
    """The page whose button POSTs to the URL the browser opened."""
    page = templates.get_template("confirm.html").render(action=own_action(request))
    return StoredAnswer(200, dict(HEADERS), page.encode(), CONFIRM_KIND)
