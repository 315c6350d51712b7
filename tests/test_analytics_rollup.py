"""The hourly rollup (`community_hours`) kept by the activity writer, and what reads it."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from handlers.posts.besttime import build_heatmap, load_heatmap
from storage.activity import ActivityKind, ActivityRecord, CommunityDefaults, write_batch
from storage.analytics import hour_totals, recount_hours_from_events, stored_hours
from storage.db import Database
from storage.metrics import hourly_activity, local_hours
from storage.models import Community

BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")
HOUR = timedelta(hours=1)
_keys = itertools.count(1)


def rec(
    at: datetime,
    kind: ActivityKind = ActivityKind.MESSAGE,
    *,
    who: str = "ann",
    community: str = "berlin",
) -> ActivityRecord:
    return ActivityRecord(
        kind=kind, platform="console", community_key=community, chat_key="c", member_key=who,
        member_name=who.title(), at=at, event_key=f"h{next(_keys)}",
    )  # fmt: skip


async def community_id(db: Database, key: str) -> int:
    async with db.session() as s:
        query = select(Community.id).where(Community.external_id == key)
        return (await s.execute(query)).scalar_one()


async def write(db: Database, records: list[ActivityRecord], zone: str) -> None:
    async with db.session() as s:
        await write_batch(s, records, defaults=CommunityDefaults(zone))


def random_history(seed: int, start: datetime, hours: int, community: str) -> list[ActivityRecord]:
    rng = random.Random(seed)
    kinds = [ActivityKind.MESSAGE] * 6 + [ActivityKind.REACTION] * 3 + [ActivityKind.JOIN]
    return [
        rec(
            start + timedelta(seconds=rng.uniform(0, hours * 3600)),
            rng.choice(kinds),
            who=rng.choice(["ann", "ben", "cat", "dan"]),
            community=community,
        )
        for _ in range(400)
    ]


async def test_hourly_rollup_matches_a_recount_across_dst(any_db: Database) -> None:
    # Around Berlin's autumn change (25 October 2026: 03:00 CEST -> 02:00 CET), and Kolkata
    # (+05:30, whose local hours start at :30 UTC), in batches with replays.
    autumn = random_history(1, datetime(2026, 10, 23, 12, tzinfo=UTC), 96, "berlin")
    india = random_history(2, datetime(2026, 10, 23, 12, tzinfo=UTC), 48, "kolkata")
    first_two = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second_two = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    doubled = [rec(first_two), rec(second_two), rec(second_two, ActivityKind.REACTION)]
    await write(any_db, autumn[:150] + doubled, "Europe/Berlin")
    await write(any_db, india[:100], "Asia/Kolkata")
    await write(any_db, autumn[100:] + india[50:] + doubled, "UTC")  # replays change nothing
    for key, zone in (("berlin", "Europe/Berlin"), ("kolkata", "Asia/Kolkata")):
        cid = await community_id(any_db, key)
        async with any_db.session() as s:
            stored = await stored_hours(s, cid)
            recount = await recount_hours_from_events(s, cid, zone)
        assert stored == recount and stored
    cid = await community_id(any_db, "berlin")
    async with any_db.session() as s:
        stored = await stored_hours(s, cid)
    random_twos = sum(
        1
        for r in autumn
        if r.kind is ActivityKind.MESSAGE
        and r.at.astimezone(BERLIN).date() == date(2026, 10, 25)
        and r.at.astimezone(BERLIN).hour == 2
    )
    # Both 02:30s land in the one local 02:00 hour of that day.
    assert stored[(date(2026, 10, 25), 2)][0] == random_twos + 2
    total_messages = sum(m for m, _ in stored.values())
    assert total_messages == sum(1 for r in autumn + doubled if r.kind is ActivityKind.MESSAGE)


async def test_joins_and_leaves_are_not_hourly_activity(any_db: Database) -> None:
    at = datetime(2026, 11, 20, 9, 15, tzinfo=UTC)
    await write(any_db, [rec(at, ActivityKind.JOIN), rec(at, ActivityKind.LEAVE)], "UTC")
    await write(any_db, [rec(at), rec(at, ActivityKind.REACTION, who="ben")], "UTC")
    cid = await community_id(any_db, "berlin")
    async with any_db.session() as s:
        rows = await local_hours(s, cid, date(2026, 11, 20), date(2026, 11, 20))
        totals = await hour_totals(s, cid, date(2026, 11, 20), date(2026, 11, 20))
    assert [(r.hour, r.messages, r.reactions) for r in rows] == [(9, 1, 1)]
    assert totals.messages[9] == 1 and totals.reactions[9] == 1 and sum(totals.messages) == 1


async def test_best_time_from_the_rollup_matches_the_raw_events(any_db: Database) -> None:
    # Four weeks around Berlin's autumn change, messages only: the rollup's heat map holds
    # the same messages per cell as the one built from raw events.
    since = datetime(2026, 10, 5, tzinfo=BERLIN).astimezone(UTC)
    until = datetime(2026, 11, 2, tzinfo=BERLIN).astimezone(UTC)
    history = random_history(3, since, 28 * 24, "berlin")
    await write(any_db, history, "Europe/Berlin")
    cid = await community_id(any_db, "berlin")
    async with any_db.session() as s:
        raw = build_heatmap(
            await hourly_activity(s, cid, since=since, until=until),
            BERLIN,
            since=since,
            until=until,
        )
        rolled = await load_heatmap(s, cid, BERLIN, since=since, until=until)
    assert rolled.total_messages == raw.total_messages > 0
    assert rolled.active_days == raw.active_days and rolled.weeks == raw.weeks
    for raw_day, rolled_day in zip(raw.cells, rolled.cells, strict=True):
        for a, b in zip(raw_day, rolled_day, strict=True):
            assert (b.weekday, b.hour, b.weeks) == (a.weekday, a.hour, a.weeks)
            assert b.messages == a.messages and b.members == 0
    assert raw.counts_members and not rolled.counts_members
    assert rolled.strip() == raw.strip()


async def test_best_time_from_the_rollup_in_a_half_hour_zone(any_db: Database) -> None:
    since = datetime(2026, 11, 2, tzinfo=KOLKATA).astimezone(UTC)
    until = since + timedelta(days=7)
    evening = datetime(2026, 11, 4, 20, 10, tzinfo=KOLKATA).astimezone(UTC)  # Wednesday
    # 20:10 and 21:10 local start at 14:40 and 15:40 UTC: each stays in its own local hour.
    await write(
        any_db,
        [rec(evening, community="kolkata"), rec(evening + HOUR, community="kolkata")],
        "Asia/Kolkata",
    )
    cid = await community_id(any_db, "kolkata")
    async with any_db.session() as s:
        heat = await load_heatmap(s, cid, KOLKATA, since=since, until=until)
    assert heat.cells[2][20].messages == 1.0 and heat.cells[2][21].messages == 1.0
    assert heat.total_messages == 2
