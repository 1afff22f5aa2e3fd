"""``POST /slack/interactions``: decisions made with the buttons of a Slack channel's message.

Slack posts ``payload=<json>`` (``block_actions``) to the app's interactivity Request URL,
signed with the app's signing secret (``WAITGATE_SLACK_SIGNING_SECRET``; ``v0``, 5-minute
tolerance, ``gateway.event_verify.check_slack``). The button's ``value`` names the verdict, the
execution and the wait (``approve:<id>:<seq>``); the Slack user who pressed it must be one of
the wait's approvers (``approvers[].slack``). The decision is recorded like any other
(``executions.decide_current``, ``via: slack``), and the message is updated through the
payload's ``response_url`` (an allowed origin, like every target): replaced when the approval
ended, otherwise an ephemeral note to the approver.

Every refusal is a 4xx JSON naming the problem; nothing is written unless the decision is.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qs

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import executions, metrics
from gateway.approvals import Decided
from gateway.domain import Unchanged
from gateway.errors import InvalidInput
from gateway.event_verify import SlackVerify, check_slack
from gateway.http import ApiError, JSONResponse, client_address, read_body
from gateway.services import Services, services

log = logging.getLogger("waitgate.slack")
MAX_INTERACTION_BYTES = 64 * 1024
VALUE = re.compile(r"(approve|reject):([0-9]{1,18}):([0-9]{1,9})")
RESPONSE_SECONDS = 5.0


class _User(msgspec.Struct):
    id: str


class _Action(msgspec.Struct):
    value: str = ""


class _Interaction(msgspec.Struct):
    type: str
    user: _User
    actions: list[_Action] = []
    response_url: str | None = None


def _interaction(body: bytes) -> _Interaction:
    """The ``payload`` form field, decoded; a 400 naming the problem otherwise."""
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    raw = fields.get("payload")
    if not raw:
        raise ApiError(400, "The request has no payload field.")
    try:
        return msgspec.json.decode(raw[0], type=_Interaction)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"The payload is not a Slack interaction: {exc}") from None


async def _approver(svc: Services, eid: int, seq: int, user: str) -> str:
    """The approver of wait ``seq`` whose Slack id is ``user``; 409 or 403 otherwise."""
    execution = await svc.store.get_execution(eid, with_waits=True)
    wait = None if execution is None else execution.current_wait
    approval = None if wait is None or wait.webhook is None else wait.webhook.approval
    if wait is None or wait.seq != seq or approval is None:
        raise ApiError(409, "This approval is no longer open.")
    found = [a.id for a in approval.approvers if a.slack and a.slack == user]
    if not found:
        raise ApiError(403, "Your Slack user is not one of the approvers of this approval.")
    return found[0]


async def _update(svc: Services, url: str | None, message: dict[str, Any]) -> None:
    """Update the Slack message through ``response_url`` (best effort: the decision stands)."""
    notifier = svc.dispatcher.notifier
    if url is None or notifier is None:
        return
    error = await notifier.respond(url, message, RESPONSE_SECONDS)
    if error is not None:
        log.warning("slack update failed", extra={"action": "slack.update_failed", "error": error})


async def interactions(request: Request) -> Response:
    """``POST /slack/interactions``."""
    svc = services(request)
    secret = svc.settings.slack_signing_secret
    if secret is None:
        raise ApiError(
            404, "Slack interactions are not configured (WAITGATE_SLACK_SIGNING_SECRET)."
        )
    body = await read_body(request, MAX_INTERACTION_BYTES)
    verify = SlackVerify(signing_secret=secret.reveal())
    refusal = check_slack(verify, request.headers, body, svc.clock.now_ms() / 1000)
    if refusal is not None:
        metrics.SIGNATURE_FAILURES.inc()
        svc.limits.verification_failed(client_address(request))
        raise ApiError(401, "The Slack signature is missing, wrong or stale.")
    interaction = _interaction(body)
    if interaction.type != "block_actions" or len(interaction.actions) != 1:
        raise ApiError(400, "Only one block_actions button press is understood.")
    matched = VALUE.fullmatch(interaction.actions[0].value)
    if matched is None:
        raise ApiError(400, "The button's value is not verdict:execution:seq.")
    verdict, eid, seq = matched[1], int(matched[2]), int(matched[3])
    approver = await _approver(svc, eid, seq, interaction.user.id)
    try:
        outcome = await executions.decide_current(
            svc, None, eid, approver, verdict, (), "", via="slack"
        )
    except InvalidInput as exc:
        raise ApiError(400, str(exc)) from None
    if isinstance(outcome, Unchanged):
        raise ApiError(409, "This approval is no longer open.")
    assert isinstance(outcome, Decided)
    if outcome.duplicate:
        text = f"{approver} had decided already."
    else:
        text = f"{approver} chose {verdict}."
    if outcome.ended is not None:
        message: dict[str, Any] = {
            "replace_original": True,
            "text": f"{text} Approval {outcome.ended}.",
        }
    else:
        message = {"replace_original": False, "response_type": "ephemeral", "text": text}
    await _update(svc, interaction.response_url, message)
    return JSONResponse({"decided": not outcome.duplicate, "ended": outcome.ended})


routes = [Route("/slack/interactions", interactions, methods=["POST"])]
