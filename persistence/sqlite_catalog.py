"""SQLite verbs around executions: tags, API keys, and answers kept for resume callers."""

from __future__ import annotations

import sqlite3

from gateway.domain import ApiKey, ResumeAttempt, StoredAnswer, Tag
from persistence import rows
from persistence.sqlfiles import load_queries
from persistence.sqlite_db import SqliteDatabase

Q = load_queries("sqlite")


class SqliteCatalog:
    """Tags, API keys and kept answers (mixed into ``SqliteStore``)."""

    db: SqliteDatabase

    # tags -----------------------------------------------------------------------------

    async def create_tag(
        self, tag_id: str, name: str, now: int, project_id: str | None = None
    ) -> Tag | None:
        """A new tag, ``None`` on a duplicate name."""
        params = {"id": tag_id, "name": name, "now": now, "project_id": project_id}
        row = await self.db.write(lambda c: c.execute(Q["create_tag"], params).fetchone())
        return None if row is None else rows.tag_from_row(row)

    async def get_tag(self, tag_id: str) -> Tag | None:
        """One tag."""
        row = await self.db.read(lambda c: c.execute(Q["get_tag"], {"id": tag_id}).fetchone())
        return None if row is None else rows.tag_from_row(row)

    async def list_tags(self, limit: int, after_id: str | None) -> list[Tag]:
        """A page of tags."""
        params = {"limit": limit, "after": after_id}
        found = await self.db.read(lambda c: c.execute(Q["list_tags"], params).fetchall())
        return [rows.tag_from_row(r) for r in found]

    async def rename_tag(
        self, tag_id: str, name: str, now: int, project_id: str | None = None
    ) -> Tag | None:
        """Rename unless the name is taken or the project may not."""
        params = {"id": tag_id, "name": name, "now": now, "project_id": project_id}
        row = await self.db.write(lambda c: c.execute(Q["rename_tag"], params).fetchone())
        return None if row is None else rows.tag_from_row(row)

    async def delete_tag(self, tag_id: str, project_id: str | None = None) -> Tag | None:
        """Delete a tag unless the project may not."""
        params = {"id": tag_id, "project_id": project_id}
        row = await self.db.write(lambda c: c.execute(Q["delete_tag"], params).fetchone())
        return None if row is None else rows.tag_from_row(row)

    async def tag_manageable(self, tag_id: str, project_id: str | None) -> bool:
        """Whether a key of ``project_id`` may rename or delete the tag."""
        params = {"id": tag_id, "project_id": project_id}
        row = await self.db.read(lambda c: c.execute(Q["tag_manageable"], params).fetchone())
        return row is not None

    async def execution_tags(self, execution_id: int) -> list[Tag]:
        """An execution's tags."""
        found = await self.db.read(
            lambda c: c.execute(Q["execution_tags"], {"id": execution_id}).fetchall()
        )
        return [rows.tag_from_row(r) for r in found]

    async def set_execution_tags(self, execution_id: int, tag_ids: tuple[str, ...]) -> bool:
        """Replace the tags, all or nothing."""
        unique = sorted(set(tag_ids))

        def transaction(conn: sqlite3.Connection) -> bool:
            known = conn.execute(Q["count_known_tags"], {"tag_ids": rows.dump(unique)}).fetchone()
            if known["n"] != len(unique):
                return False
            conn.execute(Q["clear_execution_tags"], {"id": execution_id})
            conn.executemany(
                Q["add_execution_tag"], [{"id": execution_id, "tag_id": t} for t in unique]
            )
            return True

        return await self.db.write(transaction)

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
        row = await self.db.write(lambda c: c.execute(Q["create_api_key"], params).fetchone())
        return rows.api_key_from_row(row)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The live key with this hash."""
        row = await self.db.read(
            lambda c: c.execute(Q["find_api_key"], {"key_hash": key_hash}).fetchone()
        )
        return None if row is None else rows.api_key_from_row(row)

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key."""
        found = await self.db.read(lambda c: c.execute(Q["list_api_keys"]).fetchall())
        return [rows.api_key_from_row(r) for r in found]

    async def revoke_api_key(self, key_id: int, now: int) -> bool:
        """Revoke a live key."""
        return await self.db.write(
            lambda c: c.execute(Q["revoke_api_key"], {"id": key_id, "now": now}).rowcount == 1
        )

    async def create_first_api_key(
        self, label: str, key_hash: str, prefix: str, scopes: tuple[str, ...], now: int
    ) -> ApiKey | None:
        """Store the key if none exists (the write lock makes the check and the insert one)."""
        params = rows.api_key_params(label, key_hash, prefix, scopes, None, now)

        def transaction(conn: sqlite3.Connection) -> ApiKey | None:
            if conn.execute(Q["count_api_keys"]).fetchone()["n"]:
                return None
            return rows.api_key_from_row(conn.execute(Q["create_api_key"], params).fetchone())

        return await self.db.write(transaction)

    # answers kept for resume callers -------------------------------------------------

    async def put_held_answer(
        self, execution_id: int, seq: int, answer: StoredAnswer, now: int
    ) -> bool:
        """Keep the answer for a held caller (the first one wins)."""
        params = {"id": execution_id, "seq": seq, "now": now, **rows.answer_params(answer)}
        return await self.db.write(lambda c: c.execute(Q["put_held_answer"], params).rowcount == 1)

    async def get_held_answer(self, execution_id: int, seq: int) -> StoredAnswer | None:
        """The answer kept for a held caller."""
        key = {"id": execution_id, "seq": seq}
        row = await self.db.read(lambda c: c.execute(Q["get_held_answer"], key).fetchone())
        return None if row is None else rows.answer_from_row(row)

    async def put_idempotent_answer(
        self, key: str, target: str, execution_id: int, answer: StoredAnswer, now: int
    ) -> bool:
        """Keep the first answer to an idempotent resume call."""
        params = {"key": key, "target": target, "id": execution_id, "now": now}
        params.update(rows.answer_params(answer))
        del params["kind"]
        return await self.db.write(
            lambda c: c.execute(Q["put_idempotent_answer"], params).rowcount == 1
        )

    async def get_idempotent_answer(self, key: str, target: str) -> StoredAnswer | None:
        """The first answer to an idempotent resume call."""
        params = {"key": key, "target": target}
        row = await self.db.read(lambda c: c.execute(Q["get_idempotent_answer"], params).fetchone())
        return None if row is None else rows.answer_from_row(row)

    # retention and the audit trail ---------------------------------------------------

    async def prune(self, cutoff: int, keep: int, batch: int) -> int:
        """One batch of retention, in one short write transaction."""

        def transaction(conn: sqlite3.Connection) -> int:
            floor = conn.execute(Q["prune_floor"], {"keep": keep}).fetchone()
            params = {
                "cutoff": cutoff,
                "floor": 0 if floor is None else floor["id"],
                "batch": batch,
            }
            return conn.execute(Q["prune_batch"], params).rowcount

        return await self.db.write(transaction)

    async def record_resume_attempts(self, attempts: list[ResumeAttempt]) -> None:
        """Append to the audit trail, keeping each execution's most recent rows per outcome."""
        params = [rows.resume_attempt_params(a) for a in attempts]

        def transaction(conn: sqlite3.Connection) -> None:
            conn.executemany(Q["record_attempt"], params)
            conn.executemany(Q["trim_resume_attempts"], rows.audit_trims(attempts))

        await self.db.write(transaction)

    async def resume_attempts(self, execution_id: int) -> list[ResumeAttempt]:
        """An execution's audit trail."""
        found = await self.db.read(
            lambda c: c.execute(Q["execution_resume_attempts"], {"id": execution_id}).fetchall()
        )
        return [rows.resume_attempt_from_row(r) for r in found]
