"""Analytics truth: every metric the API reports equals an independent recount from raw events.

A synthetic history of two communities — Berlin (over the end of summer time on Sunday
2026-10-25, when 02:00-03:00 local happens twice) and Kolkata (UTC+05:30, so local midnight is
18:30 UTC) — goes through the real `ActivityWriter`, shuffled, in batches, with replayed
deliveries and events a second either side of local midnight. Some members belong to both
communities, some leave and come back, one is a bot and one opts out.

DuckDB then recomputes, with its own SQL and its own (ICU) time-zone arithmetic, from the raw
`activity_events`, `members` and `memberships` rows copied out of the SQLite file, every
figure the metrics API derives from rollups: messages, active members, joins, leaves, replies,
reactions, DAU/WAU/MAU, stickiness, member count and engagement rate (against the counts the
test recorded), D1/D7/D30 retention of the latest joiners, top contributors, hour-of-day
activity and the trends against the day before and the 7-day average — for every day, and
for whole weeks. The export (`handlers.analytics.export.daily_rows`) is held to the same truth.
"""

from __future__ import annotations

import csv
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from sqlalchemy import select, update

from handlers.analytics.export import daily_rows
from handlers.analytics.metrics import community_metrics, daily_metrics
from storage.activity import ActivityKind, ActivityRecord, ActivityWriter, CommunityDefaults
from storage.analytics import record_member_count
from storage.db import Database
from storage.models import Community, Member, Membership

M, R, J, L = ActivityKind.MESSAGE, ActivityKind.REACTION, ActivityKind.JOIN, ActivityKind.LEAVE
DAY = timedelta(days=1)
HISTORY_START = date(2026, 9, 1)
FIRST, LAST = date(2026, 10, 12), date(2026, 11, 8)  # the checked days (DST ends 2026-10-25)
ZONES = {"berlin": "Europe/Berlin", "kolkata": "Asia/Kolkata"}
MEMBERS = 36


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += DAY


def _local(day: date, clock: time, tz: str, *, fold: int = 0) -> datetime:
    return datetime.combine(day, clock, ZoneInfo(tz)).replace(fold=fold).astimezone(UTC)


class History:
    """The synthetic records of one community, generated from a seed."""

    def __init__(self, key: str, seed: int) -> None:
        self.key = key
        self.tz = ZONES[key]
        self.rng = random.Random(seed)
        self.records: list[ActivityRecord] = []
        self.n = 0

    def add(self, kind: ActivityKind, member: int, at: datetime, *, reply: bool = False) -> None:
        self.n += 1
        self.records.append(
            ActivityRecord(
                kind=kind, platform="console", community_key=self.key, chat_key="main",
                member_key=f"u{member:02d}", member_name=f"Member {member:02d}", at=at,
                event_key=f"{self.key}-{self.n}", content=None, length=3 if kind is M else 0,
                is_reply=reply,
            )
        )  # fmt: skip

    def build(self) -> list[ActivityRecord]:
        rng = self.rng
        start = _local(HISTORY_START, time(0), self.tz)
        end = _local(LAST + DAY, time(0), self.tz)
        span = int((end - start).total_seconds())
        # Joins over the whole history (so D1/D7/D30 cohorts exist), some leave, some return.
        for member in range(MEMBERS):
            joined = start + timedelta(seconds=rng.randrange(span))
            self.add(J, member, joined)
            if rng.random() < 0.3:
                left = joined + timedelta(hours=rng.randrange(1, 24 * 20))
                if left < end:
                    self.add(L, member, left)
                    if rng.random() < 0.5:
                        back = left + timedelta(hours=rng.randrange(1, 24 * 10))
                        if back < end:
                            self.add(J, member, back)
        # Messages and reactions at random instants; a few members do most of the talking.
        weights = [1 + (m % 7 == 0) * 6 + (m % 5 == 0) * 3 for m in range(MEMBERS)]
        for _ in range(1600):
            member = rng.choices(range(MEMBERS), weights)[0]
            at = start + timedelta(seconds=rng.randrange(span))
            self.add(M, member, at, reply=rng.random() < 0.25)
        for _ in range(500):
            self.add(R, rng.randrange(MEMBERS), start + timedelta(seconds=rng.randrange(span)))
        # A second either side of every local midnight.
        for day in _days(HISTORY_START, LAST):
            self.add(M, rng.randrange(MEMBERS), _local(day, time(23, 59, 59), self.tz))
            self.add(M, rng.randrange(MEMBERS), _local(day + DAY, time(0, 0, 0), self.tz))
            self.add(R, rng.randrange(MEMBERS), _local(day + DAY, time(0, 0, 1), self.tz))
        # 02:30 on 2026-10-25 happens twice in Berlin (00:30 and 01:30 UTC).
        for fold in (0, 1):
            for member in (3, 4):
                self.add(M, member, _local(date(2026, 10, 25), time(2, 30), self.tz, fold=fold))
        return self.records


