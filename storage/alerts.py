"""Alerts raised to a community's managers, rate-limited in the database.

An alert is one `alerts` row per storm: hits of the same (community, kind, subject) that come
within `cooldown` of the row's last hit add to its `count` and move its `last_at` instead of
making a new row. Telling the managers is claimed on the row with a conditional UPDATE of
`notified_at`: the first hit's claim succeeds (a new alert), later ones only once `cooldown`
has passed since the last message, and only if there were hits since then (a "still going"
follow-up). So a storm is one message, plus at most one follow-up per cooldown, across
restarts and instances. `detail` holds chats and numbers: never message text, and no
member (the feature names members only in the messages it sends).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import String, case, cast, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AlertRecord, Community, CommunityHour, Member, Membership

MAX_SUBJECT = 128
# `detail` keys the rate limiting itself uses.
NOTICED = "noticed"  # the count when the managers were last told
ONCE_KEY = "key"  # what the latest hit was about, for hits that must count once (an hour)


class Notice(StrEnum):
    FIRST = "first"  # a new alert
    AGAIN = "again"  # a follow-up: still going


@dataclass(frozen=True, slots=True)
class Recorded:
    """What `record` did: the row, and whether this caller should tell the managers."""

    alert: AlertRecord
    notice: Notice | None
    more: int  # hits since the managers were last told (all of them for a first notice)
    previous_notified_at: datetime | None


async def open_alert(
    session: AsyncSession, community_id: int, kind: str, subject: str, *, since: datetime
) -> AlertRecord | None:
    """The alert still going for this subject: its last hit is at `since` or later."""
    query = (
        select(AlertRecord)
        .where(
            AlertRecord.community_id == community_id,
            AlertRecord.kind == kind,
            AlertRecord.subject == subject[:MAX_SUBJECT],
            AlertRecord.last_at >= since,
        )
        .order_by(AlertRecord.last_at.desc(), AlertRecord.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def record(
    session: AsyncSession,
    community_id: int,
    kind: str,
    subject: str,
    *,
    now: datetime,
    count: int,
    detail: dict[str, Any],
    cooldown: timedelta,
    notify: bool,
    once_key: str | None = None,
) -> Recorded | None:
    """Add `count` hits to the open alert (or open one) and claim telling the managers.

    `detail` is merged into the row's (its values replace older ones; `merge_detail` for
    lists). With `once_key`, a hit whose key equals the open alert's latest one changes
    nothing and returns None (an hour checked twice). `notify` is False when there is
    nobody to tell: the hit is recorded and no claim is made, so a later hit can tell them.
    """
    subject = subject[:MAX_SUBJECT]
    row = await open_alert(session, community_id, kind, subject, since=now - cooldown)
    if row is not None and once_key is not None and row.detail.get(ONCE_KEY) == once_key:
        return None
    if once_key is not None:
        detail = {**detail, ONCE_KEY: once_key}
    if row is None:
        row = AlertRecord(
            community_id=community_id,
            kind=kind,
            subject=subject,
            first_at=now,
            last_at=now,
            count=count,
            detail={**detail, NOTICED: 0},
            notified_at=None,
        )
        session.add(row)
        await session.flush()
    else:
        await session.execute(
            update(AlertRecord)
            .where(AlertRecord.id == row.id)
            .values(
                count=AlertRecord.count + count,
                last_at=case((AlertRecord.last_at < now, now), else_=AlertRecord.last_at),
            )
            .execution_options(synchronize_session=False)
        )
        await session.refresh(row)
        row.detail = merge_detail(row.detail, detail)
    previous = row.notified_at
    noticed = int(row.detail.get(NOTICED, 0))
    more = row.count - noticed
    if not notify or more <= 0:
        return Recorded(row, None, more, previous)
    claimed = await session.execute(
        update(AlertRecord)
        .where(
            AlertRecord.id == row.id,
            or_(AlertRecord.notified_at.is_(None), AlertRecord.notified_at <= now - cooldown),
        )
        .values(notified_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return Recorded(row, None, more, previous)
    row.notified_at = now
    row.detail = {**row.detail, NOTICED: row.count}
    return Recorded(row, Notice.FIRST if previous is None else Notice.AGAIN, more, previous)


# Lists in `detail` (member ids, chats) keep their first entries up to this many.
MAX_LISTED = 5


def merge_detail(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """New values replace old ones, except lists, which are joined without repeats."""
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, list) and isinstance(merged.get(key), list):
            joined = list(merged[key])
            for item in value:
                if item not in joined and len(joined) < MAX_LISTED:
                    joined.append(item)
            merged[key] = joined
        else:
            merged[key] = value
    return merged


async def unclaim(
    session: AsyncSession, alert_id: int, *, notified_at: datetime | None, noticed: int
) -> None:
    """Give a notice claim back after the message could not be sent, so a later hit retries."""
    row = await session.get(AlertRecord, alert_id)
    if row is None:
        return
    row.notified_at = notified_at
    row.detail = {**row.detail, NOTICED: noticed}


async def between(
    session: AsyncSession, community_id: int, start: datetime, end: datetime, *, limit: int = 20
) -> list[AlertRecord]:
    """Alerts with hits in [start, end), earliest first."""
    query = (
        select(AlertRecord)
        .where(
            AlertRecord.community_id == community_id,
            AlertRecord.first_at < end,
            AlertRecord.last_at >= start,
        )
        .order_by(AlertRecord.first_at, AlertRecord.id)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def opted_out(
    session: AsyncSession, community_id: int, platform: str, user_ids: Sequence[str]
) -> set[str]:
    """Which of these platform user ids opted out of being named in this community."""
    if not user_ids:
        return set()
    query = (
        select(Member.external_id)
        .join(Membership, Membership.member_id == Member.id)
        .where(
            Membership.community_id == community_id,
            Member.platform == platform,
            Member.external_id.in_(list(user_ids)),
            Membership.opted_out_at.is_not(None),
        )
    )
    return set((await session.execute(query)).scalars())


# --- what the checks read -----------------------------------------------------------------


async def configured_communities(session: AsyncSession, keys: Sequence[str]) -> list[Community]:
    """Communities (not removed) whose settings hold any of these keys.

    The settings are JSON; a LIKE on their text narrows the rows on both SQLite and
    PostgreSQL without JSON operators, and the caller checks the parsed settings.
    """
    if not keys:
        return []
    text = cast(Community.settings, String)
    query = select(Community).where(
        Community.removed_at.is_(None), or_(*(text.like(f'%"{key}"%') for key in keys))
    )
    return list((await session.execute(query)).scalars())


async def live_communities(session: AsyncSession) -> list[Community]:
    """Every community the bot is still in."""
    query = select(Community).where(Community.removed_at.is_(None)).order_by(Community.id)
    return list((await session.execute(query)).scalars())


async def hour_messages(
    session: AsyncSession, community_ids: Sequence[int], days: Sequence[date], hour: int
) -> dict[tuple[int, date], int]:
    """Messages in local hour `hour` of each of `days`, per community (absent: none)."""
    found: dict[tuple[int, date], int] = {}
    for start in range(0, len(community_ids), 500):
        chunk = list(community_ids[start : start + 500])
        query = select(CommunityHour.community_id, CommunityHour.day, CommunityHour.messages).where(
            CommunityHour.community_id.in_(chunk),
            CommunityHour.day.in_(list(days)),
            CommunityHour.hour == hour,
        )
        for community_id, day, messages in (await session.execute(query)).all():
            found[community_id, day] = int(messages)
    return found


async def hours_recorded_on(
    session: AsyncSession, community_ids: Sequence[int], day: date
) -> set[int]:
    """The communities with any hourly counts on `day` (their hourly history reaches it)."""
    found: set[int] = set()
    for start in range(0, len(community_ids), 500):
        chunk = list(community_ids[start : start + 500])
        query = (
            select(CommunityHour.community_id)
            .where(CommunityHour.community_id.in_(chunk), CommunityHour.day == day)
            .distinct()
        )
        found.update((await session.execute(query)).scalars())
    return found


async def recent(
    session: AsyncSession, community_id: int, *, since: datetime, limit: int
) -> list[AlertRecord]:
    """The latest alerts with hits since `since`, latest first."""
    query = (
        select(AlertRecord)
        .where(AlertRecord.community_id == community_id, AlertRecord.last_at >= since)
        .order_by(AlertRecord.last_at.desc(), AlertRecord.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())
