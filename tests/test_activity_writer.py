"""The batched activity writer: idempotent replays, flushing, back-pressure and rollups.

Every test runs on SQLite and on PostgreSQL (`any_db`) unless it says otherwise. Rollups are
checked three ways: against `recount_from_events` (raw rows in the database), against a recount
of member days from raw rows, and against an oracle computed in Python from the generated stream
(so an event that never reached the database cannot hide behind a matching recount).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

import storage.activity as activity_module
from storage import postdays
from storage.activity import (
    ActivityKind,
    ActivityRecord,
    ActivityWriter,
    CommunityDefaults,
    IdCache,
    write_batch,
)
from storage.communities import ensure_community
from storage.db import Database
from storage.metrics import DayCounts, recount_from_events, stored_days
from storage.models import (
    ActivityEvent,
    Chat,
    Community,
    CommunityDay,
    Member,
    MemberDay,
    Membership,
)

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PLATFORM = "console"
_keys = itertools.count(1)


def rec(
    kind: ActivityKind = ActivityKind.MESSAGE,
    *,
    member: str = "alice",
    name: str | None = None,
    at: datetime = T0,
    key: str | None = None,
    community: str = "g1",
    chat: str = "c1",
    length: int = 5,
    is_reply: bool = False,
    username: str | None = None,
) -> ActivityRecord:
    return ActivityRecord(
        kind=kind,
        platform=PLATFORM,
        community_key=community,
        chat_key=chat,
        member_key=member,
        member_name=name or member.title(),
        at=at,
        event_key=key or f"e:{next(_keys)}",
        community_title=f"Community {community}",
        chat_title=f"Chat {chat}",
        member_username=username,
        content="text" if kind is ActivityKind.MESSAGE else None,
        length=length if kind is ActivityKind.MESSAGE else 0,
        is_reply=is_reply,
    )


def messages(n: int, **kwargs: Any) -> list[ActivityRecord]:
    return [rec(at=T0 + timedelta(minutes=i), **kwargs) for i in range(n)]


@asynccontextmanager
async def running(db: Database, **kwargs: Any) -> AsyncIterator[ActivityWriter]:
    """A started writer that is always stopped (and so flushed) at the end of the block."""
    kwargs.setdefault("flush_interval", 60.0)
    kwargs.setdefault("batch_size", 10_000)
    writer = ActivityWriter(db, **kwargs)
    await writer.start()
    try:
        yield writer
    finally:
        await writer.stop()


async def write_batches(
    db: Database, batches: Iterable[Sequence[ActivityRecord]], **kwargs: Any
) -> ActivityWriter:
    """Write each batch as exactly one writer batch (flush between them), then stop."""
    async with running(db, **kwargs) as writer:
        for batch in batches:
            await writer.record_many(batch)
            await writer.flush()
    return writer


async def event_count(db: Database) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(ActivityEvent))).scalar_one()


async def event_keys(db: Database) -> set[str]:
    async with db.session() as s:
        return set((await s.execute(select(ActivityEvent.event_key))).scalars())


async def community_id(db: Database, key: str = "g1") -> int:
    async with db.session() as s:
        query = select(Community.id).where(
            Community.platform == PLATFORM, Community.external_id == key
        )
        return (await s.execute(query)).scalar_one()


async def member_id(db: Database, key: str = "alice") -> int:
    async with db.session() as s:
        query = select(Member.id).where(Member.platform == PLATFORM, Member.external_id == key)
        return (await s.execute(query)).scalar_one()


async def days_of(db: Database, key: str = "g1") -> dict[date, DayCounts]:
    cid = await community_id(db, key)
    async with db.session() as s:
        return await stored_days(s, cid)


async def member_day(db: Database, day: date, member: str = "alice", community: str = "g1") -> Any:
    cid, mid = await community_id(db, community), await member_id(db, member)
    async with db.session() as s:
        return await s.get(MemberDay, (cid, day, mid))


async def membership(db: Database, member: str = "alice", community: str = "g1") -> Membership:
    cid, mid = await community_id(db, community), await member_id(db, member)
    async with db.session() as s:
        row = await s.get(Membership, (cid, mid))
    assert row is not None
    return row


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the writer touches, to prove a replay changed nothing."""
    tables = (Community, Chat, Member, Membership, ActivityEvent, CommunityDay, MemberDay)
    result: dict[str, list[tuple[Any, ...]]] = {}
    async with db.session() as s:
        for model in tables:
            rows = (await s.execute(select(model.__table__))).all()
            result[model.__tablename__] = sorted((tuple(r) for r in rows), key=repr)
    return result


async def create_community(db: Database, key: str, timezone: str) -> int:
    async with db.session() as s:
        community = await ensure_community(
            s,
            platform=PLATFORM,
            external_id=key,
            title=key,
            defaults=CommunityDefaults(timezone),
            now=T0,
        )
        return community.id


def mixed_batch() -> list[ActivityRecord]:
    """A bit of everything, from two members in two chats."""
    return [
        rec(ActivityKind.JOIN, member="bob", at=T0 - timedelta(hours=1)),
        rec(member="alice", length=10),
        rec(member="bob", chat="c2", is_reply=True, at=T0 + timedelta(minutes=1)),
        rec(ActivityKind.REACTION, member="alice", at=T0 + timedelta(minutes=2)),
        rec(ActivityKind.LEAVE, member="bob", at=T0 + timedelta(hours=2)),
    ]


# --- 1. idempotent replays -------------------------------------------------------------------


async def test_duplicates_inside_one_batch_count_once(any_db: Database) -> None:
    first, second = rec(member="alice"), rec(member="bob", is_reply=True)
    writer = await write_batches(any_db, [[first, first, second, first, second]])

    assert (writer.stats.written, writer.stats.duplicates, writer.stats.batches) == (2, 3, 1)
    assert await event_count(any_db) == 2
    day = T0.date()
    assert await days_of(any_db) == {day: DayCounts(day, messages=2, active_members=2, replies=1)}
    alice = await member_day(any_db, day, "alice")
    assert (alice.messages, alice.characters) == (1, 5)


