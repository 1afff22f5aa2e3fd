"""The bot-safe GET: a browser opening a POST-only resume URL sees a confirmation page.

Link scanners and chat previews fetch every URL they see with GET; a wait that accepts only
POST is never resumed by them. A person who opens the link gets a page whose button POSTs.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import Request

from gateway.answers import ANSWER_POLICY, CONFIRM_KIND, CONFIRM_POLICY
from gateway.domain import StoredAnswer, WebhookSpec
from gateway.pages import HEADERS as PAGE_HEADERS
from gateway.pages import own_action, render

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
    page = render("confirm.html", action=own_action(request))
    return StoredAnswer(200, dict(HEADERS), page.encode(), CONFIRM_KIND)


CONFIRMED_FIELD = "confirmed"
"""The hidden field the confirmation page's form sends: its POST gets a "Done" page."""
DONE = "Done. The workflow goes on; you can close this page."


def is_browser(headers: Headers) -> bool:
    """Whether the caller asks for a page a person reads (``Accept: text/html``)."""
    return "text/html" in headers.get("accept", "")


def from_confirmation(headers: Headers, body: bytes) -> bool:
    """Whether a call is the confirmation page's own POST (a browser sending its field)."""
    form = headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    if not (form and is_browser(headers)):
        return False
    fields = parse_qs(body.decode("latin-1"), max_num_fields=20)
    return fields.get(CONFIRMED_FIELD) == ["true"]


def notice_page(status: int, title: str, message: str) -> StoredAnswer:
    """A page in words (done, used, expired, canceled) for a browser on a resume URL."""
    html = render("notice.html", title=title, message=message)
    headers = {**HEADERS, "content-security-policy": ANSWER_POLICY}
    return StoredAnswer(status, headers, html.encode(), CONFIRM_KIND)
