"""Channels: where approvers are told that an approval waits for them.

A channel is configured once (``/api/v1/channels``) and named by approvals
(``approval.channels``). Its kind says how it sends:

- ``email``: one message per approver with an email address, through the channel's SMTP
  server (``smtpUrl`` ``smtp[s]://user:pass@host:port``, ``from``, ``starttls``);
- ``webhook``: one Standard-Webhooks-signed ``approval.requested`` event per approval, signed
  with the callback secret, with every approver's personal link;
- ``slack``: one Block Kit message per approval, through an incoming webhook (``webhookUrl``)
  or ``chat.postMessage`` (``botToken`` and ``channel``);
- ``teams``: one Adaptive Card per approval, through a Workflows or incoming webhook
  (``webhookUrl``).

Every host a channel sends to must be on the callback allow-list (``gateway.origins``): checked
when the channel is written and again at each send. Secrets (the SMTP password, the Slack and
Teams webhook URLs, the bot token) are never shown: views mask them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from gateway.domain import format_instant
from gateway.errors import InvalidInput
from gateway.origins import CallbackOrigins, OriginRefused, origin_of

ChannelKind = Literal["email", "webhook", "slack", "teams"]
CHANNEL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SLACK_POST_MESSAGE = "https://slack.com/api/chat.postMessage"
MASK = "***"
MAX_URL = 2000
MAX_CHANNELS_PER_APPROVAL = 10
Url = Annotated[str, Meta(min_length=1, max_length=MAX_URL)]
Short = Annotated[str, Meta(min_length=1, max_length=255)]


class _Config(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """A channel's configuration: unknown fields are an error, names are camelCase."""


class EmailConfig(_Config):
    """``email``: the SMTP server (with its credentials) and the sender address."""

    smtp_url: Url
    from_: Annotated[Short, msgspec.Meta(pattern=r"^[^\s<>@]+@[^\s<>@]+$")] = msgspec.field(
        name="from"
    )
    starttls: bool = False


class WebhookConfig(_Config):
    """``webhook``: where the signed ``approval.requested`` event is POSTed."""

    url: Url


class SlackConfig(_Config):
    """``slack``: an incoming webhook, or a bot token and the channel to post in."""

    webhook_url: Url | None = None
    bot_token: Short | None = None
    channel: Short | None = None


class TeamsConfig(_Config):
    """``teams``: a Workflows (or incoming) webhook."""

    webhook_url: Url


CONFIGS: dict[str, type[_Config]] = {
    "email": EmailConfig,
    "webhook": WebhookConfig,
    "slack": SlackConfig,
    "teams": TeamsConfig,
}


@dataclass(frozen=True)
class Channel:
    """A configured channel; ``config`` as the API wrote it (camelCase, secrets included)."""

    name: str
    kind: ChannelKind
    config: dict[str, Any]
    project_id: str | None = None
    created_at: int = 0
    updated_at: int = 0

    def targets(self) -> tuple[str, ...]:
        """The URLs this channel sends to (each origin must be allowed)."""
        config = self.config
        if self.kind == "email":
            return (config["smtpUrl"],)
        if self.kind == "webhook":
            return (config["url"],)
        if self.kind == "slack" and config.get("botToken"):
            return (SLACK_POST_MESSAGE,)
        return (config["webhookUrl"],)


def check_channel_name(name: str) -> str:
    """A channel name: 1 to 64 of ``A-Z a-z 0-9 _ -``."""
    if not CHANNEL_NAME.fullmatch(name):
        raise InvalidInput("a channel name must be 1 to 64 of the characters A-Z a-z 0-9 _ -")
    return name


def _check_url(url: str, field: str, schemes: frozenset[str], origins: CallbackOrigins) -> None:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise InvalidInput(f"config.{field} must be a {'/'.join(sorted(schemes))} URL")
    try:
        origin_of(url)
        origins.check(url)
    except OriginRefused as exc:
        raise InvalidInput(f"config.{field}: {exc}") from None
    except ValueError as exc:
        raise InvalidInput(f"config.{field} is invalid: {exc}") from None


