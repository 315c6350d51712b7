"""Activity logging: an in-memory queue drained by a batched writer that keeps rollups current.

The router calls `ActivityWriter.record` for every message, reaction, join and leave; it
only awaits when the queue is full (back-pressure, never dropping). A background task
writes each batch in one transaction: raw events with `ON CONFLICT DO NOTHING` (so a
replayed update is harmless), then the (community, day), (community, day, hour) and
(community, day, member) counters and the memberships, computed from only the rows that were
actually new. Days and hours are local to the community's time zone at write time. The hourly
counters started with schema 0007 and are not backfilled: hours before it read as zero.

The six per-batch statements (members, events, the three counter tables, memberships) bind plain
tuples through the driver (`_upsert`); the rarely written communities and chats go through
SQLAlchemy Core.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from functools import cache, lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from storage import postdays
from storage.activity_trip import (
    CommunityKey,
    MemberKey,
    TripOutcome,
    TripRows,
    row_chunks,
    write_trip,
)
from storage.db import Database, dialect_insert
from storage.models import (
    ActivityEvent,
    Chat,
    Community,
    CommunityDay,
    CommunityHour,
    Member,
    MemberDay,
    Membership,
)

log = logging.getLogger(__name__)

# Core tables: executemany through them is one multi-row INSERT per batch, whereas the ORM
# bulk path splits a batch wherever rows differ in which columns are NULL.
COMMUNITIES = Community.__table__
CHATS = Chat.__table__
MEMBERS = Member.__table__
EVENTS = ActivityEvent.__table__
MEMBER_DAYS = MemberDay.__table__
COMMUNITY_DAYS = CommunityDay.__table__
COMMUNITY_HOURS = CommunityHour.__table__
MEMBERSHIPS = Membership.__table__


class ActivityKind(IntEnum):
    MESSAGE = 1
    REACTION = 2
    JOIN = 3
    LEAVE = 4


class ActivityRecord(NamedTuple):
    """One thing a member did, as plain values (about 180 bytes to buffer).

    A named tuple rather than a frozen dataclass: one is built for every message, and a frozen
    dataclass sets its fields one `object.__setattr__` call at a time (3× slower to build).
    """

    kind: ActivityKind
    platform: str
    community_key: str
    chat_key: str
    member_key: str
    member_name: str
    at: datetime
    event_key: str
    community_title: str | None = None
    chat_title: str | None = None
    chat_kind: str = "group"
    member_username: str | None = None
    content: str | None = None
    length: int = 0
    is_reply: bool = False


@dataclass(frozen=True, slots=True)
class CommunityDefaults:
    """Settings a community gets the first time the bot sees it."""

    timezone: str = "UTC"
    locale: str = "en"


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class _LRU(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            return default
        self.move_to_end(key)
        return self[key]

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


@dataclass
class IdCache:
    """Platform keys -> database ids for chats, and -> (id, hash of name and username) for
    members: enough to notice a rename without holding 200,000 names in memory."""

    chats: _LRU = field(default_factory=lambda: _LRU(50_000))
    members: _LRU = field(default_factory=lambda: _LRU(200_000))


@dataclass
class BatchResult:
    written: int = 0
    duplicates: int = 0
    trip: bool = False  # written in one trip to SQLite's driver thread


# Second-column values per lookup query: keeps every query far below the bound-parameter caps.
_LOOKUP_CHUNK = 1000


async def _lookup(
    session: AsyncSession, query: Any, columns: Sequence[Any], keys: Iterable[tuple[Any, Any]]
) -> list[Any]:
    """Rows of `query` (which selects `columns` first) whose pair of columns is one of `keys`.

    A row-value `(a, b) IN (...)` list is planned by PostgreSQL as a chain of ORs: ~0.3 s per
    1 000 keys, and "stack depth limit exceeded" at 10 000 (the largest batch the config
    allows). Two plain `IN`s use the unique index; the superset they match is filtered here.
    """
    first, second = columns
    wanted = set(keys)
    firsts = list({a for a, _ in wanted})
    seconds = list({b for _, b in wanted})
    rows: list[Any] = []
    for start in range(0, len(seconds), _LOOKUP_CHUNK):
        cond = first.in_(firsts) & second.in_(seconds[start : start + _LOOKUP_CHUNK])
        for row in (await session.execute(query.where(cond))).all():
            if (row[0], row[1]) in wanted:
                rows.append(row)
    return rows


def _later(new: Any, old: Any) -> Any:
    """SQL for "the later of two nullable timestamps", portable to SQLite and PostgreSQL."""
    return case((new.is_(None), old), (old.is_(None), new), (new > old, new), else_=old)


def _earlier(new: Any, old: Any) -> Any:
    """SQL for "the earlier of two nullable values"."""
    return case((new.is_(None), old), (old.is_(None), new), (new < old, new), else_=old)


async def _community_ids(
    session: AsyncSession, records: Sequence[ActivityRecord], defaults: CommunityDefaults
) -> dict[tuple[str, str], tuple[int, str]]:
    """Find or create the communities in a batch; returns key -> (id, time zone)."""
    wanted: dict[tuple[str, str], ActivityRecord] = {}
    for rec in records:
        wanted.setdefault((rec.platform, rec.community_key), rec)
    query = select(Community.platform, Community.external_id, Community.id, Community.timezone)
    columns = (Community.platform, Community.external_id)
    existing = await _lookup(session, query, columns, wanted)
    found = {(p, e): (i, tz) for p, e, i, tz in existing}
    missing = [k for k in wanted if k not in found]
    if missing:
        insert = dialect_insert(session)
        rows = [
            {
                "platform": p,
                "external_id": e,
                "title": (wanted[(p, e)].community_title or "")[:256] or None,
                "timezone": defaults.timezone,
                "locale": defaults.locale,
                "settings": {},
                "created_at": wanted[(p, e)].at,
            }
            for p, e in sorted(missing)
        ]
        await session.execute(insert(COMMUNITIES).on_conflict_do_nothing(), rows)
        for p, e, i, tz in await _lookup(session, query, columns, missing):
            found[(p, e)] = (i, tz)
    return found


async def _chat_ids(
    session: AsyncSession,
    records: Sequence[ActivityRecord],
    communities: dict[tuple[str, str], tuple[int, str]],
    cache: IdCache,
    learned: dict[Any, int],
) -> dict[tuple[int, str], int]:
    ids: dict[tuple[int, str], int] = {}
    missing: dict[tuple[int, str], ActivityRecord] = {}
    for rec in records:
        key = (communities[(rec.platform, rec.community_key)][0], rec.chat_key)
        if key in ids or key in missing:
            continue
        cached = cache.chats.get(key)
        if cached is not None:
            ids[key] = cached
        else:
            missing[key] = rec
    if missing:
        insert = dialect_insert(session)
        rows = [
            {
                "community_id": cid,
                "external_id": ext,
                "title": (rec.chat_title or "")[:256] or None,
                "kind": rec.chat_kind,
            }
            for (cid, ext), rec in sorted(missing.items())
        ]
        await session.execute(insert(CHATS).on_conflict_do_nothing(), rows)
        query = select(Chat.community_id, Chat.external_id, Chat.id)
        columns = (Chat.community_id, Chat.external_id)
        for cid, ext, chat_id in await _lookup(session, query, columns, missing):
            ids[(cid, ext)] = chat_id
            learned[("chat", cid, ext)] = chat_id
    return ids


def _member_names(rec: ActivityRecord) -> tuple[str, str | None]:
    """The display name and username as stored (column lengths applied)."""
    return rec.member_name[:256], (rec.member_username or "")[:64] or None


def _cached_member(member_id: int, names: tuple[str, str | None]) -> tuple[int, int]:
    """What `IdCache.members` holds for a member stored with `names`."""
    return member_id, hash(names)


def _cached_id(cached: tuple[int, int] | None, names: tuple[str, str | None]) -> int | None:
    """The member's id if the cache has them under these names (None: write them)."""
    if cached is not None and cached[1] == hash(names):
        return cached[0]
    return None


