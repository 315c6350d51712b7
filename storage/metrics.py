"""Aggregate queries for reports, read from the rollups (never from raw events)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import CommunityDay, CommunityHour, Member, MemberDay, Membership


@dataclass(frozen=True, slots=True)
class DayCounts:
    """One community's counters for one local day."""

    day: date
    messages: int = 0
    active_members: int = 0
    joins: int = 0
    leaves: int = 0
    reactions: int = 0
    replies: int = 0

    @property
    def net_growth(self) -> int:
        return self.joins - self.leaves


async def day_counts(
    session: AsyncSession, community_id: int, days: Iterable[date]
) -> dict[date, DayCounts]:
    """Counters for each requested day; days without activity come back as zeros."""
    wanted = list(days)
    query = select(CommunityDay).where(
        CommunityDay.community_id == community_id, CommunityDay.day.in_(wanted)
    )
    found = {row.day: row for row in (await session.execute(query)).scalars()}
    result: dict[date, DayCounts] = {}
    for day in wanted:
        row = found.get(day)
        result[day] = (
            DayCounts(
                day,
                row.messages,
                row.active_members,
                row.joins,
                row.leaves,
                row.reactions,
                row.replies,
            )
            if row
            else DayCounts(day)
        )
    return result


async def recount_from_events(
    session: AsyncSession, community_id: int, timezone: str
) -> dict[date, DayCounts]:
    """Recount the day counters from raw events: a check of the rollups, never a report path."""
    from zoneinfo import ZoneInfo

    from storage.activity import ActivityKind
    from storage.models import ActivityEvent

    tz = ZoneInfo(timezone)
    query = select(
        ActivityEvent.kind,
        ActivityEvent.member_id,
        ActivityEvent.is_reply,
        ActivityEvent.occurred_at,
    ).where(ActivityEvent.community_id == community_id)
    tallies: dict[date, dict[str, int]] = {}
    active: dict[date, set[int]] = {}
    for kind, member_id, is_reply, at in (await session.execute(query)).all():
        day = at.astimezone(tz).date()
        t = tallies.setdefault(
            day, dict.fromkeys(("messages", "joins", "leaves", "reactions", "replies"), 0)
        )
        if kind == ActivityKind.MESSAGE:
            t["messages"] += 1
            t["replies"] += int(bool(is_reply))
            active.setdefault(day, set()).add(member_id)
        elif kind == ActivityKind.REACTION:
            t["reactions"] += 1
        elif kind == ActivityKind.JOIN:
            t["joins"] += 1
        elif kind == ActivityKind.LEAVE:
            t["leaves"] += 1
    return {
        day: DayCounts(
            day,
            t["messages"],
            len(active.get(day, ())),
            t["joins"],
            t["leaves"],
            t["reactions"],
            t["replies"],
        )
        for day, t in tallies.items()
    }


async def stored_days(session: AsyncSession, community_id: int) -> dict[date, DayCounts]:
    """Every rollup row of a community."""
    query = select(CommunityDay).where(CommunityDay.community_id == community_id)
    return {
        r.day: DayCounts(
            r.day, r.messages, r.active_members, r.joins, r.leaves, r.reactions, r.replies
        )
        for r in (await session.execute(query)).scalars()
    }


async def member_messages_since(
    session: AsyncSession, community_id: int, platform: str, user_id: str, since: date
) -> int:
    """A member's messages in a community from local day `since` on, from the rollups."""
    total = await session.scalar(
        select(func.coalesce(func.sum(MemberDay.messages), 0))
        .join(Member, Member.id == MemberDay.member_id)
        .where(
            MemberDay.community_id == community_id,
            MemberDay.day >= since,
            Member.platform == platform,
            Member.external_id == user_id,
        )
    )
    return int(total or 0)


async def member_since(
    session: AsyncSession, community_id: int, platform: str, user_id: str
) -> datetime | None:
    """When the bot first knew the member in the community (join or first activity)."""
    row = (
        await session.execute(
            select(Membership.first_seen_at, Membership.joined_at)
            .join(Member, Member.id == Membership.member_id)
            .where(
                Membership.community_id == community_id,
                Member.platform == platform,
                Member.external_id == user_id,
            )
        )
    ).one_or_none()
    if row is None:
        return None
    return min(t for t in row if t is not None)


@dataclass(frozen=True, slots=True)
class HourBucket:
    """Messages and distinct senders in one UTC hour (`hour` is its aware UTC start)."""

    hour: datetime
    messages: int
    members: int


async def hourly_activity(
    session: AsyncSession, community_id: int, *, since: datetime, until: datetime
) -> list[HourBucket]:
    """Messages and active members per UTC hour with `since <= occurred_at < until`, oldest first.

    Read from raw events: one range scan of the (community_id, occurred_at) index, grouped
    in SQL, so at most 24 rows a day come back. The hourly rollup (`local_hours`) gives the
    messages without raw events but no distinct members per hour; this stays for those and
    as the rollup's check.
    """
    from sqlalchemy import type_coerce

    from storage.activity import ActivityKind
    from storage.models import ActivityEvent, UTCDateTime

    at = ActivityEvent.occurred_at
    if session.bind.dialect.name == "postgresql":
        # Truncate the UTC wall time: date_trunc on a timestamptz would use the session's
        # time zone, which is wrong for zones with a non-whole-hour offset.
        truncated = func.date_trunc("hour", func.timezone("UTC", at))
    else:
        truncated = func.strftime("%Y-%m-%d %H:00:00", at)  # SQLite stores naive UTC text
    hour = type_coerce(truncated, UTCDateTime()).label("hour")
    query = (
        select(hour, func.count(), func.count(ActivityEvent.member_id.distinct()))
        .where(
            ActivityEvent.community_id == community_id,
            at >= since,
            at < until,
            ActivityEvent.kind == int(ActivityKind.MESSAGE),
        )
        .group_by(hour)
        .order_by(hour)
    )
    return [
        HourBucket(start, int(messages), int(members))
        for start, messages, members in (await session.execute(query)).all()
    ]


@dataclass(frozen=True, slots=True)
class LocalHour:
    """One `community_hours` row: a community's counters in one local hour of one local day."""

    day: date
    hour: int  # 0-23, local
    messages: int
    reactions: int


async def local_hours(
    session: AsyncSession, community_id: int, first: date, last: date
) -> list[LocalHour]:
    """The hourly rollup rows of local days `first`..`last`, oldest first (hours without
    activity have no row). Kept by the activity writer since schema 0007, not backfilled."""
    query = (
        select(CommunityHour)
        .where(
            CommunityHour.community_id == community_id,
            CommunityHour.day >= first,
            CommunityHour.day <= last,
        )
        .order_by(CommunityHour.day, CommunityHour.hour)
    )
    return [
        LocalHour(r.day, r.hour, r.messages, r.reactions)
        for r in (await session.execute(query)).scalars()
    ]
