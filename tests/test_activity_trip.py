"""SQLite: a batch whose communities and chats the writer knows goes in one trip to the
driver's thread (`storage/activity_trip.py`); every other case takes the usual path, and both
must leave exactly the same rows."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

import storage.activity as activity_module
from storage.activity import ActivityKind, IdCache, prepare_batch
from storage.activity_trip import TripRows, row_chunks
from storage.db import Database
from storage.metrics import DayCounts
from storage.models import Community, Member
from tests.test_activity_writer import (
    T0,
    assert_rollups_match,
    community_id,
    create_community,
    days_of,
    event_count,
    random_stream,
    rec,
    running,
    stored_member,
    with_duplicates_and_splits,
    write_batches,
)


async def test_a_batch_of_known_chats_goes_in_one_trip(db: Database) -> None:
    """The first batch meets a new community and chat (usual path); the next, with members
    old, new and renamed, is one trip, and the counters are exact."""
    first = [rec(member="alice", at=T0), rec(member="bob", at=T0)]
    later = T0 + timedelta(minutes=5)
    second = [
        rec(member="alice", at=later, is_reply=True),
        rec(member="bob", name="Robert", at=later),
        rec(member="carol", at=later),
        rec(ActivityKind.REACTION, member="dave", at=later),
    ]
    writer = await write_batches(db, [first, second])
    assert (writer.stats.batches, writer.stats.trips, writer.stats.written) == (2, 1, 6)
    await assert_rollups_match(db, first + second, {"g1": "UTC"})
    assert await stored_member(db, "bob") == ("Robert", None)
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Member))).scalar_one() == 4


async def test_a_replay_in_a_trip_counts_only_the_new_events(db: Database) -> None:
    old = [rec(member="alice", key="a"), rec(member="bob", key="b")]
    replay = [*old, rec(member="alice", key="c", at=T0 + timedelta(minutes=1))]
    writer = await write_batches(db, [old, replay])
    assert writer.stats.trips == 1
    assert (writer.stats.written, writer.stats.duplicates) == (3, 2)
    assert await event_count(db) == 3
    await assert_rollups_match(db, replay, {"g1": "UTC"})


async def test_a_time_zone_changed_before_the_trip_sends_the_batch_the_usual_way(
    db: Database,
) -> None:
    """The rows were built for the old zone; the trip finds the new one, writes nothing, and
    the batch is written in the usual way, on the new zone's days."""
    late = T0.replace(hour=23, minute=30)  # the next day in Shanghai
    async with running(db) as writer:
        await writer.record(rec(at=late - timedelta(hours=12)))
        await writer.flush()
        async with db.session() as s:
            community = await s.get(Community, await community_id(db))
            assert community is not None
            community.timezone = "Asia/Shanghai"
        await writer.record(rec(at=late))
        await writer.flush()
        assert (writer.stats.batches, writer.stats.trips) == (2, 0)
        # The writer now knows the new zone: the next batch is a trip again.
        await writer.record(rec(at=late + timedelta(minutes=1)))
        await writer.flush()
        assert writer.stats.trips == 1
    today, tomorrow = late.date(), late.date() + timedelta(days=1)
    assert await days_of(db) == {
        today: DayCounts(today, messages=1, active_members=1),
        tomorrow: DayCounts(tomorrow, messages=2, active_members=1),
    }


@pytest.mark.parametrize("seed", [3, 11])
async def test_trips_and_the_usual_path_leave_the_same_rollups(db: Database, seed: int) -> None:
    rng = random.Random(seed)
    zones = {f"t{seed}-g{i}": zone for i, zone in enumerate(("UTC", "America/New_York"))}
    for key, tz in zones.items():
        await create_community(db, key, tz)
    stream = [r for r in random_stream(rng, f"t{seed}", 600) if r.community_key in zones]
    writer = await write_batches(db, with_duplicates_and_splits(rng, stream))
    assert writer.stats.trips > writer.stats.batches // 2
    assert writer.stats.written == len(stream)
    await assert_rollups_match(db, stream, zones)


def test_rows_are_built_only_when_every_community_and_chat_is_known() -> None:
    batch = [rec(member="alice"), rec(member="bob", chat="c2")]
    zones = {("console", "g1"): "UTC"}
    cache = IdCache()
    cache.chats.put((7, "c1"), 70)
    cache.members.put(("console", "alice"), (1, hash(("Alice", None))))

    def trip(known: dict[tuple[str, str], tuple[int, str]]) -> TripRows | None:
        return prepare_batch(batch, "sqlite", zones, known=known, cache=cache).trip

    assert trip({}) is None  # a community not read yet
    assert trip({("console", "g1"): (7, "UTC")}) is None  # chat c2 not cached
    cache.chats.put((7, "c2"), 71)
    rows = trip({("console", "g1"): (7, "UTC")})
    assert rows is not None
    assert rows.member_ids == {("console", "alice"): 1}
    assert [row[:2] for row in rows.members] == [("console", "bob")]
    # Bob's id is not known yet: his rows carry his key until the trip upserts him.
    assert [row[2] for row in rows.events] == [1, ("console", "bob")]
    assert prepare_batch(batch, "postgresql", zones, known={}, cache=cache).trip is None


async def test_without_a_way_onto_the_driver_thread_the_usual_path_writes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should aiosqlite drop the method the trip uses, batches still land, just slower."""
    monkeypatch.setattr(activity_module, "_on_driver_thread", lambda driver: None)
    writer = await write_batches(db, [[rec(member="alice")], [rec(member="alice", key="x")]])
    assert (writer.stats.batches, writer.stats.trips, writer.stats.written) == (2, 0, 2)
    day = T0.date()
    assert await days_of(db) == {day: DayCounts(day, messages=2, active_members=1)}


@given(count=st.integers(0, 20_000), step=st.integers(1, 5_000))
def test_multi_row_statements_come_in_few_sizes(count: int, step: int) -> None:
    """SQLite caches each distinct statement it prepared (~1.8 MB for 2,000 rows): the rows
    of any batch go in `step`s and powers of two, so a connection holds a dozen sizes."""
    rows = list(range(count))
    chunks = list(row_chunks(rows, step))
    assert [row for chunk in chunks for row in chunk] == rows  # every row once, in order
    sizes = [len(chunk) for chunk in chunks]
    assert sum(sizes) == count and all(0 < size <= step for size in sizes)
    rest = [size for size in sizes if size != step]
    assert all(size & (size - 1) == 0 for size in rest)  # powers of two
    assert rest == sorted(set(rest), reverse=True)  # each at most once, largest first


async def test_a_batch_of_any_size_uses_power_of_two_statements(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 1..37 new members through the trip: every multi-row statement the driver ran
    has a power-of-two row count, and every row landed."""
    counts: list[int] = []
    real = activity_module._trip_sql

    def counting(name: str, rows: int) -> str:
        counts.append(rows)
        return real(name, rows)

    monkeypatch.setattr(activity_module, "_trip_sql", counting)
    async with running(db) as writer:
        await writer.record(rec(member="first", at=T0))
        await writer.flush()
        for size in (1, 3, 7, 12, 37):
            for n in range(size):
                await writer.record(rec(member=f"m{size}-{n}", at=T0, key=f"{size}-{n}"))
            await writer.flush()
    assert writer.stats.trips == 5
    multi_row = [rows for rows in counts if rows > 1]
    assert multi_row and all(rows & (rows - 1) == 0 for rows in multi_row)
    async with db.session() as session:
        members = await session.scalar(select(func.count()).select_from(Member))
    assert members == 1 + 1 + 3 + 7 + 12 + 37