# --- the hot statements, written through the driver -------------------------------------------
#
# Per batch the writer runs six statements over hundreds of rows. Through SQLAlchemy Core each
# row costs ~10 µs of parameter processing (a dict per row, a bind processor per value); the
# driver path below binds plain tuples: `executemany` or a multi-row `VALUES` on SQLite, one
# `unnest` of column arrays on PostgreSQL. The SQL is rendered once per dialect from the table
# metadata, and the SET expressions from the same SQLAlchemy helpers as before, so the column
# names, types and merge rules have one definition. `exec_driver_sql` keeps SQLAlchemy's
# transaction and its error wrapping (the retry logic reads `DBAPIError.orig.sqlstate`).

# Bound values per SQLite statement (SQLITE_MAX_VARIABLE_NUMBER is 32 766 since 3.32).
_SQLITE_VARIABLES = 30_000

UpdateSet = Callable[[Any, Any], dict[str, Any]]


@dataclass(frozen=True)
class _Upsert:
    """`INSERT … ON CONFLICT (conflict) DO NOTHING | DO UPDATE SET …` [RETURNING …] on a table."""

    table: Any
    columns: tuple[str, ...]
    conflict: tuple[str, ...]
    # (target table, excluded) -> {column: SQLAlchemy expression}; None means DO NOTHING.
    update: UpdateSet | None = None
    returning: tuple[str, ...] = ()


def _counters(*names: str) -> UpdateSet:
    """SET clause adding the batch's counts to the stored ones."""
    return lambda t, ex: {c: t.c[c] + ex[c] for c in names}


def _membership_update(t: Any, ex: Any) -> dict[str, Any]:
    return {
        "first_seen_at": _earlier(ex.first_seen_at, t.c.first_seen_at),
        "last_seen_at": _later(ex.last_seen_at, t.c.last_seen_at),
        "joined_at": _later(ex.joined_at, t.c.joined_at),
        "left_at": _later(ex.left_at, t.c.left_at),
        "first_posted_on": _earlier(ex.first_posted_on, t.c.first_posted_on),
        "last_posted_on": _later(ex.last_posted_on, t.c.last_posted_on),
        "recent_posts": postdays.merged(
            ex.recent_posts_day, ex.recent_posts, t.c.recent_posts_day, t.c.recent_posts
        ),
        "recent_posts_day": _later(ex.recent_posts_day, t.c.recent_posts_day),
    }


UPSERT_MEMBERS = _Upsert(
    MEMBERS,
    ("platform", "external_id", "display_name", "username", "is_bot", "first_seen_at"),
    ("platform", "external_id"),
    # A known member's name may have changed since we last saw them.
    lambda t, ex: {"display_name": ex.display_name, "username": ex.username},
    returning=("platform", "external_id", "id"),
)
INSERT_EVENTS = _Upsert(
    EVENTS,
    (
        "community_id",
        "chat_id",
        "member_id",
        "kind",
        "content",
        "length",
        "is_reply",
        "occurred_at",
        "event_key",
    ),
    ("chat_id", "event_key"),
    returning=("chat_id", "event_key"),
)
UPSERT_MEMBER_DAYS = _Upsert(
    MEMBER_DAYS,
    ("community_id", "day", "member_id", "messages", "reactions", "replies", "characters"),
    ("community_id", "day", "member_id"),
    _counters("messages", "reactions", "replies", "characters"),
    # The row's total after the batch tells whether the member became active that day.
    returning=("community_id", "day", "member_id", "messages"),
)
_DAY_COUNTERS = ("messages", "active_members", "joins", "leaves", "reactions", "replies")
UPSERT_COMMUNITY_DAYS = _Upsert(
    COMMUNITY_DAYS,
    ("community_id", "day", *_DAY_COUNTERS),
    ("community_id", "day"),
    _counters(*_DAY_COUNTERS),
)
UPSERT_COMMUNITY_HOURS = _Upsert(
    COMMUNITY_HOURS,
    ("community_id", "day", "hour", "messages", "reactions"),
    ("community_id", "day", "hour"),
    _counters("messages", "reactions"),
)
UPSERT_MEMBERSHIPS = _Upsert(
    MEMBERSHIPS,
    (
        "community_id",
        "member_id",
        "first_seen_at",
        "last_seen_at",
        "joined_at",
        "left_at",
        "first_posted_on",
        "last_posted_on",
        "recent_posts",
        "recent_posts_day",
    ),
    ("community_id", "member_id"),
    _membership_update,
)

_DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}


@lru_cache(maxsize=64)
def _conflict_clause(spec: _Upsert, dialect: str) -> str:
    """` ON CONFLICT … DO …[ RETURNING …]`, the SET expressions compiled for `dialect`."""
    sql = f" ON CONFLICT ({', '.join(spec.conflict)}) "
    if spec.update is None:
        sql += "DO NOTHING"
    else:
        excluded = sqlite.insert(spec.table).excluded  # renders as `excluded.<column>` anywhere
        compile_args = {"dialect": _DIALECTS[dialect], "compile_kwargs": {"literal_binds": True}}
        sets = spec.update(spec.table, excluded)
        sql += "DO UPDATE SET " + ", ".join(
            f"{column} = {expr.compile(**compile_args)}" for column, expr in sets.items()
        )
    if spec.returning:
        sql += f" RETURNING {', '.join(spec.returning)}"
    return sql