async def _write(db: Database, key: str, records: list[ActivityRecord]) -> None:
    """Through the real writer, shuffled, small batches, with some deliveries replayed."""
    rng = random.Random(key)
    shuffled = records + rng.sample(records, 60)  # replays must not count twice
    rng.shuffle(shuffled)
    writer = ActivityWriter(db, defaults=CommunityDefaults(timezone=ZONES[key]), batch_size=250)
    await writer.start()
    await writer.record_many(shuffled)
    await writer.stop()


# Recorded platform member counts: (community key, day) -> count; other days use the latest.
MEMBER_COUNTS = {
    ("berlin", date(2026, 10, 3)): 40,
    ("berlin", date(2026, 10, 25)): 37,
    ("berlin", date(2026, 11, 2)): 0,  # zero members: engagement unknown, not a division error
    ("kolkata", date(2026, 9, 20)): 33,
    ("kolkata", date(2026, 10, 26)): 35,
}


@pytest.fixture
async def world(db: Database, tmp_path: Path) -> dict[str, Community]:
    for seed, key in enumerate(ZONES):
        await _write(db, key, History(key, seed).build())
    async with db.session() as s:
        communities = {
            c.external_id: c for c in (await s.execute(select(Community))).scalars().all()
        }
        for (key, day), count in MEMBER_COUNTS.items():
            await record_member_count(s, communities[key].id, day, count)
        # u07 (a top talker) opts out of Berlin only; u14 (another) is a bot.
        u07 = (await s.execute(select(Member.id).where(Member.external_id == "u07"))).scalar()
        await s.execute(
            update(Membership)
            .where(Membership.member_id == u07, Membership.community_id == communities["berlin"].id)
            .values(opted_out_at=datetime(2026, 11, 1, tzinfo=UTC))
        )
        await s.execute(update(Member).where(Member.external_id == "u14").values(is_bot=True))
    return communities


