"""PostgreSQL verbs around executions: tags, API keys, and answers kept for resume callers."""

from __future__ import annotations

from gateway.domain import ApiKey, ResumeAttempt, StoredAnswer, Tag
from persistence import rows
from persistence.postgres_db import PgConnection, PostgresDatabase

FIRST_KEY_LOCK = 7_261_530_002  # pg_advisory_xact_lock key: "waitgate first API key"


class PostgresCatalog:
    """Tags, API keys and kept answers (mixed into ``PostgresStore``)."""

    db: PostgresDatabase

    # tags -----------------------------------------------------------------------------

    async def create_tag(
        self, tag_id: str, name: str, now: int, project_id: str | None = None
    ) -> Tag | None:
        """A new tag, ``None`` on a duplicate name."""
        params = {"id": tag_id, "name": name, "now": now, "project_id": project_id}
        row = await self.db.transaction(lambda conn: conn.row("create_tag", params))
        return None if row is None else rows.tag_from_row(row)

    async def get_tag(self, tag_id: str) -> Tag | None:
        """One tag."""
        row = await self.db.read(lambda conn: conn.row("get_tag", {"id": tag_id}))
        return None if row is None else rows.tag_from_row(row)

    async def list_tags(self, limit: int, after_id: str | None) -> list[Tag]:
        """A page of tags."""
        params = {"limit": limit, "after": after_id}
        found = await self.db.read(lambda conn: conn.rows("list_tags", params))
        return [rows.tag_from_row(r) for r in found]

    async def rename_tag(
        self, tag_id: str, name: str, now: int, project_id: str | None = None
    ) -> Tag | None:
        """Rename unless the name is taken or the project may not."""
        params = {"id": tag_id, "name": name, "now": now, "project_id": project_id}
        row = await self.db.transaction(lambda conn: conn.row("rename_tag", params))
        return None if row is None else rows.tag_from_row(row)

    async def delete_tag(self, tag_id: str, project_id: str | None = None) -> Tag | None:
        """Delete a tag unless the project may not."""
        params = {"id": tag_id, "project_id": project_id}
        row = await self.db.transaction(lambda conn: conn.row("delete_tag", params))
        return None if row is None else rows.tag_from_row(row)

    async def tag_manageable(self, tag_id: str, project_id: str | None) -> bool:
        """Whether a key of ``project_id`` may rename or delete the tag."""
        params = {"id": tag_id, "project_id": project_id}
        row = await self.db.read(lambda conn: conn.row("tag_manageable", params))
        return row is not None

    async def execution_tags(self, execution_id: int) -> list[Tag]:
        """An execution's tags."""
        found = await self.db.read(lambda conn: conn.rows("execution_tags", {"id": execution_id}))
        return [rows.tag_from_row(r) for r in found]

    async def set_execution_tags(self, execution_id: int, tag_ids: tuple[str, ...]) -> bool:
        """Replace the tags, all or nothing."""
        unique = sorted(set(tag_ids))

        async def transaction(conn: PgConnection) -> bool:
            known = await conn.row("count_known_tags", {"tag_ids": unique})
            if known is None or known["n"] != len(unique):
                return False
            await conn.run("clear_execution_tags", {"id": execution_id})
            for tag_id in unique:
                await conn.run("add_execution_tag", {"id": execution_id, "tag_id": tag_id})
            return True

        return await self.db.transaction(transaction)

    # API keys -------------------------------------------------------------------------

    async def create_api_key(
        self,
        label: str,
        key_hash: str,
        prefix: str,
        scopes: tuple[str, ...],
        project_id: str | None,
        now: int,
    ) -> ApiKey:
        """Store a key by its hash."""
        params = rows.api_key_params(label, key_hash, prefix, scopes, project_id, now)
        row = await self.db.transaction(lambda conn: conn.row("create_api_key", params))
        assert row is not None
        return rows.api_key_from_row(row)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The live key with this hash."""
        row = await self.db.read(lambda conn: conn.row("find_api_key", {"key_hash": key_hash}))
        return None if row is None else rows.api_key_from_row(row)

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key."""
        found = await self.db.read(lambda conn: conn.rows("list_api_keys", {}))
        return [rows.api_key_from_row(r) for r in found]

    async def revoke_api_key(self, key_id: int, now: int) -> bool:
        """Revoke a live key."""
        params = {"id": key_id, "now": now}
        return await self.db.transaction(lambda conn: conn.run_counted("revoke_api_key", params))

    async def create_first_api_key(
        self, label: str, key_hash: str, prefix: str, scopes: tuple[str, ...], now: int
    ) -> ApiKey | None:
        """Store the key if none exists; an advisory lock makes replicas take turns."""
        params = rows.api_key_params(label, key_hash, prefix, scopes, None, now)

        async def transaction(conn: PgConnection) -> ApiKey | None:
            await conn.raw.execute("SELECT pg_advisory_xact_lock($1)", FIRST_KEY_LOCK)
            existing = await conn.one("count_api_keys", {})
            if existing["n"]:
                return None
            return rows.api_key_from_row(await conn.one("create_api_key", params))

        return await self.db.transaction(transaction)

    # answers kept for resume callers -------------------------------------------------

    async def put_held_answer(
        self, execution_id: int, seq: int, answer: StoredAnswer, now: int
    ) -> bool:
        """Keep the answer for a held caller (the first one wins); tell the other replicas."""
        params = {"id": execution_id, "seq": seq, "now": now, **rows.answer_params(answer)}

        async def transaction(conn: PgConnection) -> bool:
            kept = await conn.run_counted("put_held_answer", params)
            if kept:
                await conn.notify("held", f"{execution_id}:{seq}")
            return kept

        return await self.db.transaction(transaction)

    async def get_held_answer(self, execution_id: int, seq: int) -> StoredAnswer | None:
        """The answer kept for a held caller."""
        key = {"id": execution_id, "seq": seq}
        row = await self.db.read(lambda conn: conn.row("get_held_answer", key))
        return None if row is None else rows.answer_from_row(row)

    async def put_idempotent_answer(
        self, key: str, target: str, execution_id: int, answer: StoredAnswer, now: int
    ) -> bool:
        """Keep the first answer to an idempotent resume call."""
        params = {"key": key, "target": target, "id": execution_id, "now": now}
        params.update(rows.answer_params(answer))
        return await self.db.transaction(
            lambda conn: conn.run_counted("put_idempotent_answer", params)
        )

    async def get_idempotent_answer(self, key: str, target: str) -> StoredAnswer | None:
        """The first answer to an idempotent resume call."""
        params = {"key": key, "target": target}
        row = await self.db.read(lambda conn: conn.row("get_idempotent_answer", params))
        return None if row is None else rows.answer_from_row(row)

    # retention and the audit trail ---------------------------------------------------

    async def prune(self, cutoff: int, keep: int, batch: int) -> int:
        """One batch of retention, in one short transaction."""

        async def transaction(conn: PgConnection) -> int:
            floor = await conn.row("prune_floor", {"keep": keep})
            params = {
                "cutoff": cutoff,
                "floor": 0 if floor is None else floor["id"],
                "batch": batch,
            }
            return await conn.affected("prune_batch", params)

        return await self.db.transaction(transaction)

    async def record_resume_attempts(self, attempts: list[ResumeAttempt]) -> None:
        """Append to the audit trail, keeping each execution's most recent rows per outcome."""

        async def transaction(conn: PgConnection) -> None:
            for attempt in attempts:
                await conn.run("record_attempt", rows.resume_attempt_params(attempt))
            for trim in rows.audit_trims(attempts):
                await conn.run("trim_resume_attempts", trim)

        await self.db.transaction(transaction)

    async def resume_attempts(self, execution_id: int) -> list[ResumeAttempt]:
        """An execution's audit trail."""
        found = await self.db.read(
            lambda conn: conn.rows("execution_resume_attempts", {"id": execution_id})
        )
        return [rows.resume_attempt_from_row(r) for r in found]
