"""Benchmark `summary`: the daily summary of a big community, from the rollups vs raw events.

The stored state (one community, M members, N raw activity events over the last `days` days
and the rollups that match them) is generated with numpy and bulk-loaded once per database,
untimed. Variants, each reading that same database:
  daily_metrics    `handlers.analytics.metrics.daily_metrics` for yesterday
  /summary reply   what `/summary` does: `summary.gather` + `summary.render` (chart drawn),
                   without sending
  naive baseline   the headline numbers (messages, replies, reactions and the 7-day trend,
                   active, DAU/WAU/MAU, top contributors, hour of day) by scanning
                   `activity_events` with GROUP BY queries over the windows they need
"""

from __future__ import annotations

import sqlite3
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Integer, and_, case, cast, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bench import (
    BenchResult,
    Target,
    VariantResult,
    VerificationError,
    aligned,
    clock,
    describe,
    fresh_database,
    progress,
    time_checked,
)
from handlers.analytics import summary
from handlers.analytics.metrics import CommunityMetrics, daily_metrics
from handlers.core.clock import SystemClock
from handlers.core.context import Services
from handlers.core.render import Renderer
from storage.activity import ActivityKind, ActivityWriter
from storage.db import Database
from storage.models import ActivityEvent, Community, Member, Membership
from storage.postdays import day_number

NAME = "summary"
METRICS = "daily_metrics"
REPLY = "/summary reply"
NAIVE = "naive baseline"
VARIANTS = (METRICS, REPLY, NAIVE)
YESTERDAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # the community's zone is UTC
CHUNK = 200_000
TOP = 5
OPTED_OUT_RANK = 1  # the second most active member opted out: never listed
BOT_RANK = 2  # the third is a bot: never listed either
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Workload:
    """One community: M members, N events over `days` days ending yesterday, seeded.

    `baseline_events` only exists so `--events` can scale this like the other benchmarks:
    the baseline always scans the stored events of the windows it needs.
    """

    events: int
    members: int
    baseline_events: int
    days: int = 120
    chats: int = 5
    seed: int = 20261123
    zipf: float = 0.9
    reaction_share: float = 0.10
    reply_share: float = 0.15  # of all events: messages that are replies
    # Where this community's rows start, so several can share one database (`summaries`).
    community: int = 1
    first_member: int = 0
    first_chat: int = 0
    first_event: int = 0


QUICK = Workload(events=50_000, members=2_000, baseline_events=50_000)
FULL = Workload(events=10_000_000, members=200_000, baseline_events=10_000_000)


# --- the stored state ------------------------------------------------------------------------


@dataclass
class State:
    """The generated community as numpy arrays (events in time order) plus its rollups."""

    load: Workload
    first_day: date
    # events
    t: np.ndarray  # UTC seconds since the epoch
    day: np.ndarray  # day index 0..days-1
    hour: np.ndarray
    member: np.ndarray  # rank 0..M-1 (member id = rank + 1)
    chat: np.ndarray  # 0..C-1 (chat id = index + 1)
    reaction: np.ndarray  # bool
    reply: np.ndarray  # bool
    length: np.ndarray
    # memberships
    first_seen: np.ndarray
    last_seen: np.ndarray
    joined: np.ndarray  # seconds, -1 = none
    left: np.ndarray  # seconds, -1 = none
    # rollups
    days_rows: list[tuple[Any, ...]] = field(default_factory=list)
    hours_rows: list[tuple[int, int, int, int]] = field(default_factory=list)
    md_key: np.ndarray | None = None  # member_days: day * M + rank
    md_msgs: np.ndarray | None = None
    md_reacts: np.ndarray | None = None
    md_replies: np.ndarray | None = None
    md_chars: np.ndarray | None = None
    # memberships: first and latest day index with a message, -1 = never
    first_post: np.ndarray | None = None
    last_post: np.ndarray | None = None
    recent_posts: np.ndarray | None = None

    def date_of(self, index: int) -> date:
        return self.first_day + timedelta(days=int(index))


