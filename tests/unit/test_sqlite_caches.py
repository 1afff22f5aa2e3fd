"""SQLite's page caches: the readers' are small, the writer keeps SQLite's default."""

from __future__ import annotations

from pathlib import Path

from persistence.sqlite import READER_CACHE_KIB, SqliteStore

SQLITE_DEFAULT = -2000  # KiB, as a negative cache_size


async def test_readers_page_caches_are_bounded_and_the_writer_keeps_the_default(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "w.db")
    await store.open()
    try:
        db = store.db
        assert db._writer is not None
        async with db._writer.execute("PRAGMA cache_size") as cursor:
            assert tuple(await cursor.fetchone() or ()) == (SQLITE_DEFAULT,)
        assert db._all_readers
        for reader in db._all_readers:
            async with reader.execute("PRAGMA cache_size") as cursor:
                assert tuple(await cursor.fetchone() or ()) == (-READER_CACHE_KIB,)
            async with reader.execute("PRAGMA query_only") as cursor:
                assert tuple(await cursor.fetchone() or ()) == (1,)
        await store.migrate()
        assert await store.pending_migrations() == []  # reads still answer
    finally:
        await store.close()
