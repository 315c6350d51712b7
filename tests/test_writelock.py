"""The SQLite write gate: writers queue on the loop, in order, and every way out frees it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select, text

from storage.activity import ActivityKind, ActivityRecord, ActivityWriter
from storage.db import Database
from storage.models import ActivityEvent, Community
from storage.writelock import HOLDS, WriteGate

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def community(key: str) -> dict[str, object]:
    return {
        "platform": "console",
        "external_id": key,
        "title": key,
        "timezone": "UTC",
        "locale": "en",
        "settings": {},
        "created_at": NOW,
    }


async def communities(db: Database) -> list[str]:
    async with db.session() as session:
        query = select(Community.external_id).order_by(Community.id)
        return list((await session.scalars(query)).all())


async def test_second_writer_waits_on_the_loop_and_goes_when_the_first_commits(
    db: Database,
) -> None:
    gate = WriteGate.install(db.engine.sync_engine)
    first_wrote = asyncio.Event()
    let_first_commit = asyncio.Event()
    b_read = asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with db.session() as session:
            await session.execute(insert(Community).values(**community("a")))
            first_wrote.set()
            await let_first_commit.wait()
            order.append("a committing")

    async def second() -> None:
        await first_wrote.wait()
        async with db.session() as session:
            await session.execute(select(func.count()).select_from(Community))  # reads pass
            order.append("b read")
            b_read.set()
            await session.execute(insert(Community).values(**community("b")))
            order.append("b wrote")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await asyncio.wait_for(b_read.wait(), 5)
    for _ in range(500):  # b's insert reaches the gate a few driver round trips later
        if gate._waiters:
            break
        await asyncio.sleep(0.01)
    assert order == ["b read"]  # b's write waits for the gate, not in SQLite's busy handler
    assert gate.held and len(gate._waiters) == 1
    let_first_commit.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["b read", "a committing", "b wrote"]
    assert await communities(db) == ["a", "b"]
    assert not gate.held


async def test_rollback_and_a_closed_session_free_the_gate(db: Database) -> None:
    gate = WriteGate.install(db.engine.sync_engine)
    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await session.execute(insert(Community).values(**community("gone")))
            assert gate.held
            raise RuntimeError("handler failed")
    assert not gate.held

    async with db.sessions() as session:  # no commit, no rollback: closed mid-transaction
        await session.execute(insert(Community).values(**community("dropped")))
        assert gate.held
    assert not gate.held
    assert await communities(db) == []


async def test_waiters_are_served_in_arrival_order_and_a_timed_out_one_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = WriteGate()
    await gate.acquire()
    served: list[int] = []

    async def wait(n: int) -> None:
        await gate.acquire()
        served.append(n)
        gate.release()

    tasks = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    gate.release()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert served == [0, 2]
    assert not gate.held

    monkeypatch.setattr("storage.writelock.WAIT_SECONDS", 0.01)
    await gate.acquire()
    with pytest.raises(TimeoutError):
        await gate.acquire()
    gate.release()
    assert not gate.held


async def test_the_writer_batch_and_a_unit_of_work_both_land(db: Database) -> None:
    """The writer holds the gate for its batch; a concurrent unit of work queues behind it."""
    writer = ActivityWriter(db, flush_interval=60.0)
    await writer.start()
    try:
        records = [
            ActivityRecord(
                ActivityKind.MESSAGE, "console", "g1", "c1", f"m{n}", f"M {n}", NOW, f"k{n}"
            )
            for n in range(200)
        ]
        await writer.record_many(records)

        async def unit_of_work() -> None:
            async with db.session() as session:
                await session.execute(insert(Community).values(**community("other")))

        await asyncio.wait_for(asyncio.gather(writer.flush(), unit_of_work()), 10)
    finally:
        await writer.stop()
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ActivityEvent)) == 200
        conn = await session.connection()
        assert not conn.info.get(HOLDS)
        assert (await session.execute(text("PRAGMA busy_timeout"))).scalar() == 10000
    assert "other" in await communities(db)


async def test_an_invalidated_connection_frees_the_gate_and_keeps_its_error(db: Database) -> None:
    gate = WriteGate.install(db.engine.sync_engine)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.session() as session:
            await session.execute(insert(Community).values(**community("lost")))
            assert gate.held
            conn = await session.connection()
            await conn.invalidate()  # what a broken connection goes through
            raise Boom
    assert not gate.held
    async with db.session() as session:  # the next writer goes at once
        await session.execute(insert(Community).values(**community("next")))
    assert await communities(db) == ["next"]