def check_config(kind: ChannelKind, raw: Any, origins: CallbackOrigins) -> dict[str, Any]:
    """The configuration of a ``kind`` channel, validated (its targets on the allow-list);
    ``InvalidInput`` naming the field."""
    try:
        config = msgspec.convert(raw, CONFIGS[kind])
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"config: {exc}") from None
    web = frozenset({"http", "https"})
    if isinstance(config, EmailConfig):
        parts = urlsplit(config.smtp_url)
        if parts.path not in {"", "/"} or parts.query or parts.fragment:
            raise InvalidInput("config.smtpUrl must be smtp[s]://user:pass@host:port only")
        _check_url(config.smtp_url, "smtpUrl", frozenset({"smtp", "smtps"}), origins)
    elif isinstance(config, WebhookConfig):
        if urlsplit(config.url).username is not None:
            raise InvalidInput("config.url must not carry credentials")
        _check_url(config.url, "url", web, origins)
    elif isinstance(config, SlackConfig):
        if (config.webhook_url is None) == (config.bot_token is None):
            raise InvalidInput("a slack channel needs config.webhookUrl or config.botToken")
        if config.bot_token is not None and config.channel is None:
            raise InvalidInput("config.botToken needs config.channel")
        if config.webhook_url is not None:
            _check_url(config.webhook_url, "webhookUrl", web, origins)
        else:
            _check_url(SLACK_POST_MESSAGE, "botToken", web, origins)
    else:
        assert isinstance(config, TeamsConfig)
        _check_url(config.webhook_url, "webhookUrl", web, origins)
    built: dict[str, Any] = msgspec.to_builtins(config)
    return {k: v for k, v in built.items() if v is not None}


def _masked_url(url: str) -> str:
    """The origin of a URL whose path or query is a secret (Slack, Teams webhooks)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/{MASK}"


def masked_config(channel: Channel) -> dict[str, Any]:
    """The configuration as the API shows it: every secret masked."""
    config = dict(channel.config)
    if channel.kind == "email":
        parts = urlsplit(config["smtpUrl"])
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}:{MASK}@" if parts.username else ""
        config["smtpUrl"] = f"{parts.scheme}://{user}{host}{port}"
    elif channel.kind in {"slack", "teams"}:
        if "webhookUrl" in config:
            config["webhookUrl"] = _masked_url(config["webhookUrl"])
        if "botToken" in config:
            config["botToken"] = MASK
    return config


def channel_view(channel: Channel) -> dict[str, Any]:
    """A channel as the API answers it (secrets masked)."""
    return {
        "name": channel.name,
        "type": channel.kind,
        "projectId": channel.project_id,
        "config": masked_config(channel),
        "createdAt": format_instant(channel.created_at),
        "updatedAt": format_instant(channel.updated_at),
    }


class ChannelBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """``POST /api/v1/channels``."""

    name: str
    type: ChannelKind
    config: dict[str, Any]

    def to_channel(self, project_id: str | None, origins: CallbackOrigins) -> Channel:
        """Validated, in the creating key's project."""
        name = check_channel_name(self.name)
        return Channel(name, self.type, check_config(self.type, self.config, origins), project_id)


class ChannelPatch(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """``PATCH /api/v1/channels/{name}``: a new ``type`` replaces the whole configuration;
    otherwise the ``config`` fields given replace those fields."""

    type: ChannelKind | None = None
    config: dict[str, Any] = {}

    def applied(self, channel: Channel, origins: CallbackOrigins) -> Channel:
        """The channel with this patch applied, validated. A field sent back exactly as the API
        showed it (masked) keeps its stored value; any other value that still holds the mask is
        refused, so a masked secret can never be stored in place of the real one."""
        kind = self.type or channel.kind
        retyped = self.type not in {None, channel.kind}
        shown = {} if retyped else masked_config(channel)
        changed = {k: v for k, v in self.config.items() if retyped or v != shown.get(k)}
        config = changed if retyped else channel.config | changed
        for key, value in changed.items():
            if isinstance(value, str) and MASK in value:
                raise InvalidInput(
                    f"config.{key} holds the mask {MASK!r}: send the whole value to change it, "
                    "or send back exactly what the API showed to keep it"
                )
        return Channel(channel.name, kind, check_config(kind, config, origins), channel.project_id)
