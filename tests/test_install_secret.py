"""Per-install keys (`storage/secrets.py`): made once, then only read; racing askers agree."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import event, func, select

from storage.db import Database
from storage.secrets import SECRETS, install_secret

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


async def test_a_key_is_made_once_and_then_read_without_writing(any_db: Database) -> None:
    async with any_db.session() as session:
        first = await install_secret(session, "pseudonyms", now=NOW)
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(any_db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with any_db.session() as session:
            again = await install_secret(session, "pseudonyms", now=NOW)
    finally:
        event.remove(any_db.engine.sync_engine, "before_cursor_execute", seen)
    assert again == first and len(first) == 32
    # An existing key costs one read: no INSERT, so no write lock on SQLite.
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["SELECT"]
    async with any_db.session() as session:
        other = await install_secret(session, "links", now=NOW)
        rows = await session.scalar(select(func.count()).select_from(SECRETS))
    assert other != first and rows == 2


async def test_units_of_work_asking_at_once_agree_on_one_key(any_db: Database) -> None:
    async def ask() -> bytes:
        async with any_db.session() as session:
            return await install_secret(session, "pseudonyms", now=NOW)

    keys = await asyncio.gather(*(ask() for _ in range(5)))
    assert len(set(keys)) == 1
    async with any_db.session() as session:
        stored = await session.scalar(select(func.count()).select_from(SECRETS))
    assert stored == 1