async def test_write_batch_reports_duplicates_of_earlier_batches(any_db: Database) -> None:
    batch = mixed_batch()
    async with any_db.session() as s:
        first = await write_batch(s, batch)
    async with any_db.session() as s:
        again = await write_batch(s, [*batch, batch[0]])
    assert (first.written, first.duplicates) == (5, 0)
    assert (again.written, again.duplicates) == (0, 6)


async def test_replay_in_later_batches_changes_no_counter(any_db: Database) -> None:
    batch = mixed_batch()
    async with running(any_db) as writer:
        await writer.record_many(batch)
        await writer.flush()
        before = await snapshot(any_db)
        # The same records again: whole, split in two batches, and mixed with one new record.
        await writer.record_many(batch)
        await writer.flush()
        await writer.record_many(batch[:2])
        await writer.flush()
        await writer.record_many(batch[2:])
        await writer.flush()
        assert await snapshot(any_db) == before
        assert (writer.stats.written, writer.stats.duplicates) == (5, 10)

        await writer.record_many([batch[1], rec(member="carol"), batch[3]])
        await writer.flush()
    assert (writer.stats.written, writer.stats.duplicates) == (6, 12)
    day = T0.date()
    counts = (await days_of(any_db))[day]
    assert (counts.messages, counts.active_members, counts.reactions) == (3, 3, 1)
    assert (counts.joins, counts.leaves, counts.replies) == (1, 1, 1)


async def test_replay_after_restart_changes_no_counter(any_db: Database) -> None:
    batch = mixed_batch()
    first = await write_batches(any_db, [batch])
    assert first.stats.written == 5
    before = await snapshot(any_db)

    # A fresh writer (empty id cache), as after a restart that replays recent updates.
    restarted = await write_batches(any_db, [batch[::-1], batch[:3]], batch_size=2)
    assert await snapshot(any_db) == before
    assert (restarted.stats.written, restarted.stats.duplicates) == (0, 8)


# --- 2. flushing -------------------------------------------------------------------------------


async def test_stop_commits_everything_queued(any_db: Database) -> None:
    writer = ActivityWriter(any_db, flush_interval=60.0, batch_size=10_000)
    await writer.start()
    await writer.record_many(messages(300, member="alice"))
    await asyncio.sleep(0.01)  # the writer is collecting; a 60 s interval keeps it waiting
    assert await event_count(any_db) == 0

    await writer.stop()
    assert await event_count(any_db) == 300
    assert writer.pending == 0
    assert (writer.stats.written, writer.stats.batches, writer.stats.dropped) == (300, 1, 0)


async def test_flush_returns_once_everything_before_it_is_committed(any_db: Database) -> None:
    async with running(any_db, batch_size=7) as writer:
        await writer.record_many(messages(50))
        await writer.flush()
        assert await event_count(any_db) == 50
        assert writer.pending == 0

        await writer.record_many(messages(25, member="bob"))
        await writer.flush()
        assert await event_count(any_db) == 75
        assert writer.stats.written == 75
        # A flush with nothing queued returns at once.
        await asyncio.wait_for(writer.flush(), 1)


async def test_concurrent_flushes_all_return_after_their_records(any_db: Database) -> None:
    async with running(any_db, batch_size=10) as writer:

        async def producer(member: str) -> int:
            await writer.record_many(messages(40, member=member))
            await writer.flush()
            # Everything this producer recorded is committed when its flush returns.
            async with any_db.session() as s:
                query = (
                    select(func.count())
                    .select_from(ActivityEvent)
                    .join(Member, Member.id == ActivityEvent.member_id)
                    .where(Member.external_id == member)
                )
                return (await s.execute(query)).scalar_one()

        counts = await asyncio.wait_for(asyncio.gather(*(producer(f"m{i}") for i in range(5))), 10)
    assert counts == [40] * 5
    assert await event_count(any_db) == 200


class _GatedCommits:
    """Holds each batch's commit until the test lets it through; records the batch sizes."""

    def __init__(self, writer: ActivityWriter, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        real = writer._commit

        async def commit(batch: list[ActivityRecord], *prepared: Any) -> None:
            self.sizes.append(len(batch))
            self.started.set()
            await self.go.wait()
            self.go.clear()
            await real(batch, *prepared)

        monkeypatch.setattr(writer, "_commit", commit)

    async def next_started(self) -> None:
        await asyncio.wait_for(self.started.wait(), 5)
        self.started.clear()


async def test_flushes_during_a_batch_share_the_next_one_and_wait_for_no_more(
    any_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush never cuts a batch short; flushes that arrive while a batch is written share
    the next batch; and a flush does not wait for records queued after it."""
    writer = ActivityWriter(any_db, flush_interval=60.0, batch_size=10_000)
    gate = _GatedCommits(writer, monkeypatch)
    await writer.start()
    try:
        await writer.record_many(messages(10, member="alice"))
        first = asyncio.create_task(writer.flush())
        await gate.next_started()  # batch 1 (alice's 10) is being written
        await writer.record_many(messages(5, member="bob"))
        second = asyncio.create_task(writer.flush())
        third = asyncio.create_task(writer.flush())
        await writer.record_many(messages(3, member="carol"))
        await asyncio.sleep(0.01)
        assert not first.done()
        gate.go.set()
        await asyncio.wait_for(first, 5)  # its records were all in batch 1
        await gate.next_started()  # batch 2: everything queued, bob's and carol's
        assert not (second.done() or third.done())
        gate.go.set()
        await asyncio.wait_for(asyncio.gather(second, third), 5)
        assert gate.sizes == [10, 8]
        assert await event_count(any_db) == 18
    finally:
        gate.go.set()
        monkeypatch.undo()
        await writer.stop()
    assert writer.stats.written == 18


async def test_a_flush_waits_for_the_batch_holding_its_records_not_later_ones(
    any_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ActivityWriter(any_db, flush_interval=60.0, batch_size=4)
    gate = _GatedCommits(writer, monkeypatch)
    await writer.start()
    try:
        await writer.record_many(messages(6, member="alice"))  # batches of 4 and 2
        flushed = asyncio.create_task(writer.flush())
        await gate.next_started()
        gate.go.set()
        await gate.next_started()
        await writer.record_many(messages(4, member="bob"))  # after the flush: not its own
        gate.go.set()
        await asyncio.wait_for(flushed, 5)
        # Bob's full batch may be under way already; the flush did not wait for it.
        assert gate.sizes[:2] == [4, 2]
        assert await event_count(any_db) == 6
    finally:
        gate.go.set()
        monkeypatch.undo()
        await writer.stop()
    assert await event_count(any_db) == 10


async def test_flush_and_stop_without_a_running_task_write_inline(any_db: Database) -> None:
    writer = ActivityWriter(any_db, batch_size=4)
    await writer.record_many(messages(10))
    await writer.flush()
    assert await event_count(any_db) == 10
    assert writer.stats.batches == 3  # 4 + 4 + 2

    await writer.record_many(messages(3, member="bob"))
    await writer.stop()
    assert await event_count(any_db) == 13


async def test_records_that_race_with_stop_are_not_lost(any_db: Database) -> None:
    """A record queued while `stop()` is flushing must be written, not cancelled in memory."""
    writer = ActivityWriter(any_db, flush_interval=60.0, batch_size=10_000)
    await writer.start()
    await writer.record(rec(key="early"))
    stopping = asyncio.create_task(writer.stop())
    await asyncio.sleep(0)  # stop() has queued its flush; the writer holds "early"
    await writer.record(rec(member="bob", key="late"))
    await asyncio.wait_for(stopping, 5)

    assert await event_keys(any_db) == {"early", "late"}
    assert writer.stats.written == 2
    assert writer.pending == 0


async def test_writer_restarts_after_stop(any_db: Database) -> None:
    writer = ActivityWriter(any_db, flush_interval=60.0)
    await writer.start()
    await writer.record(rec(key="one"))
    await writer.stop()
    await writer.start()
    await writer.record(rec(key="two"))
    await writer.flush()
    assert await event_keys(any_db) == {"one", "two"}
    await writer.stop()
    await writer.stop()  # a second stop is harmless


# --- 3. back-pressure --------------------------------------------------------------------------


def _unreachable() -> OperationalError:
    return OperationalError("INSERT INTO activity_events", {}, ConnectionError("server gone"))


async def test_full_queue_blocks_producers_until_the_database_returns(
    any_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ActivityWriter(
        any_db, batch_size=10, flush_interval=0.01, queue_size=100, retry_delays=(0.01,)
    )
    database_up = asyncio.Event()
    first_failure = asyncio.Event()
    real_commit = writer._commit

    async def flaky_commit(batch: list[ActivityRecord], *prepared: Any) -> None:
        if not database_up.is_set():
            first_failure.set()
            raise _unreachable()
        await real_commit(batch, *prepared)

    monkeypatch.setattr(writer, "_commit", flaky_commit)
    await writer.start()
    records = messages(250, member="alice")
    try:
        await writer.record_many(records[:10])
        await asyncio.wait_for(first_failure.wait(), 5)  # the writer holds these 10 and retries
        await writer.record_many(records[10:110])  # fills the queue without having to wait
        assert writer.pending == 100

        producer = asyncio.create_task(writer.record_many(records[110:]))
        done, _ = await asyncio.wait({producer}, timeout=0.1)
        assert not done, "record_many() returned although the queue was full"
        assert writer.pending == 100
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.record(rec(key="never-queued")), 0.05)
        assert writer.stats.failed_attempts >= 2
        assert await event_count(any_db) == 0

        database_up.set()
        await asyncio.wait_for(producer, 10)
        await asyncio.wait_for(writer.flush(), 10)
    finally:
        database_up.set()
        await writer.stop()

    assert await event_count(any_db) == 250
    assert "never-queued" not in await event_keys(any_db)
    assert (writer.stats.written, writer.stats.dropped, writer.stats.duplicates) == (250, 0, 0)
    assert (await days_of(any_db))[T0.date()].messages == 250


async def test_transient_failures_are_retried_without_loss(
    any_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ActivityWriter(any_db, batch_size=5, retry_delays=(0.001, 0.002))
    real_commit = writer._commit
    failures = iter(range(3))

    async def flaky_commit(batch: list[ActivityRecord], *prepared: Any) -> None:
        if next(failures, None) is not None:
            raise _unreachable()
        await real_commit(batch, *prepared)

    monkeypatch.setattr(writer, "_commit", flaky_commit)
    await writer.start()
    await writer.record_many(messages(23))
    await asyncio.wait_for(writer.stop(), 10)

    assert await event_count(any_db) == 23
    assert writer.stats.failed_attempts == 3
    assert (writer.stats.written, writer.stats.dropped, writer.stats.duplicates) == (23, 0, 0)


async def test_a_batch_whose_connection_broke_is_retried_not_split_and_dropped(
    any_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost connection can surface as a plain `DBAPIError` (asyncpg's
    `ConnectionDoesNotExistError`); SQLAlchemy marks it invalidated, and that is transient."""
    real_write_batch = activity_module.write_batch
    breaks = iter(range(6))  # split in halves, 20 records reach single ones within six

    async def breaking(session: Any, records: Sequence[ActivityRecord], **kwargs: Any) -> Any:
        if next(breaks, None) is not None:
            raise DBAPIError(
                "INSERT INTO activity_events", {}, Exception("connection lost"),
                connection_invalidated=True,
            )  # fmt: skip
        return await real_write_batch(session, records, **kwargs)

    monkeypatch.setattr(activity_module, "write_batch", breaking)
    writer = await write_batches(any_db, [messages(20)], retry_delays=(0.001,))

    assert writer.stats.failed_attempts == 6
    assert (writer.stats.written, writer.stats.dropped, writer.stats.duplicates) == (20, 0, 0)
    assert await event_count(any_db) == 20


# --- 4. poison records -------------------------------------------------------------------------


async def test_a_refused_record_is_dropped_and_the_rest_lands(
    any_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_batch = activity_module.write_batch

    async def refusing(session: Any, records: Sequence[ActivityRecord], **kwargs: Any) -> Any:
        # Fail after the real writes, so the refused transaction must roll all of them back.
        result = await real_write_batch(session, records, **kwargs)
        if any(r.event_key == "poison" for r in records):
            raise IntegrityError("INSERT INTO activity_events", {}, ValueError("refused"))
        return result

    monkeypatch.setattr(activity_module, "write_batch", refusing)
    batch = messages(20)
    batch[13] = batch[13]._replace(event_key="poison", member_key="mallory")
    writer = await write_batches(any_db, [batch])

    assert writer.stats.dropped == 1
    assert (writer.stats.written, writer.stats.duplicates) == (19, 0)
    keys = await event_keys(any_db)
    assert len(keys) == 19
    assert "poison" not in keys
    counts = (await days_of(any_db))[T0.date()]
    assert (counts.messages, counts.active_members) == (19, 1)
    async with any_db.session() as s:
        names = set((await s.execute(select(Member.external_id))).scalars())
    assert names == {"alice"}  # the refused record's member was rolled back too


async def test_a_record_the_driver_cannot_bind_is_dropped(any_db: Database) -> None:
    good = messages(6)
    naive = good[2]._replace(event_key="naive", at=datetime(2026, 11, 20, 12, 30))
    writer = await write_batches(any_db, [[*good[:3], naive, *good[3:]]])

    assert writer.stats.dropped == 1
    assert writer.stats.written == 6
    assert await event_keys(any_db) == {r.event_key for r in good}


# --- 5. rollups equal a recount of raw events -------------------------------------------------

ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata", "Pacific/Chatham")


def random_stream(rng: random.Random, prefix: str, n: int) -> list[ActivityRecord]:
    """Members talking, replying, reacting, joining and leaving in several communities.

    The days straddle the end of daylight saving time in New York (2026-11-01).
    """
    start = datetime(2026, 10, 30, 0, 0, tzinfo=UTC)
    kinds = [ActivityKind.MESSAGE] * 6 + [ActivityKind.REACTION] * 3
    kinds += [ActivityKind.JOIN, ActivityKind.LEAVE]
    stream = []
    for i in range(n):
        kind = rng.choice(kinds)
        stream.append(
            rec(
                kind,
                community=f"{prefix}-g{rng.randrange(3)}",
                chat=f"c{rng.randrange(3)}",
                member=f"{prefix}-m{rng.randrange(12)}",
                at=start + timedelta(minutes=rng.randrange(5 * 24 * 60)),
                key=f"{prefix}-e{i}",
                length=rng.randrange(0, 300),
                is_reply=kind is ActivityKind.MESSAGE and rng.random() < 0.3,
            )
        )
    return stream


def with_duplicates_and_splits(
    rng: random.Random, stream: list[ActivityRecord]
) -> list[list[ActivityRecord]]:
    """The stream shuffled, with random repeats, cut into random batches."""
    noisy = stream + [rng.choice(stream) for _ in range(len(stream) // 4)]
    rng.shuffle(noisy)
    batches, i = [], 0
    while i < len(noisy):
        size = rng.randint(1, 60)
        batch = noisy[i : i + size]
        if rng.random() < 0.3:
            batch.append(rng.choice(batch))  # a duplicate inside the batch
        batches.append(batch)
        i += size
    return batches


def expected_rollups(
    records: Iterable[ActivityRecord], zones: dict[str, str]
) -> tuple[dict[str, dict[date, DayCounts]], dict[tuple[str, date, str], tuple[int, ...]]]:
    """The counters computed in Python from the unique records (the oracle)."""
    unique = {(r.community_key, r.chat_key, r.event_key): r for r in records}
    days: dict[str, dict[date, dict[str, int]]] = {}
    active: dict[tuple[str, date], set[str]] = {}
    member_days: dict[tuple[str, date, str], list[int]] = {}
    for r in unique.values():
        day = r.at.astimezone(ZoneInfo(zones[r.community_key])).date()
        t = days.setdefault(r.community_key, {}).setdefault(
            day, dict.fromkeys(("messages", "joins", "leaves", "reactions", "replies"), 0)
        )
        if r.kind is ActivityKind.MESSAGE:
            t["messages"] += 1
            t["replies"] += int(r.is_reply)
            active.setdefault((r.community_key, day), set()).add(r.member_key)
            m = member_days.setdefault((r.community_key, day, r.member_key), [0, 0, 0, 0])
            m[0] += 1
            m[2] += int(r.is_reply)
            m[3] += r.length
        elif r.kind is ActivityKind.REACTION:
            t["reactions"] += 1
            m = member_days.setdefault((r.community_key, day, r.member_key), [0, 0, 0, 0])
            m[1] += 1
        elif r.kind is ActivityKind.JOIN:
            t["joins"] += 1
        else:
            t["leaves"] += 1
    counts = {
        community: {
            day: DayCounts(
                day,
                t["messages"],
                len(active.get((community, day), ())),
                t["joins"],
                t["leaves"],
                t["reactions"],
                t["replies"],
            )
            for day, t in by_day.items()
        }
        for community, by_day in days.items()
    }
    return counts, {k: tuple(v) for k, v in member_days.items()}


async def assert_rollups_match(
    db: Database, records: Sequence[ActivityRecord], zones: dict[str, str]
) -> None:
    expected_days, expected_member_days = expected_rollups(records, zones)
    async with db.session() as s:
        for key, tz in zones.items():
            ids = select(Community.id, Community.timezone).where(
                Community.platform == PLATFORM, Community.external_id == key
            )
            cid, stored_tz = (await s.execute(ids)).one()
            assert stored_tz == tz
            stored = await stored_days(s, cid)
            assert stored == await recount_from_events(s, cid, tz), key
            assert stored == expected_days.get(key, {}), key

            # Member days against a recount of raw events per (day, member).
            raw = select(
                Member.external_id,
                ActivityEvent.kind,
                ActivityEvent.is_reply,
                ActivityEvent.length,
                ActivityEvent.occurred_at,
            ).join(Member, Member.id == ActivityEvent.member_id)
            recount: dict[tuple[str, date, str], list[int]] = {}
            for member, kind, is_reply, length, at in await s.execute(
                raw.where(ActivityEvent.community_id == cid)
            ):
                if kind not in (ActivityKind.MESSAGE, ActivityKind.REACTION):
                    continue
                day = at.astimezone(ZoneInfo(tz)).date()
                m = recount.setdefault((key, day, member), [0, 0, 0, 0])
                if kind == ActivityKind.MESSAGE:
                    m[0] += 1
                    m[2] += int(is_reply)
                    m[3] += length
                else:
                    m[1] += 1
            rows = select(
                Member.external_id,
                MemberDay.day,
                MemberDay.messages,
                MemberDay.reactions,
                MemberDay.replies,
                MemberDay.characters,
            ).join(Member, Member.id == MemberDay.member_id)
            stored_members = {
                (key, day, member): counters
                for member, day, *counters in await s.execute(
                    rows.where(MemberDay.community_id == cid)
                )
            }
            mine = {k: v for k, v in expected_member_days.items() if k[0] == key}
            assert {k: tuple(v) for k, v in recount.items()} == mine, key
            assert {k: tuple(v) for k, v in stored_members.items()} == mine, key

            # First and latest message day per membership, kept at write time.
            posted: dict[str, list[date]] = {}
            for (_, day, member), counters in mine.items():
                if counters[0]:
                    posted.setdefault(member, []).append(day)
            spans = select(
                Member.external_id,
                Membership.first_posted_on,
                Membership.last_posted_on,
                Membership.recent_posts_day,
                Membership.recent_posts,
            ).join(Member, Member.id == Membership.member_id)
            stored_spans = {
                member: (first, last, day, mask)
                for member, first, last, day, mask in await s.execute(
                    spans.where(Membership.community_id == cid)
                )
                if first is not None or last is not None or day is not None or mask
            }
            assert stored_spans == {
                m: (min(d), max(d), *(postdays.mask_of(d) or ())) for m, d in posted.items()
            }, key


@pytest.mark.parametrize("seed", [7, 2026])
async def test_rollups_equal_a_recount_of_raw_events(any_db: Database, seed: int) -> None:
    rng = random.Random(seed)
    prefix = f"s{seed}"
    zones = {f"{prefix}-g{i}": ZONES[(seed + i) % len(ZONES)] for i in range(3)}
    for key, tz in zones.items():
        await create_community(any_db, key, tz)
    stream = random_stream(rng, prefix, 700)
    batches = with_duplicates_and_splits(rng, stream)

    # Half through one writer, then a "restart": the rest through a fresh one.
    half = len(batches) // 2
    first = await write_batches(any_db, batches[:half])
    second = await write_batches(any_db, batches[half:], batch_size=rng.randint(5, 40))

    total = sum(len(b) for b in batches)
    assert first.stats.written + second.stats.written == len(stream)
    assert first.stats.duplicates + second.stats.duplicates == total - len(stream)
    assert first.stats.dropped == second.stats.dropped == 0
    await assert_rollups_match(any_db, stream, zones)


_example = itertools.count()
_event = st.tuples(
    st.sampled_from(list(ActivityKind)),
    st.integers(0, 1),  # community
    st.integers(0, 1),  # chat
    st.integers(0, 3),  # member
    st.integers(0, 3 * 24 * 60 - 1),  # minute
    st.booleans(),  # reply
    st.integers(0, 40),  # length
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(_event, min_size=1, max_size=40),
    zone_names=st.tuples(st.sampled_from(ZONES), st.sampled_from(ZONES)),
    cuts=st.lists(st.integers(0, 40), max_size=6),
    repeats=st.lists(st.integers(0, 39), max_size=10),
)
async def test_rollups_match_for_any_stream_and_split(
    any_db: Database,
    events: list[tuple[ActivityKind, int, int, int, int, bool, int]],
    zone_names: tuple[str, str],
    cuts: list[int],
    repeats: list[int],
) -> None:
    # The database lives across examples: each example gets its own communities and members.
    prefix = f"h{next(_example)}"
    zones = {f"{prefix}-g{i}": tz for i, tz in enumerate(zone_names)}
    for key, tz in zones.items():
        await create_community(any_db, key, tz)
    start = datetime(2026, 10, 31, 0, 0, tzinfo=UTC)
    stream = [
        rec(
            kind,
            community=f"{prefix}-g{g}",
            chat=f"c{c}",
            member=f"{prefix}-m{m}",
            at=start + timedelta(minutes=minute),
            key=f"{prefix}-e{i}",
            is_reply=reply,
            length=length,
        )
        for i, (kind, g, c, m, minute, reply, length) in enumerate(events)
    ]
    noisy = stream + [stream[i % len(stream)] for i in repeats]
    bounds = sorted({0, len(noisy), *(min(c, len(noisy)) for c in cuts)})
    batches = [noisy[a:b] for a, b in itertools.pairwise(bounds)]

    writer = await write_batches(any_db, batches)
    assert writer.stats.written == len(stream)
    assert writer.stats.duplicates == len(noisy) - len(stream)
    await assert_rollups_match(any_db, stream, zones)


# --- 6. local days -----------------------------------------------------------------------------


async def test_events_are_bucketed_by_the_community_local_day(any_db: Database) -> None:
    await create_community(any_db, "shanghai", "Asia/Shanghai")
    await create_community(any_db, "utc", "UTC")
    late = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    await write_batches(
        any_db,
        [
            [
                rec(community="shanghai", at=late, is_reply=True),
                rec(community="utc", at=late),
                rec(ActivityKind.JOIN, community="shanghai", member="bob", at=late),
            ]
        ],
    )
    nov20, nov21 = date(2026, 11, 20), date(2026, 11, 21)
    assert await days_of(any_db, "shanghai") == {
        nov21: DayCounts(nov21, messages=1, active_members=1, joins=1, replies=1)
    }
    assert await days_of(any_db, "utc") == {nov20: DayCounts(nov20, messages=1, active_members=1)}
    assert await member_day(any_db, nov21, community="shanghai") is not None
    assert await member_day(any_db, nov20, community="shanghai") is None
    assert await member_day(any_db, nov20, community="utc") is not None


async def test_new_communities_get_the_writer_default_time_zone(any_db: Database) -> None:
    late = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    await write_batches(any_db, [[rec(at=late)]], defaults=CommunityDefaults("Asia/Shanghai", "zh"))
    async with any_db.session() as s:
        community = await s.get(Community, await community_id(any_db))
    assert community is not None
    assert (community.timezone, community.locale) == ("Asia/Shanghai", "zh")
    assert set(await days_of(any_db)) == {date(2026, 11, 21)}


async def test_a_time_zone_changed_between_batches_counts_the_next_batch_in_the_new_one(
    any_db: Database,
) -> None:
    """The writer prepares a batch in the zone it last read; the batch checks it in its
    transaction, so a manager's change applies from the next batch on."""
    late = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # Nov 21 in Shanghai
    async with running(any_db) as writer:
        await writer.record(rec(at=late - timedelta(hours=12)))
        await writer.flush()
        async with any_db.session() as s:
            community = await s.get(Community, await community_id(any_db))
            assert community is not None
            community.timezone = "Asia/Shanghai"
        await writer.record(rec(at=late))
        await writer.flush()
    assert await days_of(any_db) == {
        date(2026, 11, 20): DayCounts(date(2026, 11, 20), messages=1, active_members=1),
        date(2026, 11, 21): DayCounts(date(2026, 11, 21), messages=1, active_members=1),
    }


async def test_batches_are_prepared_while_the_one_before_commits(
    any_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch k+1 is worked out during batch k's commit, and is written after it, in order."""
    writer = ActivityWriter(any_db, flush_interval=60.0, batch_size=3)
    gate = _GatedCommits(writer, monkeypatch)
    prepared: list[int] = []
    real_prepare = writer._prepare

    def noting_prepare(batch: list[ActivityRecord]) -> Any:
        prepared.append(len(batch))
        return real_prepare(batch)

    monkeypatch.setattr(writer, "_prepare", noting_prepare)
    await writer.start()
    try:
        await writer.record_many(messages(5, member="alice"))
        done = asyncio.create_task(writer.flush())
        await gate.next_started()  # batch 1 (3 records) is in its transaction
        await asyncio.sleep(0.01)
        assert prepared == [3]  # batch 2 waits for batch 1 to reach its commit
        gate.go.set()
        await gate.next_started()  # batch 2 started once batch 1 committed
        assert prepared == [3, 2]
        assert await event_count(any_db) == 3
        gate.go.set()
        await asyncio.wait_for(done, 5)
        assert gate.sizes == [3, 2]
        assert await event_count(any_db) == 5
    finally:
        gate.go.set()
        monkeypatch.undo()
        await writer.stop()


@pytest.mark.timeout(10)
async def test_a_stop_that_meets_a_batch_finishing_in_the_same_step_ends(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch ends and the stop wakes the writer in one loop step: the writer counts the
    batch as written before it decides whether anything is left, and does not spin."""
    writer = ActivityWriter(db, flush_interval=60.0, batch_size=1)
    release = asyncio.get_running_loop().create_future()
    entered = asyncio.Event()
    committed: list[int] = []

    async def held_commit(batch: list[ActivityRecord], *prepared: Any) -> None:
        entered.set()
        await release
        committed.append(len(batch))

    monkeypatch.setattr(writer, "_commit", held_commit)
    await writer.start()
    await writer.record(rec())
    await asyncio.wait_for(entered.wait(), 5)
    await asyncio.sleep(0.01)  # the writer waits for more records
    task = writer._task
    assert task is not None
    release.set_result(None)  # the commit resumes first in the next step ...
    await writer.stop()  # ... and the writer, woken by the stop, right after it
    # A spinning writer is only ended by the timeout's exception, raised inside its task.
    assert task.exception() is None
    assert committed == [1]
    assert writer._done == 1


# --- 7. active members -------------------------------------------------------------------------


async def test_a_member_is_active_once_per_day_whatever_the_batches(any_db: Database) -> None:
    day, next_day = T0.date(), T0.date() + timedelta(days=1)
    batches = [
        [rec(member="alice", at=T0)],
        [rec(member="alice", at=T0 + timedelta(hours=1), chat="c2")],
        [rec(member="alice", at=T0 + timedelta(hours=2)), rec(member="alice", at=T0)],
        [rec(member="alice", at=T0 + timedelta(days=1))],
    ]
    await write_batches(any_db, batches)
    days = await days_of(any_db)
    assert days[day] == DayCounts(day, messages=4, active_members=1)
    assert days[next_day] == DayCounts(next_day, messages=1, active_members=1)


async def test_reactions_alone_do_not_make_a_member_active(any_db: Database) -> None:
    day = T0.date()
    reactions = [
        rec(ActivityKind.REACTION, member="bob", at=T0 + timedelta(minutes=i)) for i in range(3)
    ]
    await write_batches(any_db, [[rec(member="alice")], reactions[:2], reactions[2:]])
    assert (await days_of(any_db))[day] == DayCounts(day, messages=1, active_members=1, reactions=3)
    bob = await member_day(any_db, day, "bob")
    assert (bob.messages, bob.reactions) == (0, 3)

    # Bob's first message comes after his reaction-only row exists: now he is active.
    await write_batches(any_db, [[rec(member="bob", at=T0 + timedelta(hours=1))]])
    await write_batches(any_db, [[rec(member="bob", at=T0 + timedelta(hours=2))]])
    assert (await days_of(any_db))[day] == DayCounts(day, messages=3, active_members=2, reactions=3)


async def test_joins_and_leaves_do_not_make_a_member_active(any_db: Database) -> None:
    await write_batches(
        any_db,
        [[rec(ActivityKind.JOIN, member="bob"), rec(ActivityKind.LEAVE, member="bob")]],
    )
    day = T0.date()
    assert (await days_of(any_db))[day] == DayCounts(day, joins=1, leaves=1)
    assert await member_day(any_db, day, "bob") is None


# --- 8. memberships ----------------------------------------------------------------------------


async def test_membership_times_survive_out_of_order_batches(any_db: Database) -> None:
    h = timedelta(hours=1)
    batches = [
        [rec(at=T0 + 48 * h), rec(ActivityKind.JOIN, at=T0 + 5 * h)],
        [rec(at=T0), rec(ActivityKind.LEAVE, at=T0 + 3 * h)],
        [rec(ActivityKind.REACTION, at=T0 + 24 * h), rec(ActivityKind.JOIN, at=T0 - 24 * h)],
        [rec(ActivityKind.LEAVE, at=T0 + 2 * h), rec(at=T0 + 47 * h)],
    ]
    await write_batches(any_db, batches)
    row = await membership(any_db)
    assert row.first_seen_at == T0 - 24 * h  # the late-arriving join is the earliest sighting
    assert row.last_seen_at == T0 + 48 * h
    assert row.joined_at == T0 + 5 * h  # latest join wins over an older one arriving later
    assert row.left_at == T0 + 3 * h


async def test_membership_times_inside_one_shuffled_batch(any_db: Database) -> None:
    rng = random.Random(5)
    offsets = list(range(-30, 30))
    rng.shuffle(offsets)
    at = [T0 + timedelta(hours=o) for o in offsets]
    kinds = [ActivityKind.MESSAGE, ActivityKind.REACTION, ActivityKind.JOIN, ActivityKind.LEAVE]
    batch = [rec(kinds[i % 4], at=when) for i, when in enumerate(at)]
    await write_batches(any_db, [batch])

    row = await membership(any_db)
    joins = [r.at for r in batch if r.kind is ActivityKind.JOIN]
    leaves = [r.at for r in batch if r.kind is ActivityKind.LEAVE]
    assert (row.first_seen_at, row.last_seen_at) == (min(at), max(at))
    assert (row.joined_at, row.left_at) == (max(joins), max(leaves))


async def test_membership_without_join_or_leave_keeps_them_empty(any_db: Database) -> None:
    await write_batches(any_db, [[rec(community="g1"), rec(community="g2", at=T0 + timedelta(1))]])
    one, two = await membership(any_db, community="g1"), await membership(any_db, community="g2")
    assert (one.first_seen_at, one.last_seen_at, one.joined_at, one.left_at) == (T0, T0, None, None)
    assert (two.first_seen_at, two.last_seen_at) == (T0 + timedelta(1), T0 + timedelta(1))


# --- 9. member names ---------------------------------------------------------------------------


async def stored_member(db: Database, key: str = "alice") -> tuple[str, str | None]:
    async with db.session() as s:
        query = select(Member.display_name, Member.username).where(Member.external_id == key)
        name, username = (await s.execute(query)).one()
    return name, username


async def test_a_renamed_member_gets_the_new_name_when_not_cached(any_db: Database) -> None:
    await write_batches(any_db, [[rec(name="Alice", username="alice")]])
    assert await stored_member(any_db) == ("Alice", "alice")
    # A fresh writer (restart, or the member fell out of the LRU cache) sees the new name.
    await write_batches(any_db, [[rec(name="Alice Liddell", username="liddell")]])
    assert await stored_member(any_db) == ("Alice Liddell", "liddell")
    async with any_db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Member))).scalar_one() == 1


async def test_write_batch_without_a_cache_always_refreshes_names(any_db: Database) -> None:
    for name in ("Alice", "Al", "Alice"):
        async with any_db.session() as s:
            await write_batch(s, [rec(name=name)], cache=IdCache())
        assert (await stored_member(any_db))[0] == name


async def test_a_rename_inside_one_batch_keeps_the_latest_name(any_db: Database) -> None:
    await write_batches(
        any_db,
        [
            [
                rec(name="Alice", at=T0),
                rec(name="Alicia", at=T0 + timedelta(minutes=5)),
                rec(name="Alice (old)", at=T0 - timedelta(minutes=5)),
            ]
        ],
    )
    assert (await stored_member(any_db))[0] == "Alicia"
    async with any_db.session() as s:
        first_seen = (await s.execute(select(Member.first_seen_at))).scalar_one()
    assert first_seen == T0 - timedelta(minutes=5)


async def test_a_rename_is_stored_while_the_member_is_cached(any_db: Database) -> None:
    """The cache remembers names, so a running writer stores a rename without a restart."""
    async with running(any_db) as writer:
        await writer.record(rec(name="Alice"))
        await writer.flush()
        await writer.record(rec(name="Alicia"))
        await writer.flush()
        assert writer.stats.written == 2
    assert (await stored_member(any_db))[0] == "Alicia"


# --- scale -------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_full_batch_of_distinct_members_is_written_in_one_go(pg_db: Database) -> None:
    """The largest batch the config allows (10 000), every record from a new member.

    A single row-value `IN` over 10 000 member keys made PostgreSQL fail the whole batch with
    "stack depth limit exceeded" (SQLite copes, so this runs on PostgreSQL only).
    """
    at = [T0 + timedelta(seconds=i) for i in range(10_000)]
    records = [rec(member=f"m{i}", chat=f"c{i % 2000}", at=at[i]) for i in range(10_000)]
    writer = await write_batches(pg_db, [records])
    stats = writer.stats
    assert (stats.written, stats.failed_attempts, stats.batches, stats.dropped) == (10_000, 0, 1, 0)
    assert (await days_of(pg_db))[T0.date()].active_members == 10_000


async def test_id_lookups_in_small_chunks_find_exactly_the_wanted_rows(
    any_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lookups match (a, b) pairs with two plain `IN`s per chunk and filter the superset."""
    monkeypatch.setattr(activity_module, "_LOOKUP_CHUNK", 3)
    # The same chat and member keys in several communities: the superset has foreign pairs.
    first = [rec(community=g, chat=c, member=m) for g in "xy" for c in "ab" for m in "pqrs"]
    await write_batches(any_db, [first])
    second = [rec(community=g, chat=c, member=m) for g in "xyz" for c in "abc" for m in "pqrst"]
    writer = await write_batches(any_db, [second])
    assert writer.stats.written == len(second)

    async with any_db.session() as s:
        pairs = select(Community.external_id, Chat.external_id, Member.external_id).select_from(
            ActivityEvent
        )
        pairs = pairs.join(Community, Community.id == ActivityEvent.community_id)
        pairs = pairs.join(Chat, Chat.id == ActivityEvent.chat_id)
        pairs = pairs.join(Member, Member.id == ActivityEvent.member_id)
        stored = sorted(tuple(row) for row in await s.execute(pairs))
        chats = (await s.execute(select(func.count()).select_from(Chat))).scalar_one()
        wrong = select(func.count()).select_from(ActivityEvent).join(Chat)
        wrong = wrong.where(Chat.community_id != ActivityEvent.community_id)
        mismatched = (await s.execute(wrong)).scalar_one()
    expected = sorted((r.community_key, r.chat_key, r.member_key) for r in first + second)
    assert stored == expected
    assert chats == 9
    assert mismatched == 0


# --- several writers, conflicts --------------------------------------------------------------


async def test_a_deadlock_is_retried_not_isolated(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL breaks deadlocks by aborting one side (SQLSTATE 40P01): replay the batch."""
    from sqlalchemy.exc import DBAPIError

    class Deadlock(Exception):
        sqlstate = "40P01"

    real = activity_module.write_batch
    failures = iter([True])

    async def deadlocking(session: Any, records: Any, **kwargs: Any) -> Any:
        result = await real(session, records, **kwargs)
        if next(failures, False):
            raise DBAPIError("UPDATE member_days ...", {}, Deadlock("deadlock detected"))
        return result

    monkeypatch.setattr(activity_module, "write_batch", deadlocking)
    async with running(db, retry_delays=(0.01,)) as writer:
        await writer.record_many(messages(20))
    assert (writer.stats.written, writer.stats.failed_attempts, writer.stats.dropped) == (20, 1, 0)
    assert writer.stats.batches == 1  # one whole retry, not a split into halves
    assert (await days_of(db))[T0.date()].messages == 20


@pytest.mark.postgres
async def test_two_writers_sharing_postgresql_keep_exact_rollups(pg_db: Database) -> None:
    """Two instances write interleaved halves of one stream touching the same rows."""
    rng = random.Random(5)
    stream = [
        rec(
            rng.choice([ActivityKind.MESSAGE] * 8 + [ActivityKind.REACTION]),
            member=f"m{rng.randrange(40)}",
            community=f"g{rng.randrange(3)}",
            chat=f"c{rng.randrange(3)}",
            at=T0 + timedelta(minutes=rng.randrange(3 * 24 * 60)),
        )
        for _ in range(3000)
    ]
    writers = [ActivityWriter(pg_db, batch_size=100, flush_interval=0.01) for _ in range(2)]
    for writer in writers:
        await writer.start()
    await asyncio.gather(*(w.record_many(stream[i::2]) for i, w in enumerate(writers)))
    for writer in writers:
        await writer.stop()
    assert sum(w.stats.written for w in writers) == len(stream)
    assert sum(w.stats.dropped for w in writers) == 0
    for g in ("g0", "g1", "g2"):
        cid = await community_id(pg_db, g)
        async with pg_db.session() as s:
            assert await stored_days(s, cid) == await recount_from_events(s, cid, "UTC")


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_posting_day_mask_survives_any_arrival_order(any_db: Database, seed: int) -> None:
    # Posts over 100 days, far apart and close together, written in shuffled batches: the
    # stored mask is the one of all the days, whatever order they arrived in.
    rng = random.Random(seed)
    days = sorted(rng.sample(range(100), 25))
    records = [
        rec(at=T0 + timedelta(days=d, minutes=m), key=f"mask:{seed}:{d}:{m}")
        for d in days
        for m in range(rng.randint(1, 3))
    ]
    rng.shuffle(records)
    cuts = sorted(rng.sample(range(1, len(records)), 6))
    for batch in (records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)):
        await write_batches(any_db, [batch])
    row = await membership(any_db)
    posted = [T0.date() + timedelta(days=d) for d in days]
    assert (row.first_posted_on, row.last_posted_on) == (min(posted), max(posted))
    assert (row.recent_posts_day, row.recent_posts) == postdays.mask_of(posted)
    assert row.recent_posts_day == postdays.day_number(max(posted))
    assert row.recent_posts.bit_count() == sum(1 for d in posted if (max(posted) - d).days < 62)