def _duck(path: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB copy of the raw tables (timestamps as the text SQLite stores, in UTC)."""
    raw = sqlite3.connect(path)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    tables = {
        "events": (
            "SELECT community_id, member_id, kind, is_reply, occurred_at FROM activity_events",
            "community_id BIGINT, member_id BIGINT, kind INT, is_reply BOOLEAN, occurred_at TEXT",
        ),
        "communities": ("SELECT id, external_id, timezone FROM communities",
                        "id BIGINT, external_id TEXT, tz TEXT"),
        "members": ("SELECT id, external_id, display_name, is_bot FROM members",
                    "id BIGINT, external_id TEXT, display_name TEXT, is_bot BOOLEAN"),
        "memberships": ("SELECT community_id, member_id, opted_out_at FROM memberships",
                        "community_id BIGINT, member_id BIGINT, opted_out_at TEXT"),
    }  # fmt: skip
    for name, (query, columns) in tables.items():
        # Through a CSV file: DuckDB's row-by-row executemany is slow.
        dump = path.with_name(f"{name}.csv")
        with dump.open("w", newline="") as f:
            csv.writer(f).writerows(raw.execute(query))
        types = ", ".join(f"'{c.split()[0]}': '{c.split()[1]}'" for c in columns.split(", "))
        con.execute(f"CREATE TABLE {name} ({columns})")
        con.execute(
            f"INSERT INTO {name} SELECT * FROM read_csv(?, header = false, columns = {{{types}}})",
            [str(dump)],
        )
        dump.unlink()
    raw.close()
    con.execute("""
        CREATE TABLE ev AS
        SELECT e.community_id, e.member_id, e.kind, e.is_reply,
               CAST(e.occurred_at AS TIMESTAMP) AT TIME ZONE 'UTC' AS utc_at,
               timezone(c.tz, CAST(e.occurred_at AS TIMESTAMP) AT TIME ZONE 'UTC') AS local_at
        FROM events e JOIN communities c ON c.id = e.community_id
    """)
    con.execute("ALTER TABLE ev ADD COLUMN day DATE")
    con.execute("UPDATE ev SET day = CAST(local_at AS DATE)")
    return con


def _truth(con: duckdb.DuckDBPyConnection, cid: int) -> dict[date, dict[str, object]]:
    """Every daily figure of community `cid`, recomputed by DuckDB."""
    con.execute(
        "CREATE OR REPLACE TABLE cal AS SELECT CAST(d AS DATE) AS day "
        "FROM range(DATE '2026-08-01', DATE '2026-11-12', INTERVAL 1 DAY) t(d)"
    )
    daily = con.execute(
        """
        SELECT cal.day,
               count(*) FILTER (WHERE kind = 1),
               count(DISTINCT member_id) FILTER (WHERE kind = 1),
               count(*) FILTER (WHERE kind = 3),
               count(*) FILTER (WHERE kind = 4),
               count(*) FILTER (WHERE kind = 1 AND is_reply),
               count(*) FILTER (WHERE kind = 2)
        FROM cal LEFT JOIN ev ON ev.day = cal.day AND ev.community_id = ?
        GROUP BY cal.day
        """,
        [cid],
    ).fetchall()
    names = ("messages", "active", "joins", "leaves", "replies", "reactions")
    out: dict[date, dict[str, object]] = {d: dict(zip(names, v, strict=True)) for d, *v in daily}
    for name, width in (("dau", 1), ("wau", 7), ("mau", 30)):
        rows = con.execute(
            f"""
            SELECT cal.day, count(DISTINCT ev.member_id)
            FROM cal LEFT JOIN ev ON ev.community_id = ? AND ev.kind = 1
                 AND ev.day BETWEEN cal.day - INTERVAL {width - 1} DAY AND cal.day
            GROUP BY cal.day
            """,
            [cid],
        ).fetchall()
        for d, v in rows:
            out[d][name] = v
    # Retention: each member's latest join (as an instant), dated in local time.
    for n in (1, 7, 30):
        rows = con.execute(
            f"""
            WITH latest AS (
                SELECT member_id, CAST(timezone(c.tz, max(utc_at)) AS DATE) AS joined
                FROM ev JOIN communities c ON c.id = ev.community_id
                WHERE kind = 3 AND community_id = ? GROUP BY member_id, c.tz
            )
            SELECT cal.day, count(l.member_id),
                   count(l.member_id) FILTER (WHERE EXISTS (
                       SELECT 1 FROM ev WHERE ev.community_id = ? AND ev.kind = 1
                       AND ev.member_id = l.member_id AND ev.day = cal.day))
            FROM cal LEFT JOIN latest l ON l.joined + INTERVAL {n} DAY = cal.day
            GROUP BY cal.day
            """,
            [cid, cid],
        ).fetchall()
        for d, size, kept in rows:
            out[d][f"d{n}"] = (size, kept)
    hours = con.execute(
        "SELECT day, hour(local_at), count(*) FROM ev WHERE community_id = ? AND kind = 1 "
        "GROUP BY ALL",
        [cid],
    ).fetchall()
    for d in out:
        out[d]["hours"] = [0] * 24
    for d, hour, count in hours:
        out[d]["hours"][hour] = count  # type: ignore[index]
    return out


def _top(con: duckdb.DuckDBPyConnection, cid: int, first: date, last: date, limit: int) -> list:
    return con.execute(
        """
        SELECT m.external_id, m.display_name,
               count(*) FILTER (WHERE kind = 1) AS messages,
               count(*) FILTER (WHERE kind = 1 AND is_reply),
               count(*) FILTER (WHERE kind = 2) AS reactions
        FROM ev JOIN members m ON m.id = ev.member_id
             JOIN memberships ms ON ms.member_id = ev.member_id AND ms.community_id = ?
        WHERE ev.community_id = ? AND ev.day BETWEEN ? AND ? AND NOT m.is_bot
              AND ms.opted_out_at IS NULL
        GROUP BY m.id, m.external_id, m.display_name
        HAVING count(*) FILTER (WHERE kind = 1) > 0
        ORDER BY messages DESC, reactions DESC, m.display_name, m.external_id
        LIMIT ?
        """,
        [cid, cid, first, last, limit],
    ).fetchall()


def _member_count(key: str, day: date) -> int | None:
    recorded = [(d, c) for (k, d), c in MEMBER_COUNTS.items() if k == key and d <= day]
    return max(recorded)[1] if recorded else None


async def test_every_daily_metric_equals_a_duckdb_recount(db, world, tmp_path):
    con = _duck(tmp_path / "commops-test.db")
    # The history really crosses the DST change: Berlin's 25 October has 25 hours and a
    # doubled 02:00 hour; Kolkata's days start at 18:30 UTC.
    assert con.execute(
        "SELECT count(*) FROM ev JOIN communities c ON c.id = community_id "
        "WHERE c.external_id = 'berlin' AND day = DATE '2026-10-25' AND hour(local_at) = 2 "
        "AND kind = 1 AND utc_at IN ('2026-10-25 00:30:00+00', '2026-10-25 01:30:00+00')"
    ).fetchone() == (4,)
    checked = 0
    for key, community in world.items():
        truth = _truth(con, community.id)
        async with db.session() as s:
            exported = {r.day: r for r in await daily_rows(s, community, FIRST, LAST)}
            for day in _days(FIRST, LAST):
                t = truth[day]
                m = await daily_metrics(s, community, day)
                got = {
                    "messages": m.messages, "active": m.active_members, "joins": m.joins,
                    "leaves": m.leaves, "replies": m.replies, "reactions": m.reactions,
                    "dau": m.dau, "wau": m.wau, "mau": m.mau, "hours": list(m.hours),
                    **{f"d{c.days}": (c.size, c.retained) for c in m.retention.cohorts},
                }  # fmt: skip
                assert got == t, (key, day)
                assert m.stickiness == (t["dau"] / t["mau"] if t["mau"] else None)
                count = _member_count(key, day)
                assert m.member_count.value == count, (key, day)
                assert m.engagement_rate == (t["active"] / count if count else None)
                top = _top(con, community.id, day, day, 5)
                assert [(c.user_id, c.name, c.messages, c.replies, c.reactions)
                        for c in m.top_contributors] == top, (key, day)  # fmt: skip
                # Trends: the day before, and the average of the 7 days before.
                before = [truth[day - i * DAY] for i in range(1, 8)]
                for name, field in (("messages", "messages"), ("active_members", "active"),
                                    ("joins", "joins"), ("leaves", "leaves")):  # fmt: skip
                    trend = getattr(m.trends, name)
                    assert trend.previous == before[0][field]
                    assert trend.average == sum(b[field] for b in before) / 7  # type: ignore[misc]
                net = [b["joins"] - b["leaves"] for b in before]  # type: ignore[operator]
                assert (m.trends.net_growth.previous, m.trends.net_growth.average) == (
                    net[0],
                    sum(net) / 7,
                )
                inter = [b["replies"] + b["reactions"] for b in before]  # type: ignore[operator]
                assert m.trends.interactions.previous == inter[0]
                # The export's row of the day holds the same truth.
                row = exported[day]
                assert (row.messages, row.active_members, row.joins, row.leaves, row.replies,
                        row.reactions, row.dau, row.wau, row.mau) == tuple(
                    t[k] for k in ("messages", "active", "joins", "leaves", "replies",
                                   "reactions", "dau", "wau", "mau")
                )  # fmt: skip
                assert [(c.size, c.retained) for c in row.retention] == [t["d1"], t["d7"], t["d30"]]
                assert row.member_count == count
                assert row.engagement_rate == m.engagement_rate
                checked += 1
    assert checked == 2 * ((LAST - FIRST).days + 1)
    # The history is not trivial: cohorts, leavers, replies and busy days all occur.
    assert any(truth[d]["d7"][1] for d in _days(FIRST, LAST))  # type: ignore[index]
    assert sum(truth[d]["leaves"] for d in _days(FIRST, LAST)) > 0  # type: ignore[misc]
    con.close()


async def test_weekly_figures_equal_a_duckdb_recount(db, world, tmp_path):
    con = _duck(tmp_path / "commops-test.db")
    for key, community in world.items():
        truth = _truth(con, community.id)
        for last in (date(2026, 10, 25), date(2026, 10, 31), date(2026, 11, 8)):
            first = last - 6 * DAY
            days = list(_days(first, last))
            async with db.session() as s:
                m = await community_metrics(s, community, first, last, top=8)
            active = con.execute(
                "SELECT count(DISTINCT member_id) FROM ev WHERE community_id = ? AND kind = 1 "
                "AND day BETWEEN ? AND ?",
                [community.id, first, last],
            ).fetchone()[0]
            assert m.active_members == active, (key, last)
            for name, field in (("messages", "messages"), ("joins", "joins"),
                                ("leaves", "leaves"), ("replies", "replies"),
                                ("reactions", "reactions")):  # fmt: skip
                assert getattr(m, name) == sum(truth[d][field] for d in days), (key, name)
            assert list(m.hours) == [
                sum(truth[d]["hours"][h] for d in days)  # type: ignore[index]
                for h in range(24)
            ]
            # Pooled retention: the sum of the daily cohorts of the week.
            for cohort in m.retention.cohorts:
                pooled = [truth[d][f"d{cohort.days}"] for d in days]
                assert (cohort.size, cohort.retained) == (
                    sum(p[0] for p in pooled),  # type: ignore[index]
                    sum(p[1] for p in pooled),  # type: ignore[index]
                ), (key, last, cohort.days)
            top = _top(con, community.id, first, last, 8)
            assert [(c.user_id, c.name, c.messages, c.replies, c.reactions)
                    for c in m.top_contributors] == top  # fmt: skip
            assert (m.dau, m.wau, m.mau) == (
                truth[last]["dau"],
                truth[last]["wau"],
                truth[last]["mau"],
            )
    con.close()
