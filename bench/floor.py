"""The storage floor: the activity writer's rows and rollups through the raw driver, nothing else.

Input is pre-extracted tuples (one per message, built untimed from the same payload file), so
what is timed is only what storage must do per batch of `BATCH` events, one transaction each:
find or create the community and chat (kept in a dict once known, as the writer's cache does),
insert the batch's new members (returning their ids), insert the events (unique on chat and
event key), and, with rollups, add the batch's counters to `member_days` (returning each
row's total, which tells whether the member became active that day), `community_days`,
`community_hours` and merge `memberships` (first/last seen, first/last posting day and the
recent-posts mask, with the writer's own SET expressions).

SQLite: `sqlite3` with the pragmas of `storage/db.py`, `executemany` (multi-row VALUES where
rows must come back). PostgreSQL: asyncpg `COPY` into a TEMP staging table, then one
`INSERT … SELECT … ON CONFLICT` per table. The floor trusts its input to hold new events
only (the generated workload has no replays) and checks that every event row was inserted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg

from bench import clock
from bench.telegram_payloads import updates
from storage.activity import (
    DEFAULT_BATCH_SIZE,
    INSERT_EVENTS,
    UPSERT_COMMUNITY_DAYS,
    UPSERT_COMMUNITY_HOURS,
    UPSERT_MEMBER_DAYS,
    UPSERT_MEMBERS,
    UPSERT_MEMBERSHIPS,
    _conflict_clause,
    _Upsert,
)
from storage.activity_trip import row_chunks
from storage.checkpoint import WalCheckpointer
from storage.db import SQLITE_PRAGMAS, Database
from storage.postdays import mask_of

# Batches as large as the writer's (`ActivityWriter`'s default): the same transactions.
BATCH = DEFAULT_BATCH_SIZE
# Updates extracted (untimed) per round, to keep memory flat on a million-event run.
CHUNK = 50_000
_SQLITE_VARIABLES = 30_000
PLATFORM = "telegram"


class Row(NamedTuple):
    """One message as storage needs it, with its bound forms precomputed."""

    chat: str
    chat_title: str | None
    member: str
    name: str
    username: str | None
    at: datetime
    time: str  # naive UTC text, as `UTCDateTime` stores it on SQLite
    event_key: str
    content: str
    length: int
    is_reply: bool
    day: date  # UTC: new communities get time zone UTC
    hour: int


def row_of(update: dict[str, Any]) -> Row:
    """The tuple for one plain-message update (what the adapter would extract)."""
    m = update["message"]
    user, chat = m["from"], m["chat"]
    last = user.get("last_name")
    name = f"{user['first_name']} {last}" if last else user["first_name"]
    text = m.get("text")
    content = "text" if text is not None else "photo"
    text = text if text is not None else m.get("caption")
    at = datetime.fromtimestamp(m["date"], UTC)
    return Row(
        str(chat["id"]),
        chat.get("title"),
        str(user["id"]),
        name[:256],
        (user.get("username") or "")[:64] or None,
        at,
        at.replace(tzinfo=None).isoformat(" ", "microseconds"),
        f"m:{m['message_id']}",
        content,
        len(text) if text else 0,
        "reply_to_message" in m,
        at.date(),
        at.hour,
    )


def chunks(path: Path, limit: int | None = None, size: int = CHUNK) -> Iterator[list[Row]]:
    """The payload file as lists of rows, `size` at a time."""
    chunk: list[Row] = []
    for update in updates(path, limit):
        chunk.append(row_of(update))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- the rollup arithmetic (shared by both drivers) ---------------------------------------


@dataclass
class Rollups:
    """One batch's counter rows, keyed by database ids, sorted as the writer sorts them."""

    member_days: list[tuple[Any, ...]]
    community_days: dict[tuple[int, date], list[int]]
    community_hours: list[tuple[Any, ...]]
    memberships: list[tuple[Any, ...]]


