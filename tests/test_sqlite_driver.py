"""The one-trip aiosqlite adapter: DBAPI results as the stock adapter gives them, one trip each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from storage.db import Database
from storage.sqlite_driver import OneTripCursor


@pytest.fixture
async def plain(tmp_path: Path) -> AsyncIterator[Database]:
    """A SQLite file with one small table, no migrations (the driver is all that is tested)."""
    database = Database(f"sqlite:///{tmp_path / 'driver.db'}")
    async with database.session() as session:
        await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions sent to aiosqlite's thread, in order."""
    sent: list[str] = []
    real = aiosqlite.Connection._execute

    async def counting(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return sent


async def test_the_database_uses_the_one_trip_cursor(plain: Database) -> None:
    async with plain.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, aiosqlite.Connection)
        assert isinstance(raw.dbapi_connection.cursor(), OneTripCursor)


async def test_a_statement_is_one_trip_to_the_thread(plain: Database, trips: list[str]) -> None:
    async with plain.session() as session:
        await session.connection()  # checkout and begin are not the statements' trips
        trips.clear()
        rows = (await session.execute(text("SELECT 1, 'a'"))).all()
        assert trips == ["_run"]
        await session.execute(text("INSERT INTO t (v) VALUES ('x')"))
        assert trips == ["_run", "_run"]
    assert rows == [(1, "a")]


async def test_results_match_the_dbapi(plain: Database) -> None:
    async with plain.session() as session:
        inserted = await session.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert inserted.lastrowid == 1
        many = await session.execute(
            text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}, {"v": "d"}]
        )
        assert many.rowcount == 3
        changed = await session.execute(text("UPDATE t SET v = v || '!' WHERE id > 2"))
        assert changed.rowcount == 2
        returned = await session.execute(text("UPDATE t SET v = 'z' WHERE id = 1 RETURNING id, v"))
        assert returned.keys() == ["id", "v"] and returned.all() == [(1, "z")]
        result = await session.execute(text("SELECT id, v FROM t ORDER BY id"))
        assert list(result.keys()) == ["id", "v"]
        assert result.fetchone() == (1, "z")
        assert result.fetchmany(2) == [(2, "b"), (3, "c!")]
        assert result.fetchall() == [(4, "d!")]
        assert (await session.execute(text("SELECT v FROM t WHERE id = 99"))).first() is None


async def test_server_side_results_still_stream(plain: Database) -> None:
    async with plain.session() as session:
        await session.execute(
            text("INSERT INTO t (v) VALUES (:v)"), [{"v": str(i)} for i in range(50)]
        )
        streamed = await session.stream(text("SELECT v FROM t ORDER BY id"))
        seen = [row[0] async for row in streamed]
    assert seen == [str(i) for i in range(50)]


async def test_an_error_rolls_back_and_the_connection_goes_on(plain: Database) -> None:
    async with plain.session() as session:
        await session.execute(text("INSERT INTO t (v) VALUES ('taken')"))
    with pytest.raises(IntegrityError):
        async with plain.session() as session:
            await session.execute(text("INSERT INTO t (v) VALUES ('kept out')"))
            await session.execute(text("INSERT INTO t (v) VALUES ('taken')"))
    with pytest.raises(OperationalError):
        async with plain.session() as session:
            await session.execute(text("SELECT nothing FROM nowhere"))
    async with plain.session() as session:
        values = (await session.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
    assert values == ["taken"]
