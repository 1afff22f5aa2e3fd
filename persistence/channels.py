"""Channels, and the notifications an approval's park writes to the outbox through them.

A notification is a delivery with a ``channel``: written in the park's transaction (one per
approver with an email address for an email channel, one per approval for the others), sent by
the dispatcher with the channel's sender, retried like any callback. Its payload carries what
the message says; the personal links are signed when it is sent. A reminder or an escalation
(``persistence.reminders``) writes the same rows for the approvers it tells (``Told``): its
payload's ``kind`` marks it and its ``approvers`` are those told.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from gateway.approvals import ApprovalSpec, Approver
from gateway.channels import Channel
from gateway.domain import Execution, format_instant
from gateway.errors import InvalidInput
from gateway.outbox_model import Event
from persistence import rows
from persistence import script as q
from persistence.script import Script


def _channel_from_row(row: Mapping[str, Any]) -> Channel:
    return Channel(
        name=row["name"],
        kind=row["kind"],
        config=rows.load(row["config"]),
        project_id=row["project_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _params(channel: Channel, now: int) -> dict[str, Any]:
    return {
        "name": channel.name,
        "project_id": channel.project_id,
        "kind": channel.kind,
        "config": rows.dump(channel.config),
        "now": now,
    }


def create_channel(channel: Channel, now: int) -> Script[Channel | None]:
    """Add a channel; ``None`` if its name is taken (by any project)."""
    found = yield from q.row("create_channel", _params(channel, now))
    return None if found is None else _channel_from_row(found)


def get_channel(name: str) -> Script[Channel | None]:
    """One channel."""
    found = yield from q.row("get_channel", {"name": name})
    return None if found is None else _channel_from_row(found)


def list_channels(project_id: str | None, after: str | None, limit: int) -> Script[list[Channel]]:
    """Channels by name after ``after`` (of ``project_id`` only, if given)."""
    params = {"project_id": project_id, "after": after, "limit": limit}
    return [_channel_from_row(r) for r in (yield from q.rows("list_channels", params))]


def update_channel(channel: Channel, now: int) -> Script[Channel | None]:
    """Replace a channel's kind and configuration; with ``channel.project_id``, only that
    project's channel. ``None`` if there is none."""
    found = yield from q.row("update_channel", _params(channel, now))
    return None if found is None else _channel_from_row(found)


def delete_channel(name: str, project_id: str | None) -> Script[bool]:
    """Delete a channel (notifications already written fail when they are sent); with
    ``project_id``, only that project's channel."""
    params = {"name": name, "project_id": project_id}
    return (yield from q.count("delete_channel", params)) == 1


TellKind = Literal["request", "reminder", "escalation"]


class Told(NamedTuple):
    """Why approvers are told (the request, a reminder, an escalation), and which (``None``:
    every approver of the approval)."""

    kind: TellKind
    approvers: tuple[Approver, ...] | None


REQUEST = Told("request", None)


def _approver(approver: Approver) -> dict[str, str]:
    return {"id": approver.id, "name": approver.name, "email": approver.email}


def notification_payload(
    execution: Execution,
    seq: int,
    spec: ApprovalSpec,
    now: int,
    approver: Approver | None,
    told: Told = REQUEST,
) -> dict[str, Any]:
    """``approval.requested``: what is asked, of whom (``approver`` for an email; the
    approvers ``told``, all of them for the request), and why (``told.kind``)."""
    return {
        "type": Event.APPROVAL_REQUESTED.value,
        "timestamp": format_instant(now),
        "data": {
            "executionId": execution.id,
            "workflowId": execution.workflow_id,
            "projectId": execution.project_id,
            "seq": seq,
            "waitTill": format_instant(execution.wait_till),
            "title": spec.title,
            "description": spec.description,
            "options": list(spec.options),
            "requester": spec.requester,
            "approvers": [_approver(a) for a in told.approvers or spec.approvers],
            "approver": None if approver is None else approver.id,
            "kind": told.kind,
        },
    }


def existing_channels(names: tuple[str, ...], project_id: str | None) -> Script[list[Channel]]:
    """The channels an approval names that still exist (for a reminder: one deleted since the
    park is skipped)."""
    found = []
    for name in names:
        channel = yield from get_channel(name)
        if channel is not None and channel.project_id in (None, project_id):
            found.append(channel)
    return found


def check_channels(names: tuple[str, ...], project_id: str | None) -> Script[list[Channel]]:
    """The channels an approval names; ``InvalidInput`` naming one that does not exist (or
    belongs to another project)."""
    found = []
    for name in names:
        channel = yield from get_channel(name)
        if channel is None or channel.project_id not in (None, project_id):
            raise InvalidInput(f'approval.channels: the channel "{name}" does not exist')
        found.append(channel)
    return found


def notify(
    execution: Execution,
    seq: int,
    spec: ApprovalSpec,
    channels: list[Channel],
    now: int,
    told: Told = REQUEST,
) -> Script[None]:
    """Write the notifications of wait ``seq`` to the outbox (see the module docstring), to
    the approvers ``told`` (all but the requester for the request)."""
    asked = told.approvers or spec.approvers
    for channel in channels:
        targets: list[tuple[Approver | None, str]]
        if channel.kind == "email":
            eligible = [a for a in asked if a.email and a.id != spec.requester]
            targets = [(a, f"mailto:{a.email}") for a in eligible]
        else:
            targets = [(None, f"channel:{channel.name}")]
        for approver, target in targets:
            params = {
                "id": "msg_" + secrets.token_hex(12),
                "execution_id": execution.id,
                "event": Event.APPROVAL_REQUESTED.value,
                "target_url": target,
                "payload": rows.dump(
                    notification_payload(execution, seq, spec, now, approver, told)
                ),
                "channel": channel.name,
                "now": now,
            }
            yield from q.count("insert_notification", params)
            yield q.OUTBOX
