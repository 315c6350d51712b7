"""The points ledger: every change is a row; balances and leaderboards are sums of rows.

Nothing here stores a balance: a member's points are always `SUM(amount)` over their rows,
so an award, a manager's adjustment or a correction can never drift from the total.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import DialectInsert
from storage.models import Community, PointsEntry
from storage.privacy import opted_out

LEDGER = PointsEntry.__table__

# Values per `IN (...)` list: keeps every query far below the bound-parameter caps.
_CHUNK = 1000
# Ledger rows unless that award exists (every vote, entry, quiz answer and message batch).
_AWARD = DialectInsert(
    lambda insert: insert(LEDGER).on_conflict_do_nothing().returning(LEDGER.c.id)
)


class PointsReason(StrEnum):
    """Why points changed; `ref` then names the thing (a message key, `poll:12`, ...)."""

    MESSAGE = "message"
    POLL_VOTE = "poll_vote"
    QUIZ_CORRECT = "quiz_correct"
    GIVEAWAY_ENTRY = "giveaway_entry"
    QA_ANSWERED = "qa_answered"
    GIVEN = "given"  # by a manager
    TAKEN = "taken"  # by a manager


@dataclass(frozen=True, slots=True)
class Award:
    """Points for one member for one thing; `ref` makes a second award for it a no-op."""

    user_id: str
    display_name: str
    amount: int
    reason: PointsReason
    ref: str
    actor_id: str | None = None
    note: str | None = None


def _row(community_id: int, item: Award, at: datetime) -> dict[str, Any]:
    """One ledger row as inserted (column lengths applied)."""
    return {
        "community_id": community_id,
        "user_id": item.user_id,
        "display_name": item.display_name[:256],
        "amount": item.amount,
        "reason": item.reason.value,
        "ref": item.ref[:128],
        "actor_id": item.actor_id,
        "note": item.note[:256] if item.note else None,
        "at": at,
    }


async def award(session: AsyncSession, community_id: int, item: Award, *, now: datetime) -> bool:
    """Write one ledger row in the caller's transaction; False when that award exists already."""
    if item.amount == 0:
        return False
    row = _row(community_id, item, now)
    inserted = (await session.execute(_AWARD.of(session), row)).scalar_one_or_none()
    return inserted is not None


async def award_many(session: AsyncSession, items: Sequence[tuple[int, Award, datetime]]) -> int:
    """Write many (community id, award, when) rows in one statement; returns how many were new.

    Rows are sorted by the unique key, so concurrent writers take index locks in one order.
    """
    rows = [_row(cid, item, at) for cid, item, at in items if item.amount != 0]
    if not rows:
        return 0
    rows.sort(key=lambda r: (r["community_id"], r["user_id"], r["reason"], r["ref"]))
    stmt = _AWARD.of(session)
    return len((await session.execute(stmt, rows)).all())


async def balance(session: AsyncSession, community_id: int, user_id: str) -> int:
    """The member's points in this community: the sum of their ledger rows."""
    total = await session.scalar(
        select(func.coalesce(func.sum(LEDGER.c.amount), 0)).where(
            LEDGER.c.community_id == community_id, LEDGER.c.user_id == user_id
        )
    )
    return int(total or 0)


async def total_since(
    session: AsyncSession, community_id: int, user_id: str, since: datetime | None
) -> int:
    """The member's points earned (net) from `since` on; all time when `since` is None."""
    query = select(func.coalesce(func.sum(LEDGER.c.amount), 0)).where(
        LEDGER.c.community_id == community_id, LEDGER.c.user_id == user_id
    )
    if since is not None:
        query = query.where(LEDGER.c.at >= since)
    return int(await session.scalar(query) or 0)


async def balances(session: AsyncSession, community_id: int) -> dict[str, int]:
    """Every member's balance in a community (checks and exports; not a report path)."""
    query = (
        select(LEDGER.c.user_id, func.sum(LEDGER.c.amount))
        .where(LEDGER.c.community_id == community_id)
        .group_by(LEDGER.c.user_id)
    )
    return {user_id: int(total) for user_id, total in (await session.execute(query)).all()}


async def lock_balances(session: AsyncSession, community_id: int) -> None:
    """Serialize balance-checked changes (taking points) within one community.

    Call it before reading the balance. PostgreSQL: a row lock on the community, held to the
    end of the transaction. SQLite: a no-op write, which takes the database's write lock now
    (the driver begins its transaction only at the first write, so reads before it would
    not be isolated). Either way two managers taking at once can't both pass the check.
    """
    if session.bind.dialect.name == "postgresql":
        await session.execute(
            select(Community.id).where(Community.id == community_id).with_for_update()
        )
    else:
        await session.execute(
            update(Community).where(Community.id == community_id).values(id=Community.id)
        )


# --- leaderboards ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Standing:
    """A member's place on a leaderboard: equal totals share a rank (1, 2, 2, 4)."""

    user_id: str
    display_name: str
    total: int
    rank: int


