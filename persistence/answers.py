"""Answers kept for resume callers: the one a held caller waits for, and the first answer to
a call with an ``Idempotency-Key`` (replayed to its repeats)."""

from __future__ import annotations

from gateway.domain import StoredAnswer
from persistence import rows
from persistence import script as q
from persistence.script import Script


def put_held_answer(execution_id: int, seq: int, answer: StoredAnswer, now: int) -> Script[bool]:
    """Keep the answer for the caller held at wait ``seq`` (waking it, here or in another
    replica); ``False`` if one is kept already."""
    params = {"id": execution_id, "seq": seq, "now": now, **rows.answer_params(answer)}
    if (yield from q.count("put_held_answer", params)) != 1:
        return False
    yield q.held(execution_id, seq)
    return True


def get_held_answer(execution_id: int, seq: int) -> Script[StoredAnswer | None]:
    """The answer kept for the caller held at wait ``seq``."""
    found = yield from q.row("get_held_answer", {"id": execution_id, "seq": seq})
    return None if found is None else rows.answer_from_row(found)


def put_idempotent_answer(
    key: str, target: str, execution_id: int, answer: StoredAnswer, now: int
) -> Script[bool]:
    """Keep the first answer to a resume call with this ``Idempotency-Key``."""
    params = {"key": key, "target": target, "id": execution_id, "now": now}
    params.update(rows.answer_params(answer))
    return (yield from q.count("put_idempotent_answer", params)) == 1


def get_idempotent_answer(key: str, target: str) -> Script[StoredAnswer | None]:
    """The first answer to a resume call with this ``Idempotency-Key`` and target."""
    found = yield from q.row("get_idempotent_answer", {"key": key, "target": target})
    return None if found is None else rows.answer_from_row(found)
