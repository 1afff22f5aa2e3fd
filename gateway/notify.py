"""Sending notifications (outbox deliveries with a ``channel``) by their channel's kind.

The dispatcher hands each notification here instead of POSTing it to the engine; the outcome
is an attempt like any callback's, so a channel that is down (SMTP, Slack) is retried with the
same backoff and the approval stays open meanwhile. The channel is read at send time (a
deleted channel fails the attempt), its targets are checked against the allow-list again, and
the approvers' personal links are signed now (``gateway.signing``).

- email: one message per delivery (its ``approver``), over SMTP with the stdlib ``smtplib``
  in a thread (``smtps`` is TLS from the start, ``starttls`` upgrades ``smtp``); an accepted
  message counts as status 250;
- webhook: the ``approval.requested`` event with ``approvalUrls``, Standard-Webhooks-signed
  with the callback secret;
- slack: Block Kit to the incoming webhook, or ``chat.postMessage`` with the bot token (whose
  ``{"ok": false}`` answer is a failure);
- teams: the Adaptive Card to the webhook.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx
import msgspec

from gateway.channels import SLACK_POST_MESSAGE, Channel
from gateway.notify_messages import email_message, slack_message, teams_message
from gateway.origins import PORTS, CallbackOrigins, OriginRefused
from gateway.outbox_model import ABORT_HEADER, ABORT_VALUE, Delivery
from gateway.signing import ResumeSigner
from persistence.base import Store

if TYPE_CHECKING:
    from email.message import EmailMessage

SMTP_ACCEPTED = 250
SLACK_ANSWER_BYTES = 2000


def _send_mail(url: str, starttls: bool, message: EmailMessage, seconds: float) -> None:
    import smtplib  # noqa: PLC0415 - loaded at the first email sent

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or PORTS[parts.scheme]
    tls = ssl.create_default_context()  # certificates verified (smtplib's default does not)
    smtp = (
        smtplib.SMTP_SSL(host, port, timeout=seconds, context=tls)
        if parts.scheme == "smtps"
        else smtplib.SMTP(host, port, timeout=seconds)
    )
    with smtp:
        if starttls:
            smtp.starttls(context=tls)
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)


class SlackRefused(RuntimeError):
    """``chat.postMessage`` answered without ``"ok": true``."""


class DeliveryAborted(RuntimeError):
    """The receiver answered a non-2xx status with ``webhook-delivery: abort-message``: stop
    retrying this delivery."""

    def __init__(self, status_code: int, error: str) -> None:
        super().__init__(error)
        self.status_code = status_code
        self.error = error


class Notifier:
    """Sends notifications; see the module docstring."""

    def __init__(
        self,
        store: Store,
        signer: ResumeSigner,
        origins: CallbackOrigins,
        http: httpx.AsyncClient,
    ) -> None:
        self._store = store
        self._signer = signer
        self._origins = origins
        self._http = http

    async def send(
        self, delivery: Delivery, seconds: float, signed: Callable[[bytes], dict[str, str]]
    ) -> tuple[int, str | None]:
        """Send one notification; its status code, and the error if it failed. ``signed``
        gives the Standard Webhooks headers of a body (for webhooks)."""
        assert delivery.channel is not None
        channel = await self._store.get_channel(delivery.channel)
        if channel is None:
            raise LookupError(f'the channel "{delivery.channel}" no longer exists')
        for target in channel.targets():
            self._origins.check(target)
        data: dict[str, Any] = delivery.payload["data"]
        links, inboxes = await self._links(delivery, data)
        config = channel.config
        if channel.kind == "email":
            return await self._email(channel, data, links, inboxes, seconds)
        if channel.kind == "webhook":
            urls = {"approvalUrls": links, "inboxUrls": inboxes}
            event = {**delivery.payload, "data": {**data, **urls}}
            body = msgspec.json.encode(event)
            return await post(self._http, config["url"], body, signed(body), seconds)
        if channel.kind == "teams":
            card = msgspec.json.encode(teams_message(data, links))
            return await post(self._http, config["webhookUrl"], card, JSON, seconds)
        message = slack_message(data, links)
        if "webhookUrl" in config:
            encoded = msgspec.json.encode(message)
            return await post(self._http, config["webhookUrl"], encoded, JSON, seconds)
        return await self._slack_bot(channel, message, seconds)

    async def respond(self, url: str, message: dict[str, Any], seconds: float) -> str | None:
        """POST ``message`` to ``url`` (an allowed origin: a Slack ``response_url``); the
        error, if it failed."""
        try:
            encoded = msgspec.json.encode(message)
            _, error = await post(self._http, self._origins.check(url), encoded, JSON, seconds)
        except (OriginRefused, DeliveryAborted, httpx.HTTPError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return error

    async def _links(
        self, delivery: Delivery, data: dict[str, Any]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Each approver's personal link and inbox link (all but the requester's)."""
        execution = await self._store.get_execution(delivery.execution_id)
        if execution is None:
            raise LookupError(f"execution {delivery.execution_id} no longer exists")
        eid, nonce, seq = execution.id, execution.nonce, data["seq"]
        approvers = [a["id"] for a in data["approvers"] if a["id"] != data["requester"]]
        links = {a: self._signer.approval_url(eid, nonce, seq, a) for a in approvers}
        inboxes = {a: self._signer.inbox_url(execution.project_id, a) for a in approvers}
        return links, inboxes

    async def _email(
        self,
        channel: Channel,
        data: dict[str, Any],
        links: dict[str, str],
        inboxes: dict[str, str],
        seconds: float,
    ) -> tuple[int, str | None]:
        approver = data["approver"]
        to = next(a["email"] for a in data["approvers"] if a["id"] == approver)
        config = channel.config
        message = email_message(
            data, links[approver], to, config["from"], approver, inboxes[approver]
        )
        send = asyncio.to_thread(
            _send_mail, config["smtpUrl"], config.get("starttls", False), message, seconds
        )
        async with asyncio.timeout(seconds):
            await send
        return SMTP_ACCEPTED, None

    async def _slack_bot(
        self, channel: Channel, message: dict[str, Any], seconds: float
    ) -> tuple[int, str | None]:
        body = msgspec.json.encode({**message, "channel": channel.config["channel"]})
        headers = {**JSON, "authorization": f"Bearer {channel.config['botToken']}"}
        status, error, answer = await exchange(
            self._http, SLACK_POST_MESSAGE, body, headers, seconds, SLACK_ANSWER_BYTES
        )
        if error is not None:
            return status, error
        try:
            ok = msgspec.json.decode(answer).get("ok") is True
        except (msgspec.DecodeError, AttributeError):
            ok = False
        if not ok:  # Slack answers 200 with {"ok": false}: a failed attempt, retried
            raise SlackRefused(f"Slack answered: {answer[:200].decode('utf-8', 'replace')}")
        return status, None