def generate(load: Workload) -> State:
    """Events with realistic skew (Zipf-like members, growth, weekends, an evening peak)."""
    rng = np.random.default_rng(load.seed)
    n, m, d = load.events, load.members, load.days
    first_day = YESTERDAY - timedelta(days=d - 1)
    ranks = np.arange(1, m + 1, dtype=np.float64)
    who = rng.choice(m, size=n, p=_norm(1.0 / ranks**load.zipf)).astype(np.int32)
    weekday = np.array([(first_day + timedelta(days=i)).weekday() for i in range(d)])
    growth = 0.6 + 0.8 * np.arange(d) / max(1, d - 1)
    day = rng.choice(d, size=n, p=_norm(growth * np.where(weekday >= 5, 0.7, 1.0)))
    curve = (
        0.15
        + np.exp(-(((np.arange(24) - 19.5) / 5.0) ** 2))
        + 0.4 * np.exp(-(((np.arange(24) - 12.5) / 2.0) ** 2))
    )
    hour = rng.choice(24, size=n, p=_norm(curve))
    base = int((datetime.combine(first_day, time(0), tzinfo=UTC) - EPOCH).total_seconds())
    t = base + day.astype(np.int64) * 86_400 + hour * 3_600 + rng.integers(0, 3_600, size=n)
    order = np.argsort(t, kind="stable")
    t, day, hour, who = (
        t[order],
        day[order].astype(np.int32),
        hour[order].astype(np.int8),
        who[order],
    )
    roll = rng.random(n)
    reaction = roll < load.reaction_share
    reply = ~reaction & (roll < load.reaction_share + load.reply_share)
    length = np.where(reaction, 0, rng.integers(1, 401, size=n)).astype(np.int32)
    # A member writes in their home chat 80 % of the time.
    home = (who % load.chats).astype(np.int8)
    chat = np.where(rng.random(n) < 0.8, home, rng.integers(0, load.chats, size=n)).astype(np.int8)
    state = State(
        load, first_day, t, day, hour, who, chat, reaction, reply, length,
        *_memberships(rng, load, t, who, base),
    )  # fmt: skip
    _rollups(state)
    return state