def _totals(community_id: int, since: datetime | None) -> Any:
    """Per member net points in a window, only members with a positive total who have not
    opted out (`/optout`: they are left off the leaderboard and out of its ranks)."""
    total = func.sum(LEDGER.c.amount)
    query = select(LEDGER.c.user_id, total.label("total")).where(
        LEDGER.c.community_id == community_id
    )
    if since is not None:
        query = query.where(LEDGER.c.at >= since)
    # In HAVING: checked once per member, not once per ledger row.
    listed = ~opted_out(community_id, LEDGER.c.user_id)
    return query.group_by(LEDGER.c.user_id).having(total > 0, listed).subquery()


async def leaderboard(
    session: AsyncSession, community_id: int, *, since: datetime | None = None, limit: int = 10
) -> list[Standing]:
    """The top members by points earned from `since` on (all time when None)."""
    totals = _totals(community_id, since)
    rank = func.rank().over(order_by=totals.c.total.desc())
    query = (
        select(totals.c.user_id, totals.c.total, rank)
        .order_by(totals.c.total.desc(), totals.c.user_id)
        .limit(limit)
    )
    top = (await session.execute(query)).all()
    names = await latest_names(session, community_id, [user_id for user_id, _, _ in top])
    return [
        Standing(user_id, names.get(user_id, user_id), int(total), int(place))
        for user_id, total, place in top
    ]


@dataclass(frozen=True, slots=True)
class Place:
    """One member's total in a window, their rank (None unless positive) and how many rank."""

    total: int
    rank: int | None
    ranked: int


async def place_of(
    session: AsyncSession, community_id: int, user_id: str, *, since: datetime | None = None
) -> Place:
    """Where a member stands: two queries, whatever the community's size."""
    total = await total_since(session, community_id, user_id, since)
    totals = _totals(community_id, since)
    above = func.coalesce(func.sum(case((totals.c.total > total, 1), else_=0)), 0)
    ranked, higher = (await session.execute(select(func.count(), above))).one()
    return Place(total, int(higher) + 1 if total > 0 else None, int(ranked))


async def latest_names(
    session: AsyncSession, community_id: int, user_ids: Iterable[str]
) -> dict[str, str]:
    """The name each member had on their latest ledger row."""
    wanted = list(dict.fromkeys(user_ids))
    names: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        latest = (
            select(func.max(LEDGER.c.id))
            .where(
                LEDGER.c.community_id == community_id,
                LEDGER.c.user_id.in_(wanted[start : start + _CHUNK]),
            )
            .group_by(LEDGER.c.user_id)
        )
        query = select(LEDGER.c.user_id, LEDGER.c.display_name).where(LEDGER.c.id.in_(latest))
        names.update((await session.execute(query)).all())
    return names


async def history(
    session: AsyncSession, community_id: int, user_id: str, *, limit: int = 200
) -> list[PointsEntry]:
    """A member's latest ledger rows, newest first."""
    query = (
        select(PointsEntry)
        .where(PointsEntry.community_id == community_id, PointsEntry.user_id == user_id)
        .order_by(PointsEntry.at.desc(), PointsEntry.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


# --- message points (the activity writer's hook) --------------------------------------------


@dataclass(frozen=True, slots=True)
class RecentMessagePoints:
    """A member's message points in each asked window, and their latest such award."""

    per_window: tuple[int, ...]
    last_at: datetime | None


async def recent_message_points(
    session: AsyncSession,
    members: Iterable[tuple[int, str]],
    windows: Sequence[tuple[datetime, datetime]],
    *,
    since: datetime,
) -> dict[tuple[int, str], RecentMessagePoints]:
    """Message points per (community, member) in each [start, end) window, from `since` on.

    One grouped query per thousand members: each window is a conditional sum, so a batch
    that crosses midnight still needs no extra round trip.
    """
    wanted = set(members)
    communities = list({cid for cid, _ in wanted})
    users = sorted({uid for _, uid in wanted})
    at, amount = LEDGER.c.at, LEDGER.c.amount
    sums = [
        func.coalesce(func.sum(case((and_(at >= start, at < end), amount), else_=0)), 0)
        for start, end in windows
    ]
    found: dict[tuple[int, str], RecentMessagePoints] = {}
    for start in range(0, len(users), _CHUNK):
        query = (
            select(LEDGER.c.community_id, LEDGER.c.user_id, func.max(at), *sums)
            .where(
                LEDGER.c.reason == PointsReason.MESSAGE.value,
                LEDGER.c.community_id.in_(communities),
                LEDGER.c.user_id.in_(users[start : start + _CHUNK]),
                at >= since,
            )
            .group_by(LEDGER.c.community_id, LEDGER.c.user_id)
        )
        for cid, uid, last_at, *per_window in (await session.execute(query)).all():
            if (cid, uid) in wanted:
                found[(cid, uid)] = RecentMessagePoints(tuple(int(v) for v in per_window), last_at)
    return found


async def settings_of(session: AsyncSession, community_ids: Iterable[int]) -> dict[int, Any]:
    """The settings of several communities, in one query."""
    ids = list(set(community_ids))
    query = select(Community.id, Community.settings).where(Community.id.in_(ids))
    return dict((await session.execute(query)).all())