JSON = {"content-type": "application/json", "accept-encoding": "identity", "user-agent": "waitgate"}


async def exchange(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    keep: int,
) -> tuple[int, str | None, bytes]:
    """POST ``body`` under one deadline, no redirects; the status code, the error if it is not
    a 2xx, and at most ``keep`` bytes of the answer (the rest is never read).
    ``DeliveryAborted`` if a non-2xx answer carries the abort header."""
    async with (
        asyncio.timeout(seconds),
        http.stream(
            "POST", url, content=body, headers=headers, timeout=seconds, follow_redirects=False
        ) as response,
    ):
        kept = bytearray()
        async for chunk in response.aiter_raw():
            kept += chunk[: keep - len(kept)]
            if len(kept) >= keep:
                break
        if 200 <= response.status_code < 300:
            return response.status_code, None, bytes(kept)
        prefix = bytes(kept[:200]).decode("utf-8", "replace")
        error = f"answered {response.status_code}: {prefix}"
        if response.headers.get(ABORT_HEADER, "").strip().lower() == ABORT_VALUE:
            raise DeliveryAborted(response.status_code, f"aborted by the receiver ({error})")
        return response.status_code, error, bytes(kept)


async def post(
    http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], seconds: float
) -> tuple[int, str | None]:
    """``exchange`` keeping at most 200 bytes, for the error."""
    status, error, _ = await exchange(http, url, body, headers, seconds, 200)
    return status, error
