"""Deleting what commops no longer keeps: raw activity past its retention, removed communities.

Every function does one bounded step in the caller's session (repositories never commit), so
the caller commits between steps and no transaction grows with the size of the data: a
batch of raw events, a stretch of days of member rollups, then the community row itself,
whose foreign keys cascade to everything else it owns (chats, memberships, giveaways, posts,
polls, quizzes, FAQ, AMA, points).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ActivityEvent, Community, Member, MemberDay, Membership

EVENTS = ActivityEvent.__table__
MEMBER_DAYS = MemberDay.__table__


async def community_ids(session: AsyncSession) -> list[int]:
    """Every community's id, oldest first."""
    return list((await session.execute(select(Community.id).order_by(Community.id))).scalars())


async def delete_events_before(
    session: AsyncSession, community_id: int, before: datetime, *, limit: int
) -> int:
    """Delete up to `limit` of a community's raw events older than `before`; how many went.

    The inner select walks the (community_id, occurred_at) index, so each batch costs what
    it deletes, not a scan of the table. Rollups are not touched: summaries stay as they were.
    """
    batch = (
        select(EVENTS.c.id)
        .where(EVENTS.c.community_id == community_id, EVENTS.c.occurred_at < before)
        .limit(limit)
    )
    result = await session.execute(delete(EVENTS).where(EVENTS.c.id.in_(batch.scalar_subquery())))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def removed_before(session: AsyncSession, before: datetime) -> list[int]:
    """Communities the bot was removed from at or before `before`."""
    query = (
        select(Community.id)
        .where(Community.removed_at.is_not(None), Community.removed_at <= before)
        .order_by(Community.id)
    )
    return list((await session.execute(query)).scalars())


async def active_since(session: AsyncSession, community_id: int, since: datetime) -> bool:
    """Whether anything happened in the community at or after `since` (the bot is there)."""
    query = select(
        exists().where(EVENTS.c.community_id == community_id, EVENTS.c.occurred_at >= since)
    )
    return bool((await session.execute(query)).scalar())


async def set_removed(session: AsyncSession, community_id: int, at: datetime | None) -> None:
    """Mark the community as left by the bot at `at`, or as served again (`None`)."""
    await session.execute(
        update(Community).where(Community.id == community_id).values(removed_at=at)
    )


async def member_ids(session: AsyncSession, community_id: int) -> list[int]:
    """The members the community knows (to forget those it was the last community of)."""
    query = select(Membership.member_id).where(Membership.community_id == community_id)
    return list((await session.execute(query)).scalars())


async def delete_community_events(session: AsyncSession, community_id: int, *, limit: int) -> int:
    """Delete up to `limit` of a community's raw events; how many went."""
    batch = select(EVENTS.c.id).where(EVENTS.c.community_id == community_id).limit(limit)
    result = await session.execute(delete(EVENTS).where(EVENTS.c.id.in_(batch.scalar_subquery())))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def delete_member_days(session: AsyncSession, community_id: int, *, days: int) -> int:
    """Delete the member rollups of a community's `days` earliest days; how many rows went."""
    earliest = (
        select(MEMBER_DAYS.c.day)
        .where(MEMBER_DAYS.c.community_id == community_id)
        .group_by(MEMBER_DAYS.c.day)
        .order_by(MEMBER_DAYS.c.day)
        .limit(days)
    )
    chosen = list((await session.execute(earliest)).scalars())
    if not chosen:
        return 0
    result = await session.execute(
        delete(MEMBER_DAYS).where(
            MEMBER_DAYS.c.community_id == community_id, MEMBER_DAYS.c.day.in_(chosen)
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def delete_community(session: AsyncSession, community_id: int) -> bool:
    """Delete the community row, if it is still marked removed (the bot may have come back
    while its raw events were going); the foreign keys cascade to everything it owns."""
    result = await session.execute(
        delete(Community).where(Community.id == community_id, Community.removed_at.is_not(None))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def delete_orphan_members(session: AsyncSession, candidates: Sequence[int]) -> int:
    """Delete those of `candidates` who are no longer in any community; how many went.

    Callers pass a few at a time: each deleted member makes the database look for their
    rows in `activity_events` and `member_days`, which have no index on the member (a scan
    of both tables per member, inside this transaction).
    """
    ids = sorted(set(candidates))
    if not ids:
        return 0
    still_in = set(
        (
            await session.execute(
                select(Membership.member_id).where(Membership.member_id.in_(ids)).distinct()
            )
        ).scalars()
    )
    orphans = [i for i in ids if i not in still_in]
    if not orphans:
        return 0
    # Asked again in the delete itself: the activity writer may have seen one of them since.
    still_in_now = exists().where(Membership.member_id == Member.id)
    result = await session.execute(delete(Member).where(Member.id.in_(orphans), ~still_in_now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
