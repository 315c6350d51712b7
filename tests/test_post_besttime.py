"""Best time to post: the local-week heat map (DST, averages, suggestions) and its query."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from handlers.posts.besttime import EVERY_DAY, HeatMap, Slot, build_heatmap
from storage.activity import ActivityKind, ActivityRecord, write_batch
from storage.db import Database
from storage.metrics import HourBucket, hourly_activity
from storage.models import Community

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


def local(tz: ZoneInfo, *args: int) -> datetime:
    """A local wall time as an aware UTC datetime."""
    return datetime(*args, tzinfo=tz).astimezone(UTC)


def bucket(at: datetime, messages: int = 1, members: int = 1) -> HourBucket:
    return HourBucket(at.astimezone(UTC), messages, members)


def weekly(first: datetime, weeks: int, messages: int, members: int) -> list[HourBucket]:
    """The same UTC hour once a week."""
    return [bucket(first + i * WEEK, messages, members) for i in range(weeks)]


def cell(heat: HeatMap, weekday: int, hour: int) -> Slot:
    return heat.cells[weekday][hour]


def spots(slots: Iterable[Slot]) -> list[tuple[int, int]]:
    return [(s.weekday, s.hour) for s in slots]


# --- build_heatmap ----------------------------------------------------------------------------

# Four whole weeks, Monday 00:00 to Monday 00:00 in Shanghai (UTC+8, no DST).
SH_SINCE = local(SHANGHAI, 2026, 11, 2)
SH_UNTIL = local(SHANGHAI, 2026, 11, 30)


def test_shanghai_hours_land_on_local_weekday_and_hour() -> None:
    buckets = [
        *weekly(datetime(2026, 11, 2, 12, tzinfo=UTC), 4, 10, 5),  # Monday 20:00 local
        *weekly(datetime(2026, 11, 3, 17, tzinfo=UTC), 2, 6, 3),  # Wednesday 01:00 local
    ]
    heat = build_heatmap(buckets, SHANGHAI, since=SH_SINCE, until=SH_UNTIL)
    assert heat.weeks == 4.0
    assert heat.total_messages == 4 * 10 + 2 * 6
    assert len(heat.cells) == 7 and all(len(day) == 24 for day in heat.cells)
    assert cell(heat, 0, 20) == Slot(0, 20, 10.0, 5.0, 4)
    # Two of four Wednesdays had activity: the average is per week in the window.
    assert cell(heat, 2, 1) == Slot(2, 1, 3.0, 1.5, 4)
    assert cell(heat, 1, 17) == Slot(1, 17, 0.0, 0.0, 4)  # the UTC hour is not the local one
    assert heat.active_days == 6


def test_every_utc_hour_counts_once() -> None:
    heat = build_heatmap([], SHANGHAI, since=SH_SINCE, until=SH_UNTIL)
    assert {s.weeks for day in heat.cells for s in day} == {4}
    assert heat.total_messages == 0 and heat.best() == [] and heat.best_daily_hour() is None


# Four weeks in Berlin around the autumn change (Sunday 2026-10-25, 03:00 CEST -> 02:00 CET).
BERLIN_AUTUMN = (local(BERLIN, 2026, 10, 5), local(BERLIN, 2026, 11, 2))


def test_berlin_autumn_change_repeats_two_oclock() -> None:
    since, until = BERLIN_AUTUMN
    buckets = [
        bucket(datetime(2026, 10, 25, 0, tzinfo=UTC), 3, 2),  # 02:00 CEST
        bucket(datetime(2026, 10, 25, 1, tzinfo=UTC), 7, 4),  # 02:00 CET, the same local hour
        bucket(datetime(2026, 10, 25, 2, tzinfo=UTC), 5, 5),  # 03:00 CET
        bucket(datetime(2026, 10, 11, 10, tzinfo=UTC), 8, 8),  # Sunday 12:00 CEST
        bucket(datetime(2026, 11, 1, 11, tzinfo=UTC), 8, 8),  # Sunday 12:00 CET
    ]
    heat = build_heatmap(buckets, BERLIN, since=since, until=until)
    assert cell(heat, 6, 2).weeks == 5  # four Sundays, one of them with two 02:00s
    assert cell(heat, 6, 2).messages == pytest.approx(10 / 5)
    assert cell(heat, 6, 2).members == pytest.approx(6 / 5)
    assert cell(heat, 6, 3) == Slot(6, 3, 5 / 4, 5 / 4, 4)
    assert cell(heat, 6, 12) == Slot(6, 12, 16 / 4, 16 / 4, 4)  # noon stays noon across DST
    hours = sum(s.weeks for day in heat.cells for s in day)
    assert hours == (until - since) / HOUR == 28 * 24 + 1  # the window holds one extra hour
    assert heat.weeks == pytest.approx((28 * 24 + 1) / (7 * 24))


def test_berlin_spring_change_skips_two_oclock() -> None:
    since, until = local(BERLIN, 2026, 3, 9), local(BERLIN, 2026, 4, 6)
    buckets = [bucket(datetime(2026, 3, 29, 1, tzinfo=UTC), 4, 2)]  # 03:00 CEST
    heat = build_heatmap(buckets, BERLIN, since=since, until=until)
    assert cell(heat, 6, 2).weeks == 3  # 02:00 never happened on 29 March
    assert cell(heat, 6, 3) == Slot(6, 3, 1.0, 0.5, 4)
    assert sum(s.weeks for day in heat.cells for s in day) == 28 * 24 - 1


def test_partial_hours_and_outside_buckets_are_ignored() -> None:
    since = SH_SINCE + timedelta(minutes=20)
    until = SH_UNTIL - timedelta(minutes=5)
    buckets = [
        bucket(SH_SINCE, 99, 9),  # the partly covered first hour
        bucket(SH_UNTIL - HOUR, 99, 9),  # the running last hour
        bucket(SH_SINCE - DAY, 99, 9),
        bucket(SH_UNTIL + DAY, 99, 9),
        bucket(SH_SINCE + 5 * HOUR, 2, 1),
    ]
    heat = build_heatmap(buckets, SHANGHAI, since=since, until=until)
    assert heat.total_messages == 2
    assert cell(heat, 0, 0).weeks == 3 and cell(heat, 6, 23).weeks == 3
    assert cell(heat, 0, 5) == Slot(0, 5, 0.5, 0.25, 4)


def test_a_young_community_is_averaged_over_its_own_age() -> None:
    first = SH_UNTIL - 14 * DAY + 3 * HOUR  # two weeks ago, Monday 03:00 local
    buckets = [*weekly(first, 2, 6, 3), bucket(SH_UNTIL - 2 * HOUR)]
    seen = first + timedelta(minutes=40)  # the first message came later in that hour
    heat = build_heatmap(buckets, SHANGHAI, since=SH_SINCE, until=SH_UNTIL, first_seen=seen)
    assert heat.weeks == pytest.approx((14 * 24 - 3) / (7 * 24))
    assert cell(heat, 0, 3) == Slot(0, 3, 6.0, 3.0, 2)
    assert cell(heat, 0, 2).weeks == 1  # before the bot knew the community on its first day
    old = build_heatmap(
        buckets, SHANGHAI, since=SH_SINCE, until=SH_UNTIL, first_seen=SH_SINCE - WEEK
    )
    assert old.weeks == 4.0


def test_a_quiet_start_of_the_window_still_counts() -> None:
    # Without `first_seen` the silent first two weeks are zeros, not missing data.
    first = SH_UNTIL - 14 * DAY + 3 * HOUR
    heat = build_heatmap(weekly(first, 2, 6, 3), SHANGHAI, since=SH_SINCE, until=SH_UNTIL)
    assert heat.weeks == 4.0
    assert cell(heat, 0, 3) == Slot(0, 3, 3.0, 1.5, 4)


# --- suggestions --------------------------------------------------------------------------------


def heat_of(spec: dict[tuple[int, int], tuple[int, int]], weeks: int = 4) -> HeatMap:
    """A heat map where (weekday, local hour) had (messages, members) every week."""
    buckets = []
    for (weekday, hour), (messages, members) in spec.items():
        first = SH_SINCE + weekday * DAY + hour * HOUR
        buckets += weekly(first, weeks, messages, members)
    return build_heatmap(buckets, SHANGHAI, since=SH_SINCE, until=SH_UNTIL)


def test_best_ranks_by_members_then_messages_and_spaces_suggestions() -> None:
    heat = heat_of(
        {
            (0, 20): (50, 10),
            (0, 21): (60, 9),  # next to Monday 20:00
            (0, 19): (10, 9),  # also next to it
            (2, 9): (30, 7),
            (4, 12): (40, 7),  # as many members as Wednesday 09:00, more messages
            (6, 23): (5, 8),
            (0, 0): (5, 8),  # ties with Sunday 23:00 and neighbours it across midnight
        }
    )
    assert spots(heat.best(3)) == [(0, 20), (0, 0), (4, 12)]
    assert spots(heat.best(5)) == [(0, 20), (0, 0), (4, 12), (2, 9)]
    assert heat.best(1)[0] == Slot(0, 20, 50.0, 10.0, 4)
    assert heat.best(0) == []


def test_best_daily_hour_and_peaks_by_day() -> None:
    heat = heat_of(
        {
            **{(day, 9): (4, 2) for day in range(7)},  # every morning
            (5, 21): (30, 9),  # one busy Saturday evening
            (1, 14): (6, 3),
        }
    )
    daily = heat.best_daily_hour()
    assert daily is not None
    assert (daily.weekday, daily.hour) == (EVERY_DAY, 9)
    assert daily.members == pytest.approx(2.0) and daily.messages == pytest.approx(4.0)
    assert daily.weeks == 4
    peaks = heat.peak_by_day()
    assert spots(peaks) == [(0, 9), (1, 14), (2, 9), (3, 9), (4, 9), (5, 21), (6, 9)]


def test_peaks_skip_silent_days() -> None:
    heat = heat_of({(3, 10): (5, 1)})
    assert spots(heat.peak_by_day()) == [(3, 10)]


def test_strip_is_seven_lines_of_twenty_four_blocks() -> None:
    heat = heat_of({(0, 0): (8, 1), (0, 1): (4, 1), (0, 2): (1, 1), (6, 23): (2, 1)})
    lines = heat.strip()
    assert len(lines) == 7 and all(len(line) == 24 for line in lines)
    assert lines[0][:4] == "█▄▁ "
    assert lines[6] == " " * 23 + "▂"
    assert all(set(line) <= set(" ▁▂▃▄▅▆▇█") for line in lines)
    assert build_heatmap([], SHANGHAI, since=SH_SINCE, until=SH_UNTIL).strip() == [" " * 24] * 7


def test_enough_data_needs_fifty_messages_on_three_days() -> None:
    assert not heat_of({(0, 9): (12, 2)}, weeks=4).enough_data  # 48 messages
    assert not heat_of({(0, 9): (30, 2)}, weeks=2).enough_data  # 60 messages, 2 days
    assert heat_of({(0, 9): (20, 2)}, weeks=3).enough_data  # 60 messages, 3 days
    heat = heat_of({(0, 9): (20, 2), (0, 10): (20, 2)}, weeks=1)
    assert heat.active_days == 1 and not heat.enough_data


# --- hourly_activity on SQLite and PostgreSQL -----------------------------------------------------

_keys = itertools.count(1)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def rec(
    at: datetime,
    member: str = "alice",
    kind: ActivityKind = ActivityKind.MESSAGE,
    community: str = "g1",
) -> ActivityRecord:
    return ActivityRecord(
        kind=kind,
        platform="console",
        community_key=community,
        chat_key="c1",
        member_key=member,
        member_name=member.title(),
        at=at,
        event_key=f"bt:{next(_keys)}",
        content="text" if kind is ActivityKind.MESSAGE else None,
        length=5 if kind is ActivityKind.MESSAGE else 0,
    )


async def community_id(db: Database, key: str) -> int:
    async with db.session() as s:
        query = select(Community.id).where(
            Community.platform == "console", Community.external_id == key
        )
        return (await s.execute(query)).scalar_one()


async def test_hourly_activity_groups_messages_by_utc_hour(any_db: Database) -> None:
    records = [
        rec(T0 - timedelta(seconds=1)),  # before `since`
        rec(T0),  # `since` is included
        rec(T0 + timedelta(minutes=10), "bob"),
        rec(T0 + timedelta(minutes=59, seconds=59, microseconds=999_999), "alice"),
        rec(T0 + timedelta(minutes=30), "carol", ActivityKind.REACTION),  # not a message
        rec(T0 + timedelta(minutes=30), "dave", ActivityKind.JOIN),
        rec(T0 + timedelta(hours=1, minutes=30), "carol"),
        rec(T0 + timedelta(hours=5)),
        rec(T0 + timedelta(hours=5, minutes=1), "zed", community="g2"),  # another community
        rec(T0 + timedelta(hours=6)),  # `until` is excluded
    ]
    async with any_db.session() as s:
        await write_batch(s, records)
    cid = await community_id(any_db, "g1")
    async with any_db.session() as s:
        if any_db.dialect == "postgresql":
            # A zone with a half-hour offset: truncation must still be to the UTC hour.
            await s.execute(text("SET LOCAL TIME ZONE 'Asia/Kolkata'"))
        buckets = await hourly_activity(s, cid, since=T0, until=T0 + 6 * HOUR)
    assert buckets == [
        HourBucket(T0, 3, 2),
        HourBucket(T0 + HOUR, 1, 1),
        HourBucket(T0 + 5 * HOUR, 1, 1),
    ]
    assert all(b.hour.tzinfo is not None and b.hour.utcoffset() == timedelta(0) for b in buckets)


async def test_hourly_activity_of_a_quiet_community_is_empty(any_db: Database) -> None:
    async with any_db.session() as s:
        await write_batch(s, [rec(T0, community="busy")])
    async with any_db.session() as s:
        assert await hourly_activity(s, 999_999, since=T0 - DAY, until=T0 + DAY) == []


async def test_heatmap_from_the_database(any_db: Database) -> None:
    # Four weeks of a Shanghai community chatting on Monday evenings, read back and folded.
    since, until = SH_SINCE, SH_UNTIL
    records = []
    for week in range(4):
        evening = local(SHANGHAI, 2026, 11, 2, 20) + week * WEEK
        for i, member in enumerate(("alice", "bob", "carol", "dave")):
            records += [rec(evening + timedelta(minutes=5 * i + j), member) for j in range(4)]
    async with any_db.session() as s:
        await write_batch(s, records)
    cid = await community_id(any_db, "g1")
    async with any_db.session() as s:
        buckets = await hourly_activity(s, cid, since=since, until=until)
    heat = build_heatmap(buckets, SHANGHAI, since=since, until=until)
    assert heat.total_messages == 64
    assert heat.best(1) == [Slot(0, 20, 16.0, 4.0, 4)]
    assert heat.active_days == 4 and heat.enough_data
