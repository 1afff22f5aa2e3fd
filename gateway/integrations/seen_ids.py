"""The webhook-ids a relay has handled, so a duplicate delivery does nothing twice.

A callback's id is *claimed* while its adapter runs (a concurrent duplicate is then ``busy``),
marked *done* when the adapter returns, and *released* when it fails (the retry runs again). A
claim older than the lease belongs to a relay that died mid-way and can be taken over. Done
ids are kept for ``keep_seconds`` (longer than waitgate keeps retrying a delivery,
``WAITGATE_CALLBACK_MAX_AGE``, a day by default), then forgotten.
"""

from __future__ import annotations

from typing import Protocol

from persistence.seen_ids import LEASE_SECONDS, Claim, SqliteSeenIds

__all__ = ["Claim", "MemorySeenIds", "SeenIds", "SqliteSeenIds"]


class SeenIds(Protocol):
    """Where a relay remembers webhook-ids."""

    async def claim(self, message_id: str, now: float) -> Claim:
        """Claim ``message_id`` for handling, or say why not."""

    async def done(self, message_id: str, now: float) -> None:
        """The adapter took the callback: later duplicates are ``done``."""

    async def release(self, message_id: str) -> None:
        """The adapter failed: the next delivery of the id is ``new`` again."""


class MemorySeenIds:
    """Ids kept in this process only (tests, or a relay whose engine action is idempotent)."""

    def __init__(self, lease_seconds: float = LEASE_SECONDS) -> None:
        self._lease = lease_seconds
        self._working: dict[str, float] = {}
        self._done: set[str] = set()

    async def claim(self, message_id: str, now: float) -> Claim:
        """Claim ``message_id`` for handling, or say why not."""
        if message_id in self._done:
            return "done"
        started = self._working.get(message_id)
        if started is not None and started >= now - self._lease:
            return "busy"
        self._working[message_id] = now
        return "new"

    async def done(self, message_id: str, now: float) -> None:
        """Later duplicates are ``done``."""
        self._working.pop(message_id, None)
        self._done.add(message_id)

    async def release(self, message_id: str) -> None:
        """The next delivery of the id is ``new`` again."""
        self._working.pop(message_id, None)
