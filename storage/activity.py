"""Activity logging: an in-memory queue drained by a batched writer that keeps rollups current.

The router calls `ActivityWriter.record` for every message, reaction, join and leave; it
only awaits when the queue is full (back-pressure, never dropping). A background task
writes each batch in one transaction: raw events with `ON CONFLICT DO NOTHING` (so a
replayed update is harmless), then the (community, day), (community, day, hour) and
(community, day, member) counters and the memberships, computed from only the rows that were
actually new. Days and hours are local to the community's time zone at write time. The hourly
counters started with schema 0007 and are not backfilled: hours before it read as zero.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

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


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """One thing a member did, as plain values (a few hundred bytes to buffer)."""

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
    """Platform keys -> database ids for chats, and -> (id, name, username) for members."""

    chats: _LRU = field(default_factory=lambda: _LRU(50_000))
    members: _LRU = field(default_factory=lambda: _LRU(200_000))


@dataclass
class BatchResult:
    written: int = 0
    duplicates: int = 0


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


async def _member_ids(
    session: AsyncSession,
    records: Sequence[ActivityRecord],
    cache: IdCache,
    learned: dict[Any, int],
) -> dict[tuple[str, str], int]:
    ids: dict[tuple[str, str], int] = {}
    # The member's latest record in the batch (its name is the current one), and the earliest time.
    latest: dict[tuple[str, str], ActivityRecord] = {}
    first_seen: dict[tuple[str, str], datetime] = {}
    for rec in records:
        key = (rec.platform, rec.member_key)
        seen = latest.get(key)
        if seen is None or rec.at >= seen.at:
            latest[key] = rec
        first_seen[key] = min(first_seen.get(key, rec.at), rec.at)
    missing: dict[tuple[str, str], ActivityRecord] = {}
    for key, rec in latest.items():
        cached = cache.members.get(key)
        # A cached member is written again only when their name changed (a rename).
        if cached is not None and cached[1:] == _member_names(rec):
            ids[key] = cached[0]
        else:
            missing[key] = rec
    if missing:
        insert = dialect_insert(session)
        rows = [
            {
                "platform": p,
                "external_id": ext,
                "display_name": _member_names(rec)[0],
                "username": _member_names(rec)[1],
                "is_bot": False,
                "first_seen_at": first_seen[(p, ext)],
            }
            for (p, ext), rec in sorted(missing.items())
        ]
        stmt = insert(MEMBERS)
        # A known member's name may have changed since we last saw them.
        stmt = stmt.on_conflict_do_update(
            index_elements=[Member.platform, Member.external_id],
            set_={"display_name": stmt.excluded.display_name, "username": stmt.excluded.username},
        )
        await session.execute(stmt, rows)
        query = select(Member.platform, Member.external_id, Member.id)
        columns = (Member.platform, Member.external_id)
        for p, ext, member_id in await _lookup(session, query, columns, missing):
            ids[(p, ext)] = member_id
            learned[("member", p, ext)] = (member_id, *_member_names(missing[(p, ext)]))
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


@dataclass(frozen=True, slots=True)
class WrittenActivity:
    """A record this batch wrote for the first time, with its community resolved."""

    record: ActivityRecord
    community_id: int
    timezone: str


# Runs inside the batch's transaction with the records that were new (never replays), so
# whatever it derives (message points) commits or rolls back with the activity itself.
BatchHook = Callable[[AsyncSession, Sequence[WrittenActivity]], Awaitable[None]]


async def write_batch(
    session: AsyncSession,
    records: Sequence[ActivityRecord],
    *,
    defaults: CommunityDefaults = CommunityDefaults(),
    cache: IdCache | None = None,
    hooks: Sequence[BatchHook] = (),
) -> BatchResult:
    """Write one batch in the caller's transaction: raw events, rollups and memberships.

    Replays are harmless: only events whose key was new change any counter. The caller
    commits; `cache` is only updated by `ActivityWriter` after the commit succeeded.
    """
    if not records:
        return BatchResult()
    cache = cache if cache is not None else IdCache()
    learned: dict[Any, int] = {}
    communities = await _community_ids(session, records, defaults)
    chats = await _chat_ids(session, records, communities, cache, learned)
    members = await _member_ids(session, records, cache, learned)
    session.info.setdefault("activity_learned", {}).update(learned)

    # Resolve and de-duplicate inside the batch (PostgreSQL refuses to touch a row twice).
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    resolved: dict[tuple[int, str], tuple[ActivityRecord, int, int, str]] = {}
    for rec in records:
        community_id, tz = communities[(rec.platform, rec.community_key)]
        chat_id = chats[(community_id, rec.chat_key)]
        key = (chat_id, rec.event_key[:128])
        if key in rows:
            continue
        member_id = members[(rec.platform, rec.member_key)]
        rows[key] = {
            "community_id": community_id,
            "chat_id": chat_id,
            "member_id": member_id,
            "kind": int(rec.kind),
            "content": rec.content,
            "length": max(0, rec.length),
            "is_reply": rec.is_reply,
            "occurred_at": rec.at,
            "event_key": key[1],
        }
        resolved[key] = (rec, community_id, member_id, tz)

    insert = dialect_insert(session)
    stmt = (
        insert(EVENTS)
        .on_conflict_do_nothing(index_elements=[EVENTS.c.chat_id, EVENTS.c.event_key])
        .returning(EVENTS.c.chat_id, EVENTS.c.event_key)
    )
    # Sorted: concurrent writers then take row locks in one order and never deadlock.
    params = [rows[key] for key in sorted(rows)]
    new_keys = {(c, k) for c, k in (await session.execute(stmt, params)).all()}

    member_days: dict[tuple[int, date, int], _MemberDelta] = {}
    community_days: dict[tuple[int, date], _CommunityDelta] = {}
    # (community, local day, local hour) -> [messages, reactions]
    community_hours: dict[tuple[int, date, int], list[int]] = {}
    memberships: dict[tuple[int, int], dict[str, Any]] = {}
    for key in new_keys:
        rec, community_id, member_id, tz = resolved[key]
        local = rec.at.astimezone(zone(tz))
        day = local.date()
        cday = community_days.setdefault((community_id, day), _CommunityDelta())
        ms = memberships.setdefault(
            (community_id, member_id),
            {
                "first": rec.at,
                "last": rec.at,
                "joined": None,
                "left": None,
                "first_post": None,
                "last_post": None,
            },
        )
        ms["first"] = min(ms["first"], rec.at)
        ms["last"] = max(ms["last"], rec.at)
        if rec.kind is ActivityKind.MESSAGE or rec.kind is ActivityKind.REACTION:
            mday = member_days.setdefault((community_id, day, member_id), _MemberDelta())
            hourly = community_hours.setdefault((community_id, day, local.hour), [0, 0])
            hourly[0 if rec.kind is ActivityKind.MESSAGE else 1] += 1
            if rec.kind is ActivityKind.MESSAGE:
                ms["first_post"] = min(ms["first_post"] or day, day)
                ms["last_post"] = max(ms["last_post"] or day, day)
                mday.messages += 1
                mday.characters += max(0, rec.length)
                cday.messages += 1
                if rec.is_reply:
                    mday.replies += 1
                    cday.replies += 1
            else:
                mday.reactions += 1
                cday.reactions += 1
        elif rec.kind is ActivityKind.JOIN:
            cday.joins += 1
            ms["joined"] = max(ms["joined"] or rec.at, rec.at)
        elif rec.kind is ActivityKind.LEAVE:
            cday.leaves += 1
            ms["left"] = max(ms["left"] or rec.at, rec.at)

    if member_days:
        t = MEMBER_DAYS
        stmt = insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.community_id, t.c.day, t.c.member_id],
            set_={
                col: t.c[col] + stmt.excluded[col]
                for col in ("messages", "reactions", "replies", "characters")
            },
        ).returning(t.c.community_id, t.c.day, t.c.member_id, t.c.messages)
        params = [
            {
                "community_id": cid,
                "day": day,
                "member_id": mid,
                "messages": d.messages,
                "reactions": d.reactions,
                "replies": d.replies,
                "characters": d.characters,
            }
            for (cid, day, mid), d in sorted(member_days.items())
        ]
        for cid, day, mid, total in (await session.execute(stmt, params)).all():
            added = member_days[(cid, day, mid)].messages
            # The row's total equals what this batch added: the member became active today.
            if added and total == added:
                community_days[(cid, day)].active_members += 1

    if community_days:
        t = COMMUNITY_DAYS
        stmt = insert(t)
        counters = ("messages", "active_members", "joins", "leaves", "reactions", "replies")
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.community_id, t.c.day],
            set_={c: t.c[c] + stmt.excluded[c] for c in counters},
        )
        params = [
            {"community_id": cid, "day": day, **{c: getattr(d, c) for c in counters}}
            for (cid, day), d in sorted(community_days.items())
        ]
        await session.execute(stmt, params)

    if community_hours:
        t = COMMUNITY_HOURS
        stmt = insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.community_id, t.c.day, t.c.hour],
            set_={c: t.c[c] + stmt.excluded[c] for c in ("messages", "reactions")},
        )
        params = [
            {"community_id": cid, "day": day, "hour": hour, "messages": m, "reactions": r}
            for (cid, day, hour), (m, r) in sorted(community_hours.items())
        ]
        await session.execute(stmt, params)

    if memberships:
        t = MEMBERSHIPS
        stmt = insert(t)
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.community_id, t.c.member_id],
            set_={
                "first_seen_at": _earlier(ex.first_seen_at, t.c.first_seen_at),
                "last_seen_at": _later(ex.last_seen_at, t.c.last_seen_at),
                "joined_at": _later(ex.joined_at, t.c.joined_at),
                "left_at": _later(ex.left_at, t.c.left_at),
                "first_posted_on": _earlier(ex.first_posted_on, t.c.first_posted_on),
                "last_posted_on": _later(ex.last_posted_on, t.c.last_posted_on),
            },
        )
        params = [
            {
                "community_id": cid,
                "member_id": mid,
                "first_seen_at": m["first"],
                "last_seen_at": m["last"],
                "joined_at": m["joined"],
                "left_at": m["left"],
                "first_posted_on": m["first_post"],
                "last_posted_on": m["last_post"],
            }
            for (cid, mid), m in sorted(memberships.items())
        ]
        await session.execute(stmt, params)

    if hooks and new_keys:
        written = [
            WrittenActivity(resolved[key][0], resolved[key][1], resolved[key][3])
            for key in sorted(new_keys, key=lambda k: resolved[k][0].at)
        ]
        for hook in hooks:
            await hook(session, written)

    return BatchResult(written=len(new_keys), duplicates=len(records) - len(new_keys))


@dataclass
class WriterStats:
    written: int = 0
    duplicates: int = 0
    batches: int = 0
    failed_attempts: int = 0
    dropped: int = 0


class _FlushRequest:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class _StopRequest(_FlushRequest):
    """A flush after which the background task ends (records queued behind it stay queued)."""

    __slots__ = ()


class RetryableConflict(Exception):
    """PostgreSQL aborted a batch to break a deadlock or a serialization conflict."""


# Deadlock detected, serialization failure: the same batch succeeds when tried again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
_TRANSIENT = (OperationalError, InterfaceError, OSError, ConnectionError, RetryableConflict)


class ActivityWriter:
    """Buffers activity records and writes them in batches by size and by time."""

    def __init__(
        self,
        db: Database,
        *,
        defaults: CommunityDefaults = CommunityDefaults(),
        batch_size: int = 500,
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
        self._queue: asyncio.Queue[ActivityRecord | _FlushRequest] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="activity-writer")

    async def record(self, record: ActivityRecord) -> None:
        """Queue a record; waits only while the queue is full."""
        await self._queue.put(record)

    async def record_many(self, records: Iterable[ActivityRecord]) -> None:
        for record in records:
            await self._queue.put(record)

    async def flush(self) -> None:
        """Return once everything recorded before this call is committed."""
        if self._task is None or self._task.done():
            await self._drain_inline()
            return
        request = _FlushRequest()
        await self._queue.put(request)
        await request.done

    async def stop(self) -> None:
        """Flush everything, then end the background task.

        The task is asked to finish rather than cancelled: a cancel could land while it holds a
        batch it has taken off the queue but not written yet, and those records would be lost.
        """
        task = self._task
        if task is not None and not task.done():
            await self._queue.put(_StopRequest())
            await asyncio.wait({task})
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("the activity writer task failed", exc_info=task.exception())
        self._task = None
        await self._drain_inline()  # records queued behind the stop request

    async def _drain_inline(self) -> None:
        batch: list[ActivityRecord] = []
        waiting: list[_FlushRequest] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _FlushRequest):
                waiting.append(item)
            else:
                batch.append(item)
                if len(batch) >= self.batch_size:
                    await self._write(batch)
                    batch = []
        await self._write(batch)
        for request in waiting:
            if not request.done.done():
                request.done.set_result(None)

    async def _collect(self) -> tuple[list[ActivityRecord], list[_FlushRequest]]:
        loop = asyncio.get_running_loop()
        first = await self._queue.get()
        batch: list[ActivityRecord] = []
        flushes: list[_FlushRequest] = []
        if isinstance(first, _FlushRequest):
            flushes.append(first)
            return batch, flushes
        batch.append(first)
        deadline = loop.time() + self.flush_interval
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        item = await self._queue.get()
                except TimeoutError:
                    break
            if isinstance(item, _FlushRequest):
                flushes.append(item)
                break
            batch.append(item)
        return batch, flushes

    async def _run(self) -> None:
        while True:
            batch, flushes = await self._collect()
            await self._write(batch)
            for request in flushes:
                if not request.done.done():
                    request.done.set_result(None)
            if any(isinstance(request, _StopRequest) for request in flushes):
                return

    async def _write(self, batch: list[ActivityRecord]) -> None:
        if not batch:
            return
        attempt = 0
        while True:
            try:
                await self._commit(batch)
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

    async def _commit(self, batch: list[ActivityRecord]) -> None:
        try:
            async with self.db.sessions() as session:
                async with session.begin():
                    result = await write_batch(
                        session, batch, defaults=self.defaults, cache=self.cache, hooks=self.hooks
                    )
                learned = session.info.pop("activity_learned", {})
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES:
                raise RetryableConflict(str(exc.orig)) from exc
            raise
        for key, value in learned.items():
            if key[0] == "chat":
                self.cache.chats.put((key[1], key[2]), value)
            else:
                self.cache.members.put((key[1], key[2]), value)
        self.stats.written += result.written
        self.stats.duplicates += result.duplicates
        self.stats.batches += 1