def _pg_array_type(column: Any) -> str:
    """The column's PostgreSQL type without a length: a too-long value must fail on insert,
    as it does through SQLAlchemy, not be cut short by an explicit `::varchar(16)` cast."""
    name = str(column.type.compile(dialect=_DIALECTS["postgresql"]))
    return name.split("(")[0] + "[]"


@lru_cache(maxsize=256)
def _upsert_sql(spec: _Upsert, dialect: str, rows: int = 1) -> str:
    """The statement for `rows` rows (SQLite) or for column arrays (PostgreSQL)."""
    columns = ", ".join(spec.columns)
    head = f"INSERT INTO {spec.table.name} ({columns}) "
    if dialect == "postgresql":
        arrays = ", ".join(
            f"${n}::{_pg_array_type(spec.table.c[c])}" for n, c in enumerate(spec.columns, 1)
        )
        # Sorted: concurrent writers then take row locks in one order and never deadlock.
        body = (
            f"SELECT {columns} FROM unnest({arrays}) AS u({columns}) "
            f"ORDER BY {', '.join(spec.conflict)}"
        )
    else:
        group = "(" + ", ".join("?" * len(spec.columns)) + ")"
        body = "VALUES " + ", ".join([group] * rows)
    return head + body + _conflict_clause(spec, dialect)