def _norm(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def _memberships(
    rng: np.random.Generator, load: Workload, t: np.ndarray, who: np.ndarray, base: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """First/last seen from the events; members first seen after two weeks joined just
    before; silent members joined somewhere in the window, a few of them left again."""
    m, span = load.members, load.days * 86_400
    first = np.full(m, -1, dtype=np.int64)
    last = np.full(m, -1, dtype=np.int64)
    ranks, idx = np.unique(who, return_index=True)
    first[ranks] = t[idx]
    ranks_r, idx_r = np.unique(who[::-1], return_index=True)
    last[ranks_r] = t[::-1][idx_r]
    silent = first < 0
    quiet_at = base + rng.integers(0, span, size=m)
    first = np.where(silent, quiet_at, first)
    last = np.where(silent, quiet_at, last)
    joined = np.where(first >= base + 14 * 86_400, first - rng.integers(0, 600, size=m), -1)
    joined = np.where(silent & (rng.random(m) < 0.5), quiet_at, joined)
    leave_at = joined + rng.integers(1, 20, size=m) * 86_400
    leaves = silent & (joined >= 0) & (rng.random(m) < 0.1) & (leave_at < base + span)
    left = np.where(leaves, leave_at, -1)
    return first, last, joined, left


def _rollups(s: State) -> None:
    """community_days, community_hours and member_days exactly as the writer counts them."""
    m, d = s.load.members, s.load.days
    msg = ~s.reaction
    base = int((datetime.combine(s.first_day, time(0), tzinfo=UTC) - EPOCH).total_seconds())
    key = s.day.astype(np.int64) * m + s.member
    uniq, inv = np.unique(key, return_inverse=True)
    s.md_key = uniq
    s.md_msgs = np.bincount(inv, weights=msg).astype(np.int64)
    s.md_reacts = np.bincount(inv, weights=s.reaction).astype(np.int64)
    s.md_replies = np.bincount(inv, weights=s.reply).astype(np.int64)
    s.md_chars = np.bincount(inv, weights=s.length * msg).astype(np.int64)
    posted = uniq[s.md_msgs > 0]  # sorted by (day, rank)
    s.first_post = np.full(m, -1, dtype=np.int64)
    s.last_post = np.full(m, -1, dtype=np.int64)
    ranks, idx = np.unique(posted % m, return_index=True)
    s.first_post[ranks] = posted[idx] // m
    ranks, idx = np.unique((posted % m)[::-1], return_index=True)
    s.last_post[ranks] = posted[::-1][idx] // m
    # memberships.recent_posts: bit k = a post on last_post - k (storage/postdays.py)
    who, gap = posted % m, s.last_post[posted % m] - posted // m
    near = gap < 62
    s.recent_posts = np.zeros(m, dtype=np.int64)
    np.bitwise_or.at(s.recent_posts, who[near], np.left_shift(np.int64(1), gap[near]))
    active = np.bincount((uniq // m)[s.md_msgs > 0], minlength=d)
    messages = np.bincount(s.day[msg], minlength=d)
    replies = np.bincount(s.day[s.reply], minlength=d)
    reactions = np.bincount(s.day[s.reaction], minlength=d)
    join_day = (s.joined[s.joined >= 0] - base) // 86_400
    joins = np.bincount(join_day[join_day >= 0], minlength=d)[:d]
    leaves = np.bincount((s.left[s.left >= 0] - base) // 86_400, minlength=d)[:d]
    founders = int((s.joined < 0).sum())
    count = founders + np.cumsum(joins - leaves)
    s.days_rows = [
        (i, int(messages[i]), int(active[i]), int(joins[i]), int(leaves[i]),
         int(reactions[i]), int(replies[i]), int(count[i]))
        for i in range(d)
    ]  # fmt: skip
    hkey = s.day.astype(np.int64) * 24 + s.hour
    hm = np.bincount(hkey[msg], minlength=d * 24)
    hr = np.bincount(hkey[s.reaction], minlength=d * 24)
    s.hours_rows = [
        (k // 24, k % 24, int(hm[k]), int(hr[k])) for k in np.flatnonzero(hm + hr).tolist()
    ]


# --- what the summary must say ---------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    """The numbers every variant must agree on, for yesterday."""

    messages: int
    replies: int
    reactions: int
    previous_messages: tuple[int, ...]  # the 7 days before, nearest first
    active: int
    dau: int
    wau: int
    mau: int
    top: tuple[tuple[str, int], ...]  # (platform user id, messages)
    hours: tuple[int, ...]


def expected(s: State) -> Headline:
    """The headline for yesterday, counted from the generated arrays."""
    m, y = s.load.members, s.load.days - 1
    assert s.md_key is not None and s.md_msgs is not None and s.md_reacts is not None
    md_day, md_rank = s.md_key // m, s.md_key % m
    writes = s.md_msgs > 0

    def distinct(days: int) -> int:
        return int(np.unique(md_rank[writes & (md_day > y - days)]).size)

    rows = s.days_rows
    today = (md_day == y) & writes & (md_rank != OPTED_OUT_RANK) & (md_rank != BOT_RANK)
    ranks, msgs, reacts = md_rank[today], s.md_msgs[today], s.md_reacts[today]
    # messages desc, reactions desc, then display name and id ("Member <rank>")
    first = s.load.first_member
    order = sorted(
        range(ranks.size), key=lambda i: (-msgs[i], -reacts[i], _name(first + int(ranks[i])))
    )
    top = tuple((_user_id(first + int(ranks[i])), int(msgs[i])) for i in order[:TOP])
    hours = np.bincount(s.hour[(s.day == y) & ~s.reaction], minlength=24)
    return Headline(
        messages=rows[y][1],
        replies=rows[y][6],
        reactions=rows[y][5],
        previous_messages=tuple(rows[y - k][1] if y - k >= 0 else 0 for k in range(1, 8)),
        active=rows[y][2],
        dau=distinct(1),
        wau=distinct(7),
        mau=distinct(30),
        top=top,
        hours=tuple(int(h) for h in hours),
    )


def _name(rank: int) -> str:
    return f"Member {rank}"


def _user_id(rank: int) -> str:
    return str(5_000_000 + rank)


def from_metrics(m: CommunityMetrics, previous: tuple[int, ...]) -> Headline:
    """The headline as `daily_metrics` reports it (`previous` comes from the trend check)."""
    return Headline(
        messages=m.messages,
        replies=m.replies,
        reactions=m.reactions,
        previous_messages=previous,
        active=m.active_members,
        dau=m.dau,
        wau=m.wau,
        mau=m.mau,
        top=tuple((c.user_id, c.messages) for c in m.top_contributors),
        hours=m.hours,
    )


def check_metrics(m: CommunityMetrics, want: Headline) -> None:
    """Raise unless the metrics match the generated state (trend: previous day and average)."""
    got = from_metrics(m, want.previous_messages)
    problems = _differences(got, want)
    trend = m.trends.messages
    if trend.previous != want.previous_messages[0]:
        problems.append(f"trend.previous={trend.previous} (want {want.previous_messages[0]})")
    if abs(trend.average - statistics.mean(want.previous_messages)) > 1e-6:
        problems.append(f"trend.average={trend.average}")
    if problems:
        raise VerificationError(", ".join(problems))


def _differences(got: Headline, want: Headline) -> list[str]:
    return [
        f"{k}={getattr(got, k)!r:.60} (want {getattr(want, k)!r:.60})"
        for k in Headline.__dataclass_fields__
        if getattr(got, k) != getattr(want, k)
    ]


# --- loading ---------------------------------------------------------------------------------


def _iso_seconds(seconds: np.ndarray) -> list[str]:
    """SQLAlchemy's SQLite DATETIME text ('YYYY-MM-DD HH:MM:SS.ffffff') of UTC seconds."""
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    return [f"{v[:10]} {v[11:]}.000000" for v in text.tolist()]


def _aware(seconds: np.ndarray) -> list[datetime]:
    """Aware UTC datetimes of UTC seconds, for asyncpg."""
    naive = seconds.astype("datetime64[s]").astype("datetime64[us]").astype(object)
    return [v.replace(tzinfo=UTC) for v in naive]


def _rows(s: State, table: str, sqlite: bool) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of rows of one table, in column order (see `COLUMNS`), for either database."""
    stamp = _iso_seconds if sqlite else _aware
    days = [s.date_of(i) for i in range(s.load.days)]
    day_value: list[Any] = [d.isoformat() for d in days] if sqlite else days
    flag: Callable[[bool], Any] = int if sqlite else bool
    m = s.load.members
    cid, mb, cb, eb = s.load.community, s.load.first_member, s.load.first_chat, s.load.first_event
    if table == "communities":
        settings = "{}"  # JSON text on both databases
        created = stamp(np.array([s.t[0] - 86_400 if s.t.size else 0]))[0]
        title = "Big group" if cid == 1 else f"Group {cid}"
        yield [(cid, "telegram", f"-100{1234567889 + cid}", title, "UTC", "en", settings, created)]
    elif table == "chats":
        yield [
            (cb + i + 1, cid, f"-100{1_000_000 + cb + i}", f"Chat {cb + i}", "group")
            for i in range(s.load.chats)
        ]
    elif table == "members":
        for lo in range(0, m, CHUNK):
            hi = min(m, lo + CHUNK)
            seen = stamp(s.first_seen[lo:hi])
            yield [
                (mb + r + 1, "telegram", _user_id(mb + r), _name(mb + r),
                 None if r % 3 == 2 else f"member{mb + r}", flag(r == BOT_RANK), seen[r - lo])
                for r in range(lo, hi)
            ]  # fmt: skip
    elif table == "memberships":
        opted = stamp(np.array([s.t[-1] if s.t.size else 0]))[0]
        for lo in range(0, m, CHUNK):
            hi = min(m, lo + CHUNK)
            first, last = stamp(s.first_seen[lo:hi]), stamp(s.last_seen[lo:hi])
            joined, left = (
                stamp(np.maximum(s.joined[lo:hi], 0)),
                stamp(np.maximum(s.left[lo:hi], 0)),
            )
            assert s.first_post is not None and s.last_post is not None
            assert s.recent_posts is not None
            first_post, last_post = s.first_post[lo:hi].tolist(), s.last_post[lo:hi].tolist()
            recent = s.recent_posts[lo:hi].tolist()
            first_number = day_number(s.first_day)
            yield [
                (cid, mb + r + 1, first[r - lo], last[r - lo],
                 joined[r - lo] if s.joined[r] >= 0 else None,
                 left[r - lo] if s.left[r] >= 0 else None,
                 opted if r == OPTED_OUT_RANK else None,
                 day_value[first_post[r - lo]] if first_post[r - lo] >= 0 else None,
                 day_value[last_post[r - lo]] if last_post[r - lo] >= 0 else None,
                 recent[r - lo],
                 first_number + last_post[r - lo] if last_post[r - lo] >= 0 else None)
                for r in range(lo, hi)
            ]  # fmt: skip
    elif table == "activity_events":
        for lo in range(0, s.t.size, CHUNK):
            hi = min(s.t.size, lo + CHUNK)
            at = stamp(s.t[lo:hi])
            # Widened first: chat indexes are int8, and ids run past 127 with many communities.
            chat = (s.chat[lo:hi].astype(np.int64) + cb + 1).tolist()
            member = (s.member[lo:hi].astype(np.int64) + mb + 1).tolist()
            reaction = s.reaction[lo:hi].tolist()
            reply = s.reply[lo:hi].tolist()
            length = s.length[lo:hi].tolist()
            yield [
                (eb + lo + i + 1, cid, chat[i], member[i], 2 if reaction[i] else 1,
                 None if reaction[i] else "text", length[i], flag(reply[i]), at[i],
                 f"{'r' if reaction[i] else 'm'}:{lo + i:09d}")
                for i in range(hi - lo)
            ]  # fmt: skip
    elif table == "community_days":
        yield [(cid, day_value[r[0]], *r[1:]) for r in s.days_rows]
    elif table == "community_hours":
        yield [(cid, day_value[d], h, mm, rr) for d, h, mm, rr in s.hours_rows]
    elif table == "member_days":
        assert s.md_key is not None
        for lo in range(0, s.md_key.size, CHUNK):
            hi = min(s.md_key.size, lo + CHUNK)
            keys = s.md_key[lo:hi]
            d, r = (keys // m).tolist(), (keys % m + mb + 1).tolist()
            cols = [a[lo:hi].tolist() for a in (s.md_msgs, s.md_reacts, s.md_replies, s.md_chars)]
            yield [
                (cid, day_value[d[i]], r[i], cols[0][i], cols[1][i], cols[2][i], cols[3][i])
                for i in range(hi - lo)
            ]  # fmt: skip


COLUMNS: dict[str, tuple[str, ...]] = {
    "communities": ("id", "platform", "external_id", "title", "timezone", "locale", "settings",
                    "created_at"),
    "chats": ("id", "community_id", "external_id", "title", "kind"),
    "members": ("id", "platform", "external_id", "display_name", "username", "is_bot",
                "first_seen_at"),
    "memberships": ("community_id", "member_id", "first_seen_at", "last_seen_at", "joined_at",
                    "left_at", "opted_out_at", "first_posted_on", "last_posted_on",
                    "recent_posts", "recent_posts_day"),
    "activity_events": ("id", "community_id", "chat_id", "member_id", "kind", "content",
                        "length", "is_reply", "occurred_at", "event_key"),
    "community_days": ("community_id", "day", "messages", "active_members", "joins", "leaves",
                       "reactions", "replies", "member_count"),
    "community_hours": ("community_id", "day", "hour", "messages", "reactions"),
    "member_days": ("community_id", "day", "member_id", "messages", "reactions", "replies",
                    "characters"),
}  # fmt: skip


def load_sqlite(path: str, states: Sequence[State]) -> dict[str, int]:
    """Bulk insert with `executemany`, journal off, one transaction; back to WAL after."""
    counts: dict[str, int] = {}
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-1000000")
        con.execute("BEGIN")
        for table, columns in COLUMNS.items():
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})"
            )
            counts[table] = 0
            for s in states:
                for chunk in _rows(s, table, sqlite=True):
                    con.executemany(sql, chunk)
                    counts[table] += len(chunk)
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()
    return counts


async def load_postgres(db: Database, states: Sequence[State]) -> dict[str, int]:
    """`COPY` every table with asyncpg's `copy_records_to_table`, then ANALYZE (as autovacuum
    would soon after such a load)."""
    counts: dict[str, int] = {}
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        for table, columns in COLUMNS.items():
            counts[table] = 0
            for s in states:
                for chunk in _rows(s, table, sqlite=False):
                    await raw.copy_records_to_table(table, records=chunk, columns=list(columns))
                    counts[table] += len(chunk)
        await raw.execute("ANALYZE")
    return counts


# --- variants --------------------------------------------------------------------------------


async def _community(session: AsyncSession, cid: int = 1) -> Community:
    community = await session.get(Community, cid)
    assert community is not None
    return community


async def run_metrics(db: Database, cid: int = 1) -> CommunityMetrics:
    async with db.session() as session:
        return await daily_metrics(session, await _community(session, cid), YESTERDAY, now=NOW)


async def run_reply(
    services: Services, cid: int = 1, *, images: bool = True
) -> tuple[summary.SummaryData, Any]:
    """What `/summary` does for yesterday, up to the reply (no gateway: no live count)."""
    async with services.db.session() as session:
        community = await _community(session, cid)
        data = await summary.gather(
            session, community, kind=summary.Kind.DAILY, day=YESTERDAY, now=NOW
        )
        reply = await summary.render(services, community, data, images=images, now=NOW)
    return data, reply


def _day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    start = datetime.combine(first, time(0), tzinfo=UTC)
    return start, datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)


async def run_naive(db: Database, cid: int = 1) -> Headline:
    """The headline from raw events: GROUP BY queries over the windows each number needs."""
    e = ActivityEvent
    message = int(ActivityKind.MESSAGE)
    async with db.session() as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
        when = e.occurred_at if sqlite else func.timezone("UTC", e.occurred_at)
        start8, end = _day_bounds(YESTERDAY - timedelta(days=7), YESTERDAY)
        day_of = func.date(when)
        per_day = (
            await session.execute(
                select(
                    day_of,
                    func.sum(case((e.kind == message, 1), else_=0)),
                    func.sum(case((and_(e.kind == message, e.is_reply), 1), else_=0)),
                    func.sum(case((e.kind == int(ActivityKind.REACTION), 1), else_=0)),
                )
                .where(e.community_id == cid, e.occurred_at >= start8, e.occurred_at < end)
                .group_by(day_of)
            )
        ).all()
        by_day = {
            str(d)[:10]: (int(m or 0), int(rp or 0), int(rc or 0)) for d, m, rp, rc in per_day
        }
        y = by_day.get(YESTERDAY.isoformat(), (0, 0, 0))
        previous = tuple(
            by_day.get((YESTERDAY - timedelta(days=k)).isoformat(), (0, 0, 0))[0]
            for k in range(1, 8)
        )

        async def distinct_writers(days: int) -> int:
            start, _ = _day_bounds(YESTERDAY - timedelta(days=days - 1), YESTERDAY)
            query = select(func.count(distinct(e.member_id))).where(
                e.community_id == cid, e.occurred_at >= start, e.occurred_at < end,
                e.kind == message,
            )  # fmt: skip
            return int((await session.execute(query)).scalar_one())

        dau, wau, mau = (
            await distinct_writers(1),
            await distinct_writers(7),
            await distinct_writers(30),
        )
        start1, _ = _day_bounds(YESTERDAY, YESTERDAY)
        messages = func.sum(case((e.kind == message, 1), else_=0))
        reactions = func.sum(case((e.kind == int(ActivityKind.REACTION), 1), else_=0))
        top = (
            await session.execute(
                select(Member.external_id, messages)
                .select_from(e)
                .join(Member, Member.id == e.member_id)
                .join(
                    Membership,
                    and_(
                        Membership.community_id == e.community_id,
                        Membership.member_id == e.member_id,
                    ),
                )
                .where(
                    e.community_id == cid,
                    e.occurred_at >= start1,
                    e.occurred_at < end,
                    Membership.opted_out_at.is_(None),
                    Member.is_bot.is_(False),
                )
                .group_by(Member.id, Member.external_id, Member.display_name)
                .having(messages > 0)
                .order_by(
                    messages.desc(), reactions.desc(), Member.display_name, Member.external_id
                )
                .limit(TOP)
            )
        ).all()
        hour_of = (
            cast(func.strftime("%H", e.occurred_at), Integer)
            if sqlite
            else cast(func.extract("hour", when), Integer)
        )
        hours = [0] * 24
        for h, n in (
            await session.execute(
                select(hour_of, func.count())
                .where(
                    e.community_id == cid,
                    e.occurred_at >= start1,
                    e.occurred_at < end,
                    e.kind == message,
                )
                .group_by(hour_of)
            )
        ).all():
            hours[int(h)] = int(n)
    return Headline(
        messages=y[0], replies=y[1], reactions=y[2], previous_messages=previous,
        active=dau, dau=dau, wau=wau, mau=mau,
        top=tuple((str(u), int(n)) for u, n in top), hours=tuple(hours),
    )  # fmt: skip


# --- the benchmark ---------------------------------------------------------------------------


async def run(target: Target, load: Workload, mode: str, reps: int) -> BenchResult:
    """Generate, load once (untimed), then time the three variants interleaved."""
    progress(f"[{NAME} {target.name}] generating {load.events:,} events, {load.members:,} members")
    started = clock()
    state = generate(load)
    want = expected(state)
    progress(
        f"[{NAME} {target.name}] generated in {clock() - started:.1f} s: "
        f"{state.md_key.size if state.md_key is not None else 0:,} member-days; "
        f"yesterday {want.messages:,} messages, DAU {want.dau:,}, MAU {want.mau:,}"
    )
    async with fresh_database(target, NAME) as db:
        started = clock()
        if target.name == "sqlite":
            await db.dispose()  # the loader needs the file to itself
            path = db.engine.url.database
            assert path is not None
            counts = load_sqlite(path, [state])
        else:
            counts = await load_postgres(db, [state])
        load_seconds = clock() - started
        progress(f"[{NAME} {target.name}] loaded in {load_seconds:.1f} s: {counts}")
        services = Services(
            db=db, activity=ActivityWriter(db), renderer=Renderer(), clock=SystemClock()
        )
        results = {
            name: VariantResult(name, load.events, baseline=name == NAIVE) for name in VARIANTS
        }
        results[NAIVE].note = "scans activity_events (1, 7, 8 and 30-day windows)"
        results[METRICS].extra["load_seconds"] = round(load_seconds, 1)
        results[METRICS].extra["rows"] = counts

        async def metrics_checked() -> float:
            t0 = clock()
            m = await run_metrics(db)
            took = clock() - t0
            check_metrics(m, want)
            return took

        async def reply_checked() -> float:
            t0 = clock()
            data, reply = await run_reply(services)
            took = clock() - t0
            check_metrics(data.metrics, want)
            if reply.image is None or f"{want.messages:,}" not in reply.text:
                raise VerificationError("the reply has no chart or not yesterday's messages")
            results[REPLY].extra["chars"] = len(reply.text)
            results[REPLY].extra["png_bytes"] = len(reply.image.content)
            return took

        async def naive_checked() -> float:
            t0 = clock()
            got = await run_naive(db)
            took = clock() - t0
            problems = _differences(got, want)
            if problems:
                raise VerificationError(", ".join(problems))
            return took

        checked = {METRICS: metrics_checked, REPLY: reply_checked, NAIVE: naive_checked}

        await time_checked(f"[{NAME} {target.name}]", results, checked, reps)
    return BenchResult(
        NAME,
        target.name,
        mode,
        reps,
        {
            "N": load.events,
            "M": load.members,
            "days": load.days,
            "chats": load.chats,
            "seed": load.seed,
            "member_days": int(state.md_key.size) if state.md_key is not None else 0,
            "yesterday": YESTERDAY.isoformat(),
        },
        list(results.values()),
        where=target.describe(),
    )


def format_table(result: BenchResult) -> str:
    """variant, median ms, min–max, ratio to the baseline (baseline time / variant time)."""
    if result.skipped:
        return f"{result.db}: SKIPPED ({result.skipped})"
    load = describe(result.workload)
    base = [v.median for v in result.variants if v.baseline]
    head = ("variant", "median ms", "range (ms)", "speed-up vs baseline", "note")
    rows = [head]
    for v in result.variants:
        ratio = "baseline" if v.baseline else f"{base[0] / v.median:,.2f}×"
        spread = f"{min(v.seconds) * 1e3:.1f}–{max(v.seconds) * 1e3:.1f}" if v.seconds else "-"
        note = v.note if v.verified else f"WRONG: {v.error}"
        rows.append((v.name, f"{v.median * 1e3:,.1f}", spread, ratio, note))
    lines = aligned(rows, {0, 4})
    title = f"{result.benchmark} · {result.db} · {result.mode} ({load})"
    return "\n".join([f"{title} · median of {result.reps} interleaved reps", *lines])
