"""SQLite: one activity batch's statements run in a single call on the driver's thread.

aiosqlite runs every statement on its own thread and hands the result back to the event loop,
where the batch's next step waits until the loop is free: behind whatever the loop is doing at
that moment (parsing the next updates, preparing the next batch). A batch of six statements
made six such waits, and they, not SQLite, set the pace of a busy writer. `ActivityWriter`
prepares a batch's rows with every id it already knows, before the batch's turn; `write_trip`
then resolves the members still unknown and runs every statement in one trip, and the loop
is needed again only for the commit.

Nothing here imports the rest of the writer: the rows arrive ready and the SQL is given.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

T = TypeVar("T")

# (platform, community key), (platform, member key): how a batch names things without ids.
CommunityKey = tuple[str, str]
MemberKey = tuple[str, str]

# The named statement's SQL for n rows (a multi-row `VALUES`; n = 1 for `executemany`).
StatementSQL = Callable[[str, int], str]


@dataclass(slots=True)
class TripRows:
    """A batch's statement rows as the writer could build them ahead of its transaction.

    A member id the writer did not know yet stands as the member's key (a tuple); the trip
    puts the id in once `members` is upserted. Everything else is final.
    """

    communities: dict[CommunityKey, tuple[int, str]]  # the ids and time zones the rows assume
    member_ids: dict[MemberKey, int]  # members resolved from the writer's cache
    members: list[tuple[Any, ...]]  # UPSERT_MEMBERS rows of members not resolved, sorted
    events: list[tuple[Any, ...]]  # INSERT_EVENTS rows, in (chat id, event key) order
    chats: dict[tuple[int, str], int]  # (community id, chat key) -> chat id, for the batch
    # UPSERT_MEMBER_DAYS rows, each with (messages, community key, local day) after it
    member_days: list[tuple[tuple[Any, ...], tuple[int, CommunityKey, date]]]
    # ((community key, local day), UPSERT_COMMUNITY_DAYS row without `active_members`)
    community_days: list[tuple[tuple[CommunityKey, date], tuple[Any, ...]]]
    community_hours: list[tuple[Any, ...]]  # UPSERT_COMMUNITY_HOURS rows, sorted
    memberships: list[tuple[Any, ...]]  # UPSERT_MEMBERSHIPS rows


@dataclass(slots=True)
class TripOutcome:
    """What a trip did: nothing (`stale`), the events only (a replay), or the whole batch."""

    stale: bool = False  # a community's id or time zone was not what the rows assume
    member_ids: dict[MemberKey, int] = field(default_factory=dict)  # every member's id
    # (chat id, event key) of each event that was new; None when all of them were
    fresh: set[tuple[int, str]] | None = None
    events: int = 0  # events written


def row_chunks(rows: Sequence[T], step: int) -> Iterator[Sequence[T]]:
    """`rows` in slices for multi-row `VALUES` statements: `step` rows at most, the rest in
    powers of two, largest first.

    SQLite's connection keeps each distinct statement it prepared (128 of them), and a
    statement of 2,000 rows of eleven values holds ~1.8 MB: one statement per row count
    a batch happened to have held 450 MB at the end of a million-event ingest. Powers of
    two leave a dozen sizes per statement.
    """
    start, count = 0, len(rows)
    while start < count:
        rest = count - start
        size = step if rest >= step else 1 << (rest.bit_length() - 1)
        yield rows[start : start + size]
        start += size


def _values(
    conn: sqlite3.Connection,
    sql: StatementSQL,
    name: str,
    rows: Sequence[tuple[Any, ...]],
    variables: int,
) -> list[Any]:
    """Run statement `name` over `rows` as multi-row `VALUES`: its RETURNING rows
    (`executemany` drops them)."""
    found: list[Any] = []
    if not rows:
        return found
    for chunk in row_chunks(rows, max(1, variables // len(rows[0]))):
        flat = [value for row in chunk for value in row]
        found.extend(conn.execute(sql(name, len(chunk)), flat).fetchall())
    return found


def write_trip(
    conn: sqlite3.Connection,
    rows: TripRows,
    members: Sequence[tuple[Any, ...]],
    known: dict[MemberKey, int],
    sql: StatementSQL,
    variables: int,
) -> TripOutcome:
    """Run a batch's statements on `conn` (the driver's thread); the caller commits.

    `members` are the member rows to upsert (`rows.members` less those `known` since the batch
    was prepared); `variables` bounds the values bound per statement.
    """
    wanted = rows.communities
    ids = [community_id for community_id, _ in wanted.values()]
    marks = ", ".join("?" * len(ids))
    stored = conn.execute(
        f"SELECT platform, external_id, id, timezone FROM communities WHERE id IN ({marks})", ids
    ).fetchall()
    if {(p, e): (i, tz) for p, e, i, tz in stored} != wanted:
        return TripOutcome(stale=True)

    member_ids = {**rows.member_ids, **known}
    if members:
        for platform, external_id, member_id in _values(conn, sql, "members", members, variables):
            member_ids[(platform, external_id)] = member_id

    events = [
        row if row[2].__class__ is int else (row[0], row[1], member_ids[row[2]], *row[3:])
        for row in rows.events
    ]
    returned = _values(conn, sql, "events", events, variables)
    if len(returned) != len(events):
        # A replay: the caller counts the new events only, in this transaction.
        return TripOutcome(member_ids=member_ids, fresh={(c, k) for c, k in returned})

    # Members who became active on a day: the row's total equals what this batch added.
    added: dict[tuple[Any, Any, int], tuple[int, CommunityKey, date]] = {}
    days = []
    for row, meta in rows.member_days:
        if row[2].__class__ is not int:
            row = (row[0], row[1], member_ids[row[2]], *row[3:])
        added[(row[0], row[1], row[2])] = meta
        days.append(row)
    days.sort()
    active: dict[tuple[CommunityKey, date], int] = {}
    for community_id, day, member_id, total in _values(conn, sql, "member_days", days, variables):
        messages, community, local_day = added[(community_id, day, member_id)]
        if messages and total == messages:
            active[(community, local_day)] = active.get((community, local_day), 0) + 1

    counted = sorted((*row[:3], active.get(key, 0), *row[3:]) for key, row in rows.community_days)
    # `executemany` (one prepared statement whatever the count) where nothing comes back:
    # a multi-row `VALUES` per row count would fill the connection's statement cache.
    conn.executemany(sql("community_days", 1), counted)
    conn.executemany(sql("community_hours", 1), rows.community_hours)
    memberships = [
        row if row[1].__class__ is int else (row[0], member_ids[row[1]], *row[2:])
        for row in rows.memberships
    ]
    memberships.sort(key=_two)
    conn.executemany(sql("memberships", 1), memberships)
    return TripOutcome(member_ids=member_ids, events=len(events))


def _two(row: tuple[Any, ...]) -> tuple[Any, Any]:
    """A membership row's (community id, member id)."""
    return row[0], row[1]