def rollups(rows: Sequence[tuple[Row, int, int]], pg: bool) -> Rollups:
    """Aggregate (row, community id, member id) into the four rollup tables' rows."""
    mdays: dict[tuple[int, date, int], list[int]] = {}
    cdays: dict[tuple[int, date], list[int]] = {}
    hours: dict[tuple[int, date, int], int] = {}
    ships: dict[tuple[int, int], list[Any]] = {}
    for r, cid, mid in rows:
        md = mdays.get((cid, r.day, mid))
        if md is None:
            md = mdays[(cid, r.day, mid)] = [0, 0, 0]
        md[0] += 1
        md[1] += r.is_reply
        md[2] += r.length
        cd = cdays.get((cid, r.day))
        if cd is None:
            # messages, active_members, joins, leaves, reactions, replies
            cd = cdays[(cid, r.day)] = [0, 0, 0, 0, 0, 0]
        cd[0] += 1
        cd[5] += r.is_reply
        hours[(cid, r.day, r.hour)] = hours.get((cid, r.day, r.hour), 0) + 1
        ms = ships.get((cid, mid))
        if ms is None:
            ships[(cid, mid)] = [r, r, {r.day}]
        else:
            if r.at < ms[0].at:
                ms[0] = r
            if r.at > ms[1].at:
                ms[1] = r
            ms[2].add(r.day)

    def day(d: date) -> Any:
        return d if pg else d.isoformat()

    def time(r: Row) -> Any:
        return r.at if pg else r.time

    member_days = [
        (cid, day(d), mid, m, 0, rep, chars)
        for (cid, d, mid), (m, rep, chars) in sorted(mdays.items())
    ]
    community_hours = [(cid, day(d), h, m, 0) for (cid, d, h), m in sorted(hours.items())]
    memberships = []
    columns = UPSERT_MEMBERSHIPS.columns
    for (cid, mid), (first, last, days) in sorted(ships.items()):
        number, mask = mask_of(days) or (None, 0)
        values = {
            "community_id": cid,
            "member_id": mid,
            "first_seen_at": time(first),
            "last_seen_at": time(last),
            "joined_at": None,
            "left_at": None,
            "first_posted_on": day(min(days)),
            "last_posted_on": day(max(days)),
            "recent_posts": mask,
            "recent_posts_day": number,
        }
        # By name: the writer's statement decides which columns a membership row has.
        memberships.append(tuple(values[c] for c in columns))
    return Rollups(member_days, cdays, community_hours, memberships)


# --- SQLite ----------------------------------------------------------------------------------


def _sqlite_sql(spec: _Upsert, rows: int = 0, returning: bool = True) -> str:
    """The writer's statement for `spec` on SQLite: `rows` VALUES groups (0: executemany)."""
    if not returning:
        spec = replace(spec, returning=())
    group = "(" + ", ".join("?" * len(spec.columns)) + ")"
    values = ", ".join([group] * max(rows, 1))
    head = f"INSERT INTO {spec.table.name} ({', '.join(spec.columns)}) VALUES {values}"
    return head + _conflict_clause(spec, "sqlite")


