"""What a notification says, per channel kind: an email, a Slack message, a Teams card.

Each is built from the ``approval.requested`` payload the park wrote (``data``) and the
approvers' personal links (``links``, signed when the notification is sent). Buttons open the
approver's own page, where the decision is made (a link is never a decision: bots and
previewers that follow it decide nothing).

Slack: Block Kit (``header``, a ``section`` with the request, then ``actions`` blocks of at most
25 ``url`` buttons: Approve and Reject per approver, each ``action_id`` ``approve:<id>`` or
``reject:<id>``, each ``value`` ``<verdict>:<execution id>:<wait seq>``, which
``POST /slack/interactions`` reads when Slack interactivity is on); texts are cut to Slack's
limits (3000 for a section, 150 for a header, 75 for a button). Teams: an Adaptive Card 1.4
in the Workflows/incoming-webhook envelope, with one ``Action.OpenUrl`` per approver.
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from typing import Any

SECTION_MAX = 3000
HEADER_MAX = 150
BUTTON_MAX = 75
ACTIONS_MAX = 25
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_HEADLINES = {
    "request": ("Approval needed", "Your approval is requested"),
    "reminder": ("Reminder: approval needed", "Reminder: your approval is still requested"),
    "escalation": ("Approval needed (escalated)", "This approval was escalated to you"),
}
"""Per ``data["kind"]`` (older rows lack it: a request), the subject's and the text's lead."""


def _headline(data: dict[str, Any]) -> tuple[str, str]:
    return _HEADLINES.get(data.get("kind", "request"), _HEADLINES["request"])


def _names(data: dict[str, Any]) -> dict[str, str]:
    return {a["id"]: a["name"] or a["id"] for a in data["approvers"]}


def email_message(
    data: dict[str, Any], link: str, to: str, sender: str, approver: str, inbox: str
) -> EmailMessage:
    """One approver's email: a text and an HTML part, both with their personal link and the
    link to their inbox (every request waiting on them)."""
    name = _names(data).get(approver, approver)
    message = EmailMessage()
    subject, lead = _headline(data)
    message["Subject"] = _cut(f"{subject}: {data['title']}", 200)
    message["From"] = sender
    message["To"] = to
    lines = [f"Hello {name},", "", f"{lead}: {data['title']}"]
    if data["description"]:
        lines += ["", data["description"]]
    lines += ["", f"Approve or reject: {link}", "", f"Everything waiting on you: {inbox}", ""]
    message.set_content("\n".join(lines))
    description = f"<p>{html.escape(data['description'])}</p>" if data["description"] else ""
    message.add_alternative(
        f"<html><body><p>Hello {html.escape(name)},</p>"
        f"<p>{lead}: <strong>{html.escape(data['title'])}</strong></p>"
        f"{description}"
        f'<p><a href="{html.escape(link)}">Approve or reject</a></p>'
        f'<p><a href="{html.escape(inbox)}">Everything waiting on you</a></p></body></html>',
        subtype="html",
    )
    return message


def slack_message(data: dict[str, Any], links: dict[str, str]) -> dict[str, Any]:
    """A Block Kit message with the request and url buttons to each approver's page."""
    names = _names(data)
    body = data["description"] or "An approval waits for a decision."
    lead = (
        ""
        if data.get("kind", "request") == "request"
        else f"*{_headline(data)[0]}* ({', '.join(names.get(a, a) for a in links)})\n"
    )
    buttons: list[dict[str, Any]] = []
    for approver, link in links.items():
        for verdict, style in (("approve", "primary"), ("reject", "danger")):
            label = f"{verdict.capitalize()} as {names.get(approver, approver)}"
            buttons.append(
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": _cut(label, BUTTON_MAX)},
                    "style": style,
                    "url": link,
                    "action_id": _cut(f"{verdict}:{approver}", 255),
                    "value": f"{verdict}:{data['executionId']}:{data['seq']}",
                }
            )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(data["title"], HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(lead + body, SECTION_MAX)}},
    ]
    for start in range(0, len(buttons), ACTIONS_MAX):
        blocks.append({"type": "actions", "elements": buttons[start : start + ACTIONS_MAX]})
    text = f"{_headline(data)[0]}: {data['title']}"
    return {"text": _cut(text, SECTION_MAX), "blocks": blocks}


def _lead_block(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A reminder's or escalation's lead, for a card (none for the request)."""
    if data.get("kind", "request") == "request":
        return []
    return [{"type": "TextBlock", "text": _headline(data)[0], "isSubtle": True}]


def teams_message(data: dict[str, Any], links: dict[str, str]) -> dict[str, Any]:
    """An Adaptive Card in the Workflows/incoming-webhook envelope, one button per approver."""
    names = _names(data)
    card = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": data["title"], "weight": "Bolder", "size": "Medium"},
            *_lead_block(data),
            {"type": "TextBlock", "text": data["description"] or " ", "wrap": True},
        ],
        "actions": [
            {"type": "Action.OpenUrl", "title": f"Decide as {names.get(a, a)}", "url": link}
            for a, link in links.items()
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }
