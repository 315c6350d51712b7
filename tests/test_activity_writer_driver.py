"""The activity writer's driver path: SQL bound as plain tuples (`storage.activity._upsert`).

What the fast path must keep from the SQLAlchemy Core path it replaced: the same stored
formats (SQLite text timestamps and dates), replays that count once even mixed with new events,
exact local days and hours without one `astimezone` per event, SQLAlchemy's exception classes
(the writer retries or isolates by them), and no silent truncation on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime, event, func, select, text
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError, OperationalError

from storage.activity import (
    ActivityKind,
    ActivityWriter,
    IdCache,
    _LocalTime,
    _sqlite_call,
    _sqlite_time,
    write_batch,
)
from storage.db import Database
from storage.metrics import recount_from_events, stored_days
from storage.models import CommunityHour, Membership
from tests.test_activity_writer import (
    T0,
    community_id,
    create_community,
    days_of,
    event_count,
    member_day,
    member_id,
    membership,
    messages,
    rec,
    write_batches,
)

# --- stored formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")),
    ],
)
def test_sqlite_time_is_what_sqlalchemy_stores(at: datetime) -> None:
    """Text comparison in the membership merge needs one format for every writer."""
    dialect = sqlite_dialect.dialect()
    process = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert _sqlite_time(at) == process(at.astimezone(UTC).replace(tzinfo=None))


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Kolkata")]),
    )
)
def test_sqlite_time_matches_sqlalchemy_for_any_instant(at: datetime) -> None:
    dialect = sqlite_dialect.dialect()
    process = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert _sqlite_time(at) == process(at.astimezone(UTC).replace(tzinfo=None))


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        _sqlite_time(datetime(2026, 1, 2, 3, 4, 5))


async def test_membership_written_by_the_orm_merges_with_driver_rows(db: Database) -> None:
    """A membership stored through SQLAlchemy (no microseconds) and merged by the writer."""
    await write_batches(db, [[rec(at=T0)]])
    cid, mid = await community_id(db), await member_id(db)
    async with db.session() as s:
        row = await s.get(Membership, (cid, mid))
        assert row is not None
        row.first_seen_at = T0 - timedelta(days=1)
        row.last_seen_at = T0 + timedelta(seconds=30)
    later = T0 + timedelta(seconds=30, microseconds=1)
    await write_batches(db, [[rec(at=T0 - timedelta(hours=1)), rec(at=later)]])
    stored = await membership(db)
    assert stored.first_seen_at == T0 - timedelta(days=1)
    assert stored.last_seen_at == later
    async with db.session() as s:
        raw = (await s.execute(text("SELECT last_seen_at FROM memberships"))).scalar_one()
    assert raw == "2026-11-20 12:00:30.000001"


# --- replays mixed with new events ------------------------------------------------------------


async def test_a_batch_mixing_new_and_replayed_events_counts_only_the_new(
    any_db: Database,
) -> None:
    first = messages(6, member="alice") + messages(2, member="bob", length=7)
    await write_batches(any_db, [first])
    new = [rec(member="carol", at=T0 + timedelta(hours=1), length=3), rec(member="alice")]
    replayed = [first[0], first[3], first[7]]
    mixed = [replayed[0], new[0], replayed[1], new[1], replayed[2], replayed[1]]
    writer = await write_batches(any_db, [mixed])

    assert (writer.stats.written, writer.stats.duplicates) == (2, 4)
    assert await event_count(any_db) == 10
    counts = (await days_of(any_db))[T0.date()]
    assert (counts.messages, counts.active_members) == (10, 3)
    alice = await member_day(any_db, T0.date(), "alice")
    assert (alice.messages, alice.characters) == (7, 35)
    bob = await member_day(any_db, T0.date(), "bob")
    assert (bob.messages, bob.characters) == (2, 14)
    async with any_db.session() as s:
        cid = await community_id(any_db)
        assert await stored_days(s, cid) == await recount_from_events(s, cid, "UTC")
        hours = dict((await s.execute(select(CommunityHour.hour, CommunityHour.messages))).all())
    assert hours == {12: 9, 13: 1}


async def test_member_ids_come_back_from_the_upsert_new_or_stored(any_db: Database) -> None:
    """Members come back from the upsert itself (no second lookup), new or already stored."""
    await write_batches(any_db, [[rec(member="alice")]])
    async with any_db.sessions() as session, session.begin():
        result = await write_batch(
            session, [rec(member="alice"), rec(member="bob")], cache=IdCache()
        )
        learned = session.info["activity_learned"]
    members = {key[2]: value[0] for key, value in learned.items() if key[0] == "member"}
    assert result.written == 2
    assert members == {
        "alice": await member_id(any_db, "alice"),
        "bob": await member_id(any_db, "bob"),
    }


# --- local days and hours ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "tz",
    ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Australia/Lord_Howe"],
)
def test_local_time_equals_astimezone_across_offset_changes(tz: str) -> None:
    """Every 7 minutes through the autumn and spring changes (Lord Howe moves by 30 minutes)."""
    local = _LocalTime()
    zone = ZoneInfo(tz)
    for start in (datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC)):
        for n in range(0, 60 * 24 * 40, 7):
            at = start + timedelta(minutes=n, microseconds=n)
            expected = at.astimezone(zone)
            assert local.of(at, tz) == (expected.date(), expected.hour), at


@pytest.mark.parametrize("tz", ["Europe/Amsterdam", "Asia/Kolkata", "America/St_Johns"])
def test_local_time_is_exact_at_quarter_edges_and_odd_historical_offsets(tz: str) -> None:
    """A microsecond either side of every quarter hour, today and in 1910 (Amsterdam was
    +0:19:32 then: local hours did not start on any UTC quarter)."""
    local = _LocalTime()
    zone = ZoneInfo(tz)
    tick = timedelta(microseconds=1)
    for start in (datetime(1910, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)):
        for n in range(3 * 24 * 4):
            edge = start + timedelta(minutes=15 * n)
            for at in (edge - tick, edge, edge + tick):
                expected = at.astimezone(zone)
                assert local.of(at, tz) == (expected.date(), expected.hour), at


def test_local_time_accepts_instants_in_any_zone() -> None:
    at = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1)
    assert _LocalTime().of(at, "UTC") == (date(2026, 11, 1), 6)


async def test_hours_across_a_dst_change_match_a_recount(any_db: Database) -> None:
    await create_community(any_db, "g1", "America/New_York")
    start = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT; 01:00 happens twice
    stream = [rec(at=start + timedelta(minutes=10 * i)) for i in range(30)]
    random.Random(3).shuffle(stream)
    await write_batches(any_db, [stream[:13], stream[13:]])
    zone = ZoneInfo("America/New_York")
    expected: dict[tuple[date, int], int] = {}
    for r in stream:
        local = r.at.astimezone(zone)
        expected[(local.date(), local.hour)] = expected.get((local.date(), local.hour), 0) + 1
    async with any_db.session() as s:
        rows = select(CommunityHour.day, CommunityHour.hour, CommunityHour.messages)
        stored = {(d, h): m for d, h, m in await s.execute(rows)}
    assert stored == expected
    assert stored[(date(2026, 11, 1), 1)] == 12  # both 01:00 hours in one bucket


# --- errors keep SQLAlchemy's classes -----------------------------------------------------------


async def test_sqlite_driver_errors_are_wrapped_like_sqlalchemy_wraps_them() -> None:
    async def locked(sql: str, params: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    async def duplicate(sql: str, params: object) -> None:
        raise sqlite3.IntegrityError("UNIQUE constraint failed")

    with pytest.raises(OperationalError) as caught:
        await _sqlite_call(locked, "INSERT …", [])
    assert isinstance(caught.value.orig, sqlite3.OperationalError)
    with pytest.raises(IntegrityError):
        await _sqlite_call(duplicate, "INSERT …", [])


async def test_a_locked_sqlite_database_is_retried_not_dropped(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the write lock is transient: the batch waits and lands."""
    await write_batches(db, [[rec()]])  # the schema and the community exist
    impatient = Database(db.url)
    # After the pragmas of `storage.db`: give up on the lock after 50 ms, not 10 s.
    event.listen(impatient.engine.sync_engine, "connect", _busy_timeout_50ms)
    blocker = sqlite3.connect(str(db.url.database), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        writer = ActivityWriter(
            impatient, batch_size=100, flush_interval=60.0, retry_delays=(0.05,)
        )
        failed = asyncio.Event()
        commit = writer._commit

        async def noting_failures(batch: list[Any], *prepared: Any) -> None:
            try:
                await commit(batch, *prepared)
            except Exception:
                failed.set()
                raise

        monkeypatch.setattr(writer, "_commit", noting_failures)
        await writer.start()
        await writer.record_many(messages(5, member="bob"))
        flushed = asyncio.ensure_future(writer.flush())
        async with asyncio.timeout(30):
            await failed.wait()
        blocker.execute("ROLLBACK")
        await flushed
        await writer.stop()
    finally:
        blocker.close()
        await impatient.dispose()
    assert (writer.stats.written, writer.stats.dropped) == (5, 0)
    assert await event_count(db) == 6


def _busy_timeout_50ms(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=50")
    cursor.close()


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_too_long_content_is_refused_not_cut_short(pg_db: Database) -> None:
    """The arrays are cast to unbounded types, so VARCHAR(16) still refuses 17 characters."""
    good = messages(4)
    bad = good[1]._replace(event_key="long", content="x" * 17)
    writer = await write_batches(pg_db, [[good[0], bad, *good[1:]]])
    assert (writer.stats.written, writer.stats.dropped) == (4, 1)


@pytest.mark.postgres
async def test_concurrent_writers_replaying_one_stream_count_each_event_once(
    pg_db: Database,
) -> None:
    """Four writers each write the whole stream (in different orders) at the same time."""
    rng = random.Random(11)
    stream = [
        rec(
            rng.choice([ActivityKind.MESSAGE] * 5 + [ActivityKind.REACTION, ActivityKind.JOIN]),
            member=f"m{rng.randrange(30)}",
            community=f"g{rng.randrange(2)}",
            chat=f"c{rng.randrange(2)}",
            at=T0 + timedelta(minutes=rng.randrange(2 * 24 * 60)),
        )
        for _ in range(1500)
    ]
    orders = [rng.sample(stream, len(stream)) for _ in range(4)]
    writers = [ActivityWriter(pg_db, batch_size=150, flush_interval=0.01) for _ in orders]
    for writer in writers:
        await writer.start()
    await asyncio.gather(*(w.record_many(o) for w, o in zip(writers, orders, strict=True)))
    for writer in writers:
        await writer.stop()

    assert sum(w.stats.written for w in writers) == len(stream)
    assert sum(w.stats.dropped for w in writers) == 0
    assert await event_count(pg_db) == len(stream)
    for g in ("g0", "g1"):
        cid = await community_id(pg_db, g)
        async with pg_db.session() as s:
            assert await stored_days(s, cid) == await recount_from_events(s, cid, "UTC")
            members = select(func.count()).select_from(Membership)
            members = members.where(Membership.community_id == cid)
            wanted = {r.member_key for r in stream if r.community_key == g}
            assert (await s.execute(members)).scalar_one() == len(wanted)