async def _upsert(
    session: AsyncSession, spec: _Upsert, rows: Sequence[tuple[Any, ...]]
) -> list[Any]:
    """Run `spec` over `rows` (tuples in `spec.columns` order); the RETURNING rows, if any."""
    if not rows:
        return []
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        arrays = tuple(list(column) for column in zip(*rows, strict=True))
        result = await conn.exec_driver_sql(_upsert_sql(spec, "postgresql"), arrays)
        return list(result.all()) if spec.returning else []
    # SQLite: straight to aiosqlite, one trip to its thread per statement (SQLAlchemy's
    # cursor adapter makes about four). Same connection and transaction: sqlite3 opens it
    # before the first write, SQLAlchemy commits or rolls it back.
    driver = (await conn.get_raw_connection()).driver_connection
    if not spec.returning:
        sql = _upsert_sql(spec, "sqlite")
        await _sqlite_call(driver.executemany, sql, rows)
        return []
    # `executemany` drops RETURNING rows: one multi-row VALUES per chunk instead.
    found: list[Any] = []
    for chunk in row_chunks(rows, _SQLITE_VARIABLES // len(spec.columns)):
        sql = _upsert_sql(spec, "sqlite", len(chunk))
        flat = [value for row in chunk for value in row]
        found.extend(await _sqlite_call(driver.execute_fetchall, sql, flat))
    return found


async def _sqlite_call(method: Callable[[str, Any], Awaitable[Any]], sql: str, params: Any) -> Any:
    """`method(sql, params)` on aiosqlite, its errors wrapped as SQLAlchemy wraps them (the
    writer tells transient failures from refused data by SQLAlchemy's exception classes)."""
    try:
        return await method(sql, params)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc


def _check_aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return at


def _sqlite_time(at: datetime) -> str:
    """What `UTCDateTime` stores on SQLite: naive UTC text, always with microseconds (text
    comparison in the membership merge relies on one format)."""
    if at.tzinfo is not UTC:
        at = _check_aware(at).astimezone(UTC)
    # The date and the time apart: half the cost of an aware `isoformat` (which works out the
    # "+00:00" only to cut it off), and days repeat.
    return f"{_iso_day(at.date())} {at.time().isoformat('microseconds')}"


_iso_day = lru_cache(maxsize=64)(date.isoformat)


@dataclass(frozen=True, slots=True)
class _Binding:
    """How datetimes and dates are bound on one dialect's driver path."""

    time: Callable[[datetime], Any]
    day: Callable[[date], Any]


_BINDINGS = {
    "sqlite": _Binding(_sqlite_time, date.isoformat),
    "postgresql": _Binding(_check_aware, lambda day: day),
}


def _memoized(bind: _Binding) -> _Binding:
    """`bind` remembering what it bound, for one batch: an event's time is bound again as its
    member's first time and its membership's first and last, and days recur all the time."""
    return _Binding(cache(bind.time), cache(bind.day))


async def _member_ids(
    session: AsyncSession,
    latest: dict[MemberKey, tuple[ActivityRecord, Any]],
    cache: IdCache,
    learned: dict[Any, Any],
) -> dict[MemberKey, int]:
    """Member ids for a batch; `latest` gives each member's latest record and first time, bound."""
    ids: dict[MemberKey, int] = {}
    missing: dict[MemberKey, tuple[ActivityRecord, Any]] = {}
    for key, seen in latest.items():
        # A cached member is written again only when their name changed (a rename).
        member_id = _cached_id(cache.members.get(key), _member_names(seen[0]))
        if member_id is not None:
            ids[key] = member_id
        else:
            missing[key] = seen
    if missing:
        rows = [
            (p, ext, *_member_names(rec), False, first)
            for (p, ext), (rec, first) in sorted(missing.items())
        ]
        # DO UPDATE returns every row, inserted or not: no lookup afterwards.
        for p, ext, member_id in await _upsert(session, UPSERT_MEMBERS, rows):
            ids[(p, ext)] = member_id
            learned[("member", p, ext)] = _cached_member(
                member_id, _member_names(missing[(p, ext)][0])
            )
    return ids


@dataclass(slots=True)
class _MemberDelta:
    messages: int = 0
    reactions: int = 0
    replies: int = 0
    characters: int = 0


@dataclass(slots=True)
class _CommunityDelta:
    messages: int = 0
    active_members: int = 0
    joins: int = 0
    leaves: int = 0
    reactions: int = 0
    replies: int = 0


@dataclass(slots=True)
class _MembershipDelta:
    first: datetime
    last: datetime
    joined: datetime | None = None
    left: datetime | None = None
    post_days: set[date] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class WrittenActivity:
    """A record this batch wrote for the first time, with its community resolved."""

    record: ActivityRecord
    community_id: int
    timezone: str


# Runs inside the batch's transaction with the records that were new (never replays), so
# whatever it derives (message points) commits or rolls back with the activity itself.
BatchHook = Callable[[AsyncSession, Sequence[WrittenActivity]], Awaitable[None]]


class _LocalTime:
    """UTC instant -> (local day, local hour) per time zone, one `astimezone` per quarter hour.

    Time zone offsets are whole quarter hours (since the 1970s, everywhere), so every instant of
    a UTC quarter hour falls in the same local hour, unless the offset changes inside it; a
    quarter where that is not so (a change, an odd historical offset) is worked out per instant.
    The key is the instant's integer quarter: cheaper than any `datetime` arithmetic.
    """

    __slots__ = ("_quarters",)

    def __init__(self) -> None:
        self._quarters: dict[tuple[str, int], tuple[date, int] | None] = {}

    def __len__(self) -> int:
        return len(self._quarters)

    def of(self, at: datetime, tz: str) -> tuple[date, int]:
        # Exact: a timestamp's float is within half a microsecond of the instant, and the
        # instant is at least a microsecond from the next whole second.
        key = (tz, int(at.timestamp() // _QUARTER))
        found = self._quarters.get(key, _UNSEEN)
        if found is _UNSEEN:
            found = self._quarters[key] = self._quarter(key[1], zone(tz))
        if found is None:
            local = at.astimezone(zone(tz))
            return local.date(), local.hour
        return found

    @staticmethod
    def _quarter(quarter: int, tz: ZoneInfo) -> tuple[date, int] | None:
        """The local (day, hour) of every instant of a UTC quarter hour; None if they differ."""
        start = datetime.fromtimestamp(quarter * _QUARTER, UTC)
        first = start.astimezone(tz)
        last = (start + _LAST_INSTANT).astimezone(tz)
        if first.utcoffset() != last.utcoffset() or first.hour != last.hour:
            return None
        return first.date(), first.hour


_UNSEEN: Any = object()
_QUARTER = 900  # seconds
_LAST_INSTANT = timedelta(seconds=_QUARTER - 1, microseconds=999_999)


@dataclass(slots=True)
class PreparedBatch:
    """What a batch writes, worked out before its transaction: keyed by platform keys, with
    dates and times already bound, so the transaction only maps keys to ids.

    The writer prepares batch k+1 while batch k's statements and commit run on the driver's
    thread. The rollups assume every event is new and each community is in the time zone in
    `zones`; the transaction checks both and aggregates again in the rare batch where either
    is wrong (a replay, a time zone just changed).
    """

    records: list[ActivityRecord]  # de-duplicated within the batch, first one wins
    event_keys: list[tuple[CommunityKey, str, str]]  # (community, chat key, event key)
    event_rows: list[tuple[Any, ...]]  # INSERT_EVENTS columns from `kind` to `occurred_at`
    # Per member: the latest record (its name is the current one) and the earliest time, bound.
    members: dict[MemberKey, tuple[ActivityRecord, Any]]
    rollups: _Rollups
    zones: dict[CommunityKey, str]
    # SQLite: the statements' rows with the ids the writer knew (see `storage/activity_trip.py`)
    trip: TripRows | None = None


@dataclass(slots=True)
class _Rollups:
    """One batch's counter rows, keyed by platform keys, dates and times bound."""

    # (community, day, bound day, member key, messages, reactions, replies, characters)
    member_days: list[tuple[Any, ...]]
    community_days: dict[tuple[CommunityKey, date], _CommunityDelta]
    # (community, bound day, hour, messages, reactions)
    community_hours: list[tuple[Any, ...]]
    # (community, member key, *UPSERT_MEMBERSHIPS columns after the two ids)
    memberships: list[tuple[Any, ...]]


def _unique(records: Iterable[ActivityRecord]) -> list[ActivityRecord]:
    """The batch without repeats of one event (PostgreSQL refuses to touch a row twice)."""
    seen: dict[tuple[str, str, str, str], ActivityRecord] = {}
    for rec in records:
        key = (rec.platform, rec.community_key, rec.chat_key, rec.event_key[:128])
        if key not in seen:
            seen[key] = rec
    return list(seen.values())


class _Aggregator:
    """A batch's rollups, keyed by platform keys: `add` the records, then `finish` binds them."""

    def __init__(self, zones: dict[CommunityKey, str], local_time: _LocalTime) -> None:
        self.zones = zones
        self.local_time = local_time
        self.member_days: dict[tuple[CommunityKey, date, str], _MemberDelta] = {}
        self.community_days: dict[tuple[CommunityKey, date], _CommunityDelta] = {}
        # (community, local day, local hour) -> [messages, reactions]
        self.community_hours: dict[tuple[CommunityKey, date, int], list[int]] = {}
        self.memberships: dict[tuple[CommunityKey, str], _MembershipDelta] = {}

    def add(self, records: Iterable[ActivityRecord]) -> None:
        member_days, community_days = self.member_days, self.community_days
        community_hours, memberships = self.community_hours, self.memberships
        zones, local_time = self.zones, self.local_time.of
        message, reaction = ActivityKind.MESSAGE, ActivityKind.REACTION
        for rec in records:
            at, kind, member = rec.at, rec.kind, rec.member_key
            community = (rec.platform, rec.community_key)
            day, hour = local_time(at, zones[community])
            cday = community_days.get((community, day))
            if cday is None:
                cday = community_days[(community, day)] = _CommunityDelta()
            ms = memberships.get((community, member))
            if ms is None:
                ms = memberships[(community, member)] = _MembershipDelta(at, at)
            elif at < ms.first:
                ms.first = at
            elif at > ms.last:
                ms.last = at
            if kind is message or kind is reaction:
                mday = member_days.get((community, day, member))
                if mday is None:
                    mday = member_days[(community, day, member)] = _MemberDelta()
                hourly = community_hours.get((community, day, hour))
                if hourly is None:
                    hourly = community_hours[(community, day, hour)] = [0, 0]
                if kind is message:
                    hourly[0] += 1
                    ms.post_days.add(day)
                    mday.messages += 1
                    mday.characters += max(0, rec.length)
                    cday.messages += 1
                    if rec.is_reply:
                        mday.replies += 1
                        cday.replies += 1
                else:
                    hourly[1] += 1
                    mday.reactions += 1
                    cday.reactions += 1
            elif kind is ActivityKind.JOIN:
                cday.joins += 1
                ms.joined = at if ms.joined is None else max(ms.joined, at)
            elif kind is ActivityKind.LEAVE:
                cday.leaves += 1
                ms.left = at if ms.left is None else max(ms.left, at)

    def finish(self, bind: _Binding) -> _Rollups:
        day_of, time = bind.day, bind.time
        member_days = [
            (c, day, day_of(day), mk, d.messages, d.reactions, d.replies, d.characters)
            for (c, day, mk), d in self.member_days.items()
        ]
        hours = [
            (c, day_of(day), hour, m, r) for (c, day, hour), (m, r) in self.community_hours.items()
        ]
        memberships = []
        for (c, mk), m in self.memberships.items():
            day_number, mask = postdays.mask_of(m.post_days) or (None, 0)
            days = m.post_days
            memberships.append(
                (
                    c,
                    mk,
                    time(m.first),
                    time(m.last),
                    None if m.joined is None else time(m.joined),
                    None if m.left is None else time(m.left),
                    day_of(min(days)) if days else None,
                    day_of(max(days)) if days else None,
                    mask,
                    day_number,
                )
            )
        return _Rollups(member_days, self.community_days, hours, memberships)


def _rollups_of(
    records: Iterable[ActivityRecord],
    zones: dict[CommunityKey, str],
    bind: _Binding,
    local_time: _LocalTime | None = None,
) -> _Rollups:
    aggregator = _Aggregator(zones, local_time or _LocalTime())
    aggregator.add(records)
    return aggregator.finish(bind)


def prepare_batch(
    records: Sequence[ActivityRecord],
    dialect: str,
    zones: dict[CommunityKey, str],
    local_time: _LocalTime | None = None,
    *,
    known: dict[CommunityKey, tuple[int, str]] | None = None,
    cache: IdCache | None = None,
) -> PreparedBatch:
    """Work out `records`' rows before their transaction, each community's local days in
    its time zone in `zones` (which the transaction checks).

    On SQLite, given the communities' ids and zones as last read (`known`) and the id
    `cache`, the statements' rows are built too, for one trip to the driver's thread.
    """
    bind = _memoized(_BINDINGS[dialect])
    time = bind.time
    unique = _unique(records)
    members: dict[MemberKey, tuple[ActivityRecord, datetime]] = {}
    event_keys = []
    event_rows = []
    for rec in unique:
        key = (rec.platform, rec.member_key)
        seen = members.get(key)
        if seen is None:
            members[key] = (rec, rec.at)
        else:
            # The latest record carries the current name; the earliest time is first seen.
            latest, first = seen
            members[key] = (rec if rec.at >= latest.at else latest, min(first, rec.at))
        community = (rec.platform, rec.community_key)
        event_keys.append((community, rec.chat_key, rec.event_key[:128]))
        event_rows.append(
            (
                int(rec.kind),
                rec.content,
                max(0, rec.length),
                rec.is_reply,
                time(rec.at),
            )
        )
    bound_members = {key: (rec, time(first)) for key, (rec, first) in members.items()}
    rollups = _rollups_of(unique, zones, bind, local_time)
    prepared = PreparedBatch(unique, event_keys, event_rows, bound_members, rollups, zones)
    if dialect == "sqlite" and known is not None and cache is not None:
        prepared.trip = _trip_rows(prepared, known, cache, bind)
    return prepared


def _trip_rows(
    prepared: PreparedBatch,
    known: dict[CommunityKey, tuple[int, str]],
    cache: IdCache,
    bind: _Binding,
) -> TripRows | None:
    """The batch's statement rows with the ids `known` and cached; None when a community or
    chat is not known yet (the transaction then finds or creates them)."""
    communities: dict[CommunityKey, tuple[int, str]] = {}
    for key, tz in prepared.zones.items():
        hint = known.get(key)
        if hint is None or hint[1] != tz:
            return None
        communities[key] = hint
    cid = {key: value[0] for key, value in communities.items()}

    member_ids: dict[MemberKey, int] = {}
    upserts = []
    for key, (rec, first) in prepared.members.items():
        names = _member_names(rec)
        member_id = _cached_id(cache.members.get(key), names)
        if member_id is not None:
            member_ids[key] = member_id
        else:
            upserts.append((*key, *names, False, first))
    upserts.sort()

    chats: dict[tuple[int, str], int] = {}
    events = []
    for (community, chat_key, event_key), rec, row in zip(
        prepared.event_keys, prepared.records, prepared.event_rows, strict=True
    ):
        community_id = cid[community]
        chat_id = chats.get((community_id, chat_key))
        if chat_id is None:
            chat_id = cache.chats.get((community_id, chat_key))
            if chat_id is None:
                return None
            chats[(community_id, chat_key)] = chat_id
        member = (rec.platform, rec.member_key)
        events.append((community_id, chat_id, member_ids.get(member, member), *row, event_key))
    events.sort(key=_chat_and_event_key)

    rollups, day_of = prepared.rollups, bind.day
    member_days = []
    for c, day, bound, mk, messages, reactions, replies, characters in rollups.member_days:
        member = (c[0], mk)
        row = (cid[c], bound, member_ids.get(member, member), messages, reactions, replies)
        member_days.append(((*row, characters), (messages, c, day)))
    community_days = [
        ((c, day), (cid[c], day_of(day), d.messages, d.joins, d.leaves, d.reactions, d.replies))
        for (c, day), d in rollups.community_days.items()
    ]
    hours = sorted((cid[c], *rest) for c, *rest in rollups.community_hours)
    memberships = []
    for c, mk, *rest in rollups.memberships:
        member = (c[0], mk)
        memberships.append((cid[c], member_ids.get(member, member), *rest))
    return TripRows(
        communities,
        member_ids,
        upserts,
        events,
        chats,
        member_days,
        community_days,
        hours,
        memberships,
    )


async def write_batch(
    session: AsyncSession,
    records: Sequence[ActivityRecord],
    *,
    defaults: CommunityDefaults = CommunityDefaults(),
    cache: IdCache | None = None,
    hooks: Sequence[BatchHook] = (),
    prepared: PreparedBatch | None = None,
) -> BatchResult:
    """Write one batch in the caller's transaction: raw events, rollups and memberships.

    Replays are harmless: only events whose key was new change any counter. The caller
    commits; `cache` is only updated by `ActivityWriter` after the commit succeeded.
    `prepared` is `prepare_batch(records, …)`, made ahead of time; without it the batch is
    prepared here.
    """
    if not records:
        return BatchResult()
    cache = cache if cache is not None else IdCache()
    dialect = session.bind.dialect.name
    if prepared is not None and prepared.trip is not None and dialect == "sqlite":
        done = await _write_by_trip(session, records, prepared, prepared.trip, cache, hooks)
        if done is not None:
            return done
    bind = _BINDINGS[dialect]
    learned: dict[Any, Any] = {}
    communities = await _community_ids(session, records, defaults)
    zones = {key: tz for key, (_, tz) in communities.items()}
    session.info.setdefault("activity_communities", {}).update(communities)
    if prepared is None or any(prepared.zones.get(k) != tz for k, tz in zones.items()):
        prepared = prepare_batch(records, dialect, zones)
    chats = await _chat_ids(session, records, communities, cache, learned)
    members = await _member_ids(session, prepared.members, cache, learned)
    session.info.setdefault("activity_learned", {}).update(learned)

    rows = []
    for (community, chat_key, event_key), rec, row in zip(
        prepared.event_keys, prepared.records, prepared.event_rows, strict=True
    ):
        community_id = communities[community][0]
        chat_id = chats[(community_id, chat_key)]
        rows.append(
            (community_id, chat_id, members[(rec.platform, rec.member_key)], *row, event_key)
        )
    # In (chat, event key) order, the unique index's: PostgreSQL writers lock rows in one order.
    returned = await _upsert(session, INSERT_EVENTS, sorted(rows, key=_chat_and_event_key))
    if len(returned) == len(rows):
        rollups = prepared.rollups
        new = prepared.records
    else:
        # Some events were written before (a replay): count only the new ones.
        fresh = {(c, k) for c, k in returned}
        new = [
            rec
            for rec, row in zip(prepared.records, rows, strict=True)
            if _chat_and_event_key(row) in fresh
        ]
        rollups = _rollups_of(new, zones, bind)

    await _write_rollups(session, rollups, communities, members, bind)

    await _run_hooks(session, hooks, new, communities)
    return BatchResult(written=len(new), duplicates=len(records) - len(new))


async def _run_hooks(
    session: AsyncSession,
    hooks: Sequence[BatchHook],
    new: Sequence[ActivityRecord],
    communities: dict[CommunityKey, tuple[int, str]],
) -> None:
    if hooks and new:
        written = [
            WrittenActivity(rec, *communities[(rec.platform, rec.community_key)])
            for rec in sorted(new, key=lambda rec: rec.at)
        ]
        for hook in hooks:
            await hook(session, written)


_TRIP_STATEMENTS = {
    "members": UPSERT_MEMBERS,
    "events": INSERT_EVENTS,
    "member_days": UPSERT_MEMBER_DAYS,
    "community_days": UPSERT_COMMUNITY_DAYS,
    "community_hours": UPSERT_COMMUNITY_HOURS,
    "memberships": UPSERT_MEMBERSHIPS,
}


def _trip_sql(name: str, rows: int) -> str:
    return _upsert_sql(_TRIP_STATEMENTS[name], "sqlite", rows)


def _on_driver_thread(driver: Any) -> Callable[..., Awaitable[Any]] | None:
    """aiosqlite's "run this function on the connection's thread", or None.

    It has no public one; this queue-a-function method has been there since its first
    releases. Without it, batches take the usual path (a test notices the trips stopping).
    """
    return getattr(driver, "_execute", None)


async def _write_by_trip(
    session: AsyncSession,
    records: Sequence[ActivityRecord],
    prepared: PreparedBatch,
    trip: TripRows,
    cache: IdCache,
    hooks: Sequence[BatchHook],
) -> BatchResult | None:
    """The batch's statements in one call on aiosqlite's thread (`storage/activity_trip.py`);
    None, with nothing written, when that is not possible or a community changed since the
    batch was prepared."""
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    run_on_thread = _on_driver_thread(driver)
    if run_on_thread is None:
        return None
    # Members cached since the batch was prepared (by the batch before it) need no upsert.
    known: dict[MemberKey, int] = {}
    members = []
    for row in trip.members:
        member_id = _cached_id(cache.members.get((row[0], row[1])), (row[2], row[3]))
        if member_id is not None:
            known[(row[0], row[1])] = member_id
        else:
            members.append(row)
    try:
        outcome: TripOutcome = await run_on_thread(
            write_trip, driver._conn, trip, members, known, _trip_sql, _SQLITE_VARIABLES
        )
    except sqlite3.Error as exc:
        raise DBAPIError.instance("activity batch", None, exc, sqlite3.Error) from exc
    if outcome.stale:
        return None
    session.info.setdefault("activity_communities", {}).update(trip.communities)
    learned = session.info.setdefault("activity_learned", {})
    for platform, external_id, name, username, *_ in members:
        member_id = outcome.member_ids[(platform, external_id)]
        learned[("member", platform, external_id)] = _cached_member(member_id, (name, username))
    new: Sequence[ActivityRecord] = prepared.records
    if outcome.fresh is not None:
        # A replay: the events are written; count only the new ones.
        # Keys worked out here, not for every batch: replays are rare.
        cid, fresh = trip.communities, outcome.fresh
        new = [
            rec
            for (community, chat_key, event_key), rec in zip(
                prepared.event_keys, prepared.records, strict=True
            )
            if (trip.chats[(cid[community][0], chat_key)], event_key) in fresh
        ]
        bind = _BINDINGS["sqlite"]
        rollups = _rollups_of(new, prepared.zones, bind)
        await _write_rollups(session, rollups, trip.communities, outcome.member_ids, bind)
    await _run_hooks(session, hooks, new, trip.communities)
    return BatchResult(written=len(new), duplicates=len(records) - len(new), trip=True)


async def _write_rollups(
    session: AsyncSession,
    rollups: _Rollups,
    communities: dict[CommunityKey, tuple[int, str]],
    members: dict[MemberKey, int],
    bind: _Binding,
) -> None:
    """Add the new events to the day, hour and member-day counters and the memberships."""
    cid = {key: value[0] for key, value in communities.items()}
    # The day as bound is also how RETURNING gives it back (text on SQLite, a date on PostgreSQL).
    added: dict[tuple[int, Any, int], tuple[int, CommunityKey, date]] = {}
    rows = []
    for c, day, bound, mk, messages, reactions, replies, characters in rollups.member_days:
        key = (cid[c], bound, members[(c[0], mk)])
        added[key] = (messages, c, day)
        rows.append((*key, messages, reactions, replies, characters))
    rows.sort()
    # Members who became active on a day: the row's total equals what this batch added.
    active: dict[tuple[CommunityKey, date], int] = {}
    for community_id, bound, member_id, total in await _upsert(session, UPSERT_MEMBER_DAYS, rows):
        messages, c, day = added[(community_id, bound, member_id)]
        if messages and total == messages:
            active[(c, day)] = active.get((c, day), 0) + 1

    day_of = bind.day
    rows = [
        (
            cid[c],
            day_of(day),
            d.messages,
            active.get((c, day), 0),
            d.joins,
            d.leaves,
            d.reactions,
            d.replies,
        )
        for (c, day), d in rollups.community_days.items()
    ]
    rows.sort()
    await _upsert(session, UPSERT_COMMUNITY_DAYS, rows)

    rows = [(cid[c], *rest) for c, *rest in rollups.community_hours]
    rows.sort()
    await _upsert(session, UPSERT_COMMUNITY_HOURS, rows)

    rows = [(cid[c], members[(c[0], mk)], *rest) for c, mk, *rest in rollups.memberships]
    rows.sort(key=_two)
    await _upsert(session, UPSERT_MEMBERSHIPS, rows)


def _chat_and_event_key(row: tuple[Any, ...]) -> tuple[Any, Any]:
    """An INSERT_EVENTS row's (chat id, event key)."""
    return row[1], row[-1]


def _two(row: tuple[Any, ...]) -> tuple[Any, Any]:
    """A membership row's (community id, member id): unique, and nothing after it compares
    (None and text would, on SQLite)."""
    return row[0], row[1]


@dataclass
class WriterStats:
    written: int = 0
    duplicates: int = 0
    batches: int = 0
    trips: int = 0  # batches written in one trip to SQLite's driver thread
    failed_attempts: int = 0
    dropped: int = 0


# Communities whose time zone the writer remembers (past it, it starts over).
_ZONE_HINTS = 100_000
# (time zone, UTC quarter hour) local hours the writer keeps between batches (past it, it
# starts over).
_LOCAL_QUARTERS = 100_000


class RetryableConflict(Exception):
    """PostgreSQL aborted a batch to break a deadlock or a serialization conflict."""


class ConnectionLost(Exception):
    """The batch's connection broke mid-transaction (SQLAlchemy invalidated it).

    Not always an `OperationalError` or `InterfaceError`: SQLAlchemy's asyncpg adapter gives
    asyncpg's `ConnectionDoesNotExistError` the generic `DBAPIError`, which would otherwise
    read as refused data, and a batch split to find culprits while the server is away would
    drop its records one by one.
    """


# Deadlock detected, serialization failure: the same batch succeeds when tried again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
_TRANSIENT = (
    OperationalError,
    InterfaceError,
    OSError,
    ConnectionError,
    RetryableConflict,
    ConnectionLost,
)


# Records per batch at most (`[activity] batch_size`). Batches only fill up when messages
# arrive faster than they are written; then each commit's fixed costs and the pages it
# rewrites are shared by more records. In `bench` ingest, 2,000 against 500 wrote 18% more
# events a second on SQLite and 13% more on PostgreSQL, while a batch holds SQLite's write
# lock for tens of milliseconds, not hundreds (commands that write queue behind it).
DEFAULT_BATCH_SIZE = 2_000


class ActivityWriter:
    """Buffers activity records and writes them in batches by size and by time.

    Records are numbered as they are queued; `flush()` waits only until the batch holding
    the last record queued before it has committed. Flushes never cut a batch short: a
    waiting flush makes the writer write what is queued at once (up to `batch_size`), so
    every flush that arrives while a batch is being written shares the next batch.
    """

    def __init__(
        self,
        db: Database,
        *,
        defaults: CommunityDefaults = CommunityDefaults(),
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = 1.0,
        queue_size: int = 20_000,
        retry_delays: Sequence[float] = (0.2, 0.5, 1.0, 2.0, 5.0),
    ) -> None:
        self.db = db
        self.defaults = defaults
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_delays = tuple(retry_delays)
        self.cache = IdCache()
        self.stats = WriterStats()
        # Features add theirs before `start` (see `BatchHook`).
        self.hooks: list[BatchHook] = []
        self._capacity = max(1, queue_size)
        self._buffer: deque[ActivityRecord] = deque()
        self._queued = 0  # records ever queued: the last one's number
        self._done = 0  # records written (or dropped as refused), all of them in order
        self._taken = 0  # records taken off the queue into a batch
        # (record number, future) per waiting flush, in number order.
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._stop_at: int | None = None
        self._wake = asyncio.Event()  # records, a flush or a stop for the writer
        self._room = asyncio.Event()  # the buffer has room again
        self._task: asyncio.Task[None] | None = None
        # Each community's id and time zone as last read, to prepare batches with; a batch
        # checks them.
        self._communities: dict[CommunityKey, tuple[int, str]] = {}
        self._local_time = _LocalTime()
        self._committing = asyncio.Event()  # the batch being written has reached its commit

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def start(self) -> None:
        if self._task is None:
            self._stop_at = None
            self._task = asyncio.create_task(self._run(), name="activity-writer")

    async def record(self, record: ActivityRecord) -> None:
        """Queue a record; waits only while the queue is full."""
        buffer = self._buffer
        while len(buffer) >= self._capacity:
            self._room.clear()
            await self._room.wait()
        buffer.append(record)
        self._queued += 1
        # The writer waits either for a first record or for a full batch (or queue).
        size = len(buffer)
        if size == 1 or size == self.batch_size or size == self._capacity:
            self._wake.set()

    async def record_many(self, records: Iterable[ActivityRecord]) -> None:
        for record in records:
            await self.record(record)

    async def flush(self) -> None:
        """Return once everything recorded before this call is committed."""
        target = self._queued
        if self._done >= target:
            return
        if not self._running():
            await self._drain_inline()
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, done))
        self._wake.set()
        await done

    async def stop(self) -> None:
        """Flush everything, then end the background task.

        The task is asked to finish rather than cancelled: a cancel could land while it holds a
        batch it has taken off the queue but not written yet, and those records would be lost.
        """
        task = self._task
        if task is not None and not task.done():
            self._stop_at = self._queued
            self._wake.set()
            await asyncio.wait({task})
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("the activity writer task failed", exc_info=task.exception())
        self._task = None
        await self._drain_inline()  # records queued after the stop began

    def _running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _flush_waits(self) -> bool:
        """A flush waits for a record still queued (not for the batch being written)."""
        return bool(self._waiters) and self._waiters[-1][0] > self._taken

    def _take(self) -> list[ActivityRecord]:
        """Up to `batch_size` records off the front of the queue."""
        buffer = self._buffer
        count = min(len(buffer), self.batch_size)
        batch = [buffer.popleft() for _ in range(count)]
        self._taken += count
        if count:
            self._room.set()
        return batch

    def _written(self, count: int) -> None:
        """`count` more records are written: release the flushes they complete."""
        self._done += count
        waiters = self._waiters
        while waiters and waiters[0][0] <= self._done:
            _, done = waiters.popleft()
            if not done.done():
                done.set_result(None)

    async def _drain_inline(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                break
            await self._write(batch, None)
            self._written(len(batch))
        self._written(0)

    async def _collect(self) -> list[ActivityRecord]:
        """The next batch: a full one, what is queued when a flush or stop waits, or what
        arrived within `flush_interval` of the first record."""
        loop = asyncio.get_running_loop()
        if self._stop_at is not None and self._taken >= self._stop_at:
            return []  # all queued before the stop is taken; `stop()` writes what came after
        while not self._buffer:
            if self._stop_at is not None:
                return []
            self._wake.clear()
            await self._wake.wait()
        deadline = loop.time() + self.flush_interval
        while len(self._buffer) < self.batch_size and not self._flush_waits():
            if self._stop_at is not None:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                break
        return self._take()

    async def _run(self) -> None:
        # Two batches in flight: while one commits (a single long call on the driver's side,
        # which releases the GIL), the next is collected and prepared on the loop. Batches
        # still write and commit one at a time, in order.
        writing: asyncio.Task[None] | None = None
        try:
            while True:
                batch = await self._collect()  # empty only once a stop is due
                if writing is not None and batch:
                    await self._until_committing(writing)
                prepared = self._prepare(batch) if batch else None
                if writing is not None:
                    await writing
                    writing = None
                if not batch:
                    self._written(0)
                    return
                self._committing.clear()
                writing = asyncio.create_task(self._write_counted(batch, prepared))
        finally:
            if writing is not None and not writing.done():
                # The task was cancelled mid-batch: the batch still lands.
                await asyncio.shield(writing)

    async def _until_committing(self, writing: asyncio.Task[None]) -> None:
        """Wait until the batch being written has reached its commit (or ended).

        Preparing sooner would not overlap anything: the batch's statements are short trips
        to the driver between stretches of Python, which would wait for the preparing.
        """
        if writing.done() or self._committing.is_set():
            return
        committing = asyncio.ensure_future(self._committing.wait())
        try:
            await asyncio.wait({writing, committing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            committing.cancel()

    def _prepare(self, batch: list[ActivityRecord]) -> PreparedBatch | None:
        """The batch's rows, worked out ahead of its transaction (None: let it do that)."""
        if len(self._local_time) > _LOCAL_QUARTERS:
            self._local_time = _LocalTime()
        hints, default = self._communities, self.defaults.timezone
        # Only the batch's communities; one not read yet is new and starts in the default zone.
        zones = {}
        for key in {(rec.platform, rec.community_key) for rec in batch}:
            hint = hints.get(key)
            zones[key] = default if hint is None else hint[1]
        try:
            return prepare_batch(
                batch, self.db.dialect, zones, self._local_time, known=hints, cache=self.cache
            )
        except Exception:
            # A record it cannot work with: the transaction meets it again and isolates it.
            log.debug("preparing an activity batch failed", exc_info=True)
            return None

    async def _write_counted(
        self, batch: list[ActivityRecord], prepared: PreparedBatch | None
    ) -> None:
        """Write a batch and count it inside the same task step.

        Flushes waiting for it are released the moment it commits, not when the next batch is
        ready; and whoever sees the task done sees the batch counted (a done-callback runs a
        step later, and a writer deciding in between would wait for records already written).
        """
        await self._write(batch, prepared)
        self._written(len(batch))

    async def _write(self, batch: list[ActivityRecord], prepared: PreparedBatch | None) -> None:
        if not batch:
            return
        attempt = 0
        while True:
            try:
                await self._commit(batch, prepared)
                return
            except _TRANSIENT as exc:
                # The database is unreachable: keep the batch; the full queue slows producers.
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                self.stats.failed_attempts += 1
                log.warning("activity batch of %d not written (%s); retrying", len(batch), exc)
                attempt += 1
                await asyncio.sleep(delay)
            except Exception:
                # Refused (bad data, or a bug): find the culprits so the rest still lands.
                self.stats.failed_attempts += 1
                log.exception("activity batch of %d refused; isolating bad records", len(batch))
                try:
                    await self._write_isolating(batch)
                    return
                except _TRANSIENT:
                    attempt += 1  # replaying the whole batch is safe: events are idempotent

    async def _write_isolating(self, batch: list[ActivityRecord]) -> None:
        """Split a refused batch until the records the database rejects are found and logged."""
        if len(batch) == 1:
            try:
                await self._commit(batch)
            except _TRANSIENT:
                raise
            except Exception:
                self.stats.dropped += 1
                log.exception("dropping an activity record the database refuses: %r", batch[0])
            return
        middle = len(batch) // 2
        for half in (batch[:middle], batch[middle:]):
            try:
                await self._commit(half)
            except _TRANSIENT:
                raise
            except Exception:
                await self._write_isolating(half)

    async def _commit(
        self, batch: list[ActivityRecord], prepared: PreparedBatch | None = None
    ) -> None:
        try:
            async with self.db.sessions() as session:
                async with session.begin():
                    if self.db.write_gate is not None:
                        await self.db.write_gate.take(await session.connection())
                    if prepared is not None and prepared.trip is not None:
                        # The trip to the driver's thread is the long part: prepare the next
                        # batch meanwhile (the loop is barely needed until the commit).
                        self._committing.set()
                    result = await write_batch(
                        session,
                        batch,
                        defaults=self.defaults,
                        cache=self.cache,
                        hooks=self.hooks,
                        prepared=prepared,
                    )
                    # The commit (leaving this block) is the long trip: prepare the next batch.
                    self._committing.set()
                learned = session.info.pop("activity_learned", {})
                communities = session.info.pop("activity_communities", {})
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES:
                raise RetryableConflict(str(exc.orig)) from exc
            if exc.connection_invalidated:
                raise ConnectionLost(str(exc.orig)) from exc
            raise
        self._communities.update(communities)
        if len(self._communities) > _ZONE_HINTS:
            self._communities.clear()
        for key, value in learned.items():
            if key[0] == "chat":
                self.cache.chats.put((key[1], key[2]), value)
            else:
                self.cache.members.put((key[1], key[2]), value)
        self.stats.written += result.written
        self.stats.duplicates += result.duplicates
        self.stats.trips += result.trip
        self.stats.batches += 1