class SqliteFloor:
    """The floor on one SQLite file: `sqlite3`, WAL, one transaction per batch."""

    def __init__(self, path: str, rollups: bool) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            self.conn.execute(f"PRAGMA {pragma}")
        # Checkpoints off the commit path, as `Database` runs them for the writer.
        self.checkpointer = WalCheckpointer(path)
        self.checkpointer.start()
        self.with_rollups = rollups
        self.communities: dict[str, int] = {}
        self.chats: dict[str, int] = {}
        self.members: dict[str, int] = {}
        self.events_sql = _sqlite_sql(INSERT_EVENTS, returning=False)
        self.cday_sql = _sqlite_sql(UPSERT_COMMUNITY_DAYS)
        self.hour_sql = _sqlite_sql(UPSERT_COMMUNITY_HOURS)
        self.ship_sql = _sqlite_sql(UPSERT_MEMBERSHIPS)

    def close(self) -> None:
        self.checkpointer.stop()
        self.conn.close()

    def write(self, batch: Sequence[Row]) -> None:
        """One batch, one transaction."""
        c = self.conn
        c.execute("BEGIN")
        for r in batch:
            if r.chat not in self.chats:
                self._chat(r)
        self._members(batch)
        comm, chats, members = self.communities, self.chats, self.members
        events = [
            (comm[r.chat], chats[r.chat], members[r.member], 1, r.content, r.length, r.is_reply,
             r.time, r.event_key)
            for r in batch
        ]  # fmt: skip
        before = c.total_changes
        c.executemany(self.events_sql, events)
        if c.total_changes - before != len(events):
            raise RuntimeError("the floor expects new events only")
        if self.with_rollups:
            self._rollups([(r, comm[r.chat], members[r.member]) for r in batch])
        c.execute("COMMIT")

    def _chat(self, r: Row) -> None:
        cur = self.conn.execute(
            "INSERT INTO communities (platform, external_id, title, timezone, locale, settings,"
            " created_at) VALUES (?, ?, ?, 'UTC', 'en', '{}', ?) RETURNING id",
            (PLATFORM, r.chat, r.chat_title, r.time),
        )
        community = self.communities[r.chat] = cur.fetchone()[0]
        cur = self.conn.execute(
            "INSERT INTO chats (community_id, external_id, title, kind) VALUES (?, ?, ?, 'group')"
            " RETURNING id",
            (community, r.chat, r.chat_title),
        )
        self.chats[r.chat] = cur.fetchone()[0]

    def _members(self, batch: Sequence[Row]) -> None:
        new: dict[str, Row] = {}
        for r in batch:
            if r.member not in self.members and r.member not in new:
                new[r.member] = r
        if not new:
            return
        rows = [(PLATFORM, k, r.name, r.username, False, r.time) for k, r in sorted(new.items())]
        for chunk in row_chunks(rows, _SQLITE_VARIABLES // 6):
            flat = [v for row in chunk for v in row]
            sql = _sqlite_sql(UPSERT_MEMBERS, len(chunk))
            for _, ext, member_id in self.conn.execute(sql, flat):
                self.members[ext] = member_id

    def _rollups(self, rows: Sequence[tuple[Row, int, int]]) -> None:
        roll = rollups(rows, pg=False)
        for chunk in row_chunks(roll.member_days, _SQLITE_VARIABLES // 7):
            flat = [v for row in chunk for v in row]
            sql = _sqlite_sql(UPSERT_MEMBER_DAYS, len(chunk))
            added = {row[:3]: row[3] for row in chunk}
            for cid, day, mid, total in self.conn.execute(sql, flat):
                if total == added[(cid, day, mid)]:
                    roll.community_days[(cid, date.fromisoformat(day))][1] += 1
        cdays = [(cid, d.isoformat(), *v) for (cid, d), v in sorted(roll.community_days.items())]
        self.conn.executemany(self.cday_sql, cdays)
        self.conn.executemany(self.hour_sql, roll.community_hours)
        self.conn.executemany(self.ship_sql, roll.memberships)


# --- PostgreSQL ------------------------------------------------------------------------------


_STAGED = {
    "members": UPSERT_MEMBERS,
    "activity_events": INSERT_EVENTS,
    "member_days": UPSERT_MEMBER_DAYS,
    "community_days": UPSERT_COMMUNITY_DAYS,
    "community_hours": UPSERT_COMMUNITY_HOURS,
    "memberships": UPSERT_MEMBERSHIPS,
}


def _pg_sql(spec: _Upsert, returning: bool = True) -> str:
    """`INSERT INTO t (...) SELECT ... FROM stage_t ORDER BY <conflict> ON CONFLICT ...`."""
    if not returning:
        spec = replace(spec, returning=())
    columns = ", ".join(spec.columns)
    return (
        f"INSERT INTO {spec.table.name} ({columns}) SELECT {columns} FROM stage_{spec.table.name}"
        f" ORDER BY {', '.join(spec.conflict)}" + _conflict_clause(spec, "postgresql")
    )


class PostgresFloor:
    """The floor on one PostgreSQL schema: COPY into TEMP staging, one upsert per table."""

    def __init__(self, conn: asyncpg.Connection, rollups: bool) -> None:
        self.conn = conn
        self.with_rollups = rollups
        self.communities: dict[str, int] = {}
        self.chats: dict[str, int] = {}
        self.members: dict[str, int] = {}
        self.sql = {name: _pg_sql(spec) for name, spec in _STAGED.items()}
        self.sql["activity_events"] = _pg_sql(INSERT_EVENTS, returning=False)

    @classmethod
    async def open(cls, db: Database, url: str, rollups: bool) -> PostgresFloor:
        """A raw asyncpg connection on `db`'s schema, with the staging tables created."""
        async with db.engine.connect() as sa:
            schema = (await sa.exec_driver_sql("SELECT current_schema()")).scalar_one()
        conn = await asyncpg.connect(url, server_settings={"search_path": schema})
        for name, spec in _STAGED.items():
            await conn.execute(
                f"CREATE TEMP TABLE stage_{name} ON COMMIT DELETE ROWS AS "
                f"SELECT {', '.join(spec.columns)} FROM {name} WITH NO DATA"
            )
        return cls(conn, rollups)

    async def close(self) -> None:
        await self.conn.close()

    async def _copy(self, name: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await self.conn.copy_records_to_table(
            f"stage_{name}", records=rows, columns=_STAGED[name].columns
        )

    async def write(self, batch: Sequence[Row]) -> None:
        """One batch, one transaction."""
        async with self.conn.transaction():
            for r in batch:
                if r.chat not in self.chats:
                    await self._chat(r)
            await self._members(batch)
            comm, chats, members = self.communities, self.chats, self.members
            events = [
                (comm[r.chat], chats[r.chat], members[r.member], 1, r.content, r.length,
                 r.is_reply, r.at, r.event_key)
                for r in batch
            ]  # fmt: skip
            await self._copy("activity_events", events)
            status = await self.conn.execute(self.sql["activity_events"])
            if int(status.rsplit(" ", 1)[1]) != len(events):
                raise RuntimeError("the floor expects new events only")
            if self.with_rollups:
                await self._rollups([(r, comm[r.chat], members[r.member]) for r in batch])

    async def _chat(self, r: Row) -> None:
        community = await self.conn.fetchval(
            "INSERT INTO communities (platform, external_id, title, timezone, locale, settings,"
            " created_at) VALUES ($1, $2, $3, 'UTC', 'en', '{}', $4) RETURNING id",
            PLATFORM,
            r.chat,
            r.chat_title,
            r.at,
        )
        self.communities[r.chat] = community
        self.chats[r.chat] = await self.conn.fetchval(
            "INSERT INTO chats (community_id, external_id, title, kind)"
            " VALUES ($1, $2, $3, 'group') RETURNING id",
            community,
            r.chat,
            r.chat_title,
        )

    async def _members(self, batch: Sequence[Row]) -> None:
        new: dict[str, Row] = {}
        for r in batch:
            if r.member not in self.members and r.member not in new:
                new[r.member] = r
        if not new:
            return
        await self._copy(
            "members", [(PLATFORM, k, r.name, r.username, False, r.at) for k, r in new.items()]
        )
        for _, ext, member_id in await self.conn.fetch(self.sql["members"]):
            self.members[ext] = member_id

    async def _rollups(self, rows: Sequence[tuple[Row, int, int]]) -> None:
        roll = rollups(rows, pg=True)
        await self._copy("member_days", roll.member_days)
        added = {row[:3]: row[3] for row in roll.member_days}
        for cid, day, mid, total in await self.conn.fetch(self.sql["member_days"]):
            if total == added[(cid, day, mid)]:
                roll.community_days[(cid, day)][1] += 1
        cdays = [(cid, d, *v) for (cid, d), v in sorted(roll.community_days.items())]
        await self._copy("community_days", cdays)
        await self.conn.execute(self.sql["community_days"])
        await self._copy("community_hours", roll.community_hours)
        await self.conn.execute(self.sql["community_hours"])
        await self._copy("memberships", roll.memberships)
        await self.conn.execute(self.sql["memberships"])


# --- the variant -----------------------------------------------------------------------------


async def run_floor(
    db: Database,
    path: Path,
    limit: int | None,
    *,
    rollups: bool,
    postgres_url: str | None = None,
    report: Any = None,
) -> float:
    """Write the payload file's messages through the floor; the seconds spent writing only."""
    took = 0.0
    if db.dialect == "sqlite":
        floor: SqliteFloor | PostgresFloor = SqliteFloor(str(db.url.database), rollups)
    else:
        assert postgres_url is not None
        floor = await PostgresFloor.open(db, postgres_url, rollups)
    try:
        done = 0
        for chunk in chunks(path, limit):
            started = clock()
            for start in range(0, len(chunk), BATCH):
                if isinstance(floor, SqliteFloor):
                    floor.write(chunk[start : start + BATCH])
                else:
                    await floor.write(chunk[start : start + BATCH])
            took += clock() - started
            done += len(chunk)
            if report is not None:
                report(done)
    finally:
        if isinstance(floor, SqliteFloor):
            floor.close()
        else:
            await floor.close()
    return took


def describe() -> str:
    """One line for the table's note."""
    return json.dumps({"batch": BATCH, "chunk": CHUNK})
