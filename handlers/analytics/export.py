"""Analytics exports: a community's daily metrics over a range of local days, as data.

`build_report` reads the rollups once per range (not once per day): the `community_days`
rows of the range, the active (member, day) pairs of the range and the 29 days before it
(for WAU/MAU windows), the joiners whose D1/D7/D30 falls in the range and their activity,
then derives every day's row with the same definitions as `handlers.analytics.metrics`
(a test checks each row against `daily_metrics`). Participation has no per-day range query:
one pass finds the days on which any activity row is dated, and only those days are counted
(a handful of indexed counts each). The whole range's figures, top
contributors and hour-of-day totals come from one `community_metrics` call.

Member ids are pseudonymised by default: an HMAC-SHA256 of the community and member under a
per-install secret (`storage.secrets`), so a report can be shared without revealing accounts
and the same member keeps the same pseudonym across reports of one install. Display names
are left out unless real ids were asked for. Formatting lives in `report_format`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.analytics.metrics import (
    RETENTION_DAYS,
    CommunityMetrics,
    Participation,
    community_metrics,
)
from storage import analytics as store
from storage.activity import zone
from storage.analytics import DayRow
from storage.models import (
    Community,
    Giveaway,
    GiveawayEntry,
    MemberDay,
    Occurrence,
    Poll,
    PollVote,
    QaQuestion,
    Quiz,
    QuizAnswer,
)
from storage.secrets import install_secret

DAY = timedelta(days=1)
MAX_DAYS = 366
TOP_CONTRIBUTORS = 10
PSEUDONYM_KEY = "report-pseudonyms"
PSEUDONYM_CHARS = 16
# Participation fields in export order (names of `Participation`).
PARTICIPATION_FIELDS = (
    "posts_delivered", "polls", "poll_voters", "quizzes", "quiz_answerers", "giveaways",
    "giveaway_entries", "ama_questions", "ama_askers", "participants",
)  # fmt: skip


class ReportError(ValueError):
    """Bad report arguments (dates, range); the message is shown to the user."""


def pseudonym(key: bytes, community: Community, user_id: str) -> str:
    """A member's id in reports of one community: 16 hex characters that reveal no account."""
    message = f"report:{community.platform}:{community.external_id}:{user_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_CHARS]


@dataclass(frozen=True, slots=True)
class Retained:
    """A day's Dn cohort: joiners whose n-th day it is, and how many sent a message on it."""

    size: int
    retained: int

    @property
    def rate(self) -> float | None:
        return self.retained / self.size if self.size else None


@dataclass(frozen=True, slots=True)
class DayReport:
    """Every daily metric of one local day (definitions: `handlers.analytics.metrics`)."""

    day: date
    messages: int
    active_members: int
    joins: int
    leaves: int
    replies: int
    reactions: int
    member_count: int | None
    member_count_source: str | None  # "platform" (recorded that day), "earlier" or None
    dau: int
    wau: int
    mau: int
    participation: Participation
    retention: tuple[Retained, Retained, Retained]  # D1, D7, D30

    @property
    def net_growth(self) -> int:
        return self.joins - self.leaves

    @property
    def interactions(self) -> int:
        return self.replies + self.reactions

    @property
    def stickiness(self) -> float | None:
        return self.dau / self.mau if self.mau else None

    @property
    def engagement_rate(self) -> float | None:
        count = self.member_count
        return self.active_members / count if count else None


@dataclass(frozen=True, slots=True)
class ContributorRow:
    """A top contributor as exported: `member` is a pseudonym unless real ids were asked for."""

    rank: int
    member: str
    name: str | None
    messages: int
    replies: int
    reactions: int


@dataclass(frozen=True, slots=True)
class Report:
    """What `commops report` writes."""

    community: Community
    first: date
    last: date
    generated_at: datetime
    real_ids: bool
    days: tuple[DayReport, ...]
    totals: CommunityMetrics
    contributors: tuple[ContributorRow, ...]


def parse_day(raw: str, label: str) -> date:
    """A `YYYY-MM-DD` argument, or a ReportError naming it."""
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise ReportError(f"{label} {raw!r} is not a date: write YYYY-MM-DD") from None


def check_range(first: date, last: date) -> None:
    """Refuse an empty or too long range with a clear reason."""
    if first > last:
        raise ReportError(f"--from {first} is after --to {last}")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise ReportError(f"{days} days asked for; a report covers at most {MAX_DAYS} days")


async def find_community(session: AsyncSession, platform: str, external_id: str) -> Community:
    """The community `platform:external_id`, or a ReportError."""
    community = (
        await session.execute(
            select(Community).where(
                Community.platform == platform, Community.external_id == external_id
            )
        )
    ).scalar_one_or_none()
    if community is None or community.removed_at is not None:
        raise ReportError(f"no community {platform}:{external_id} is known to this bot")
    return community


async def _active_days(
    session: AsyncSession, community_id: int, first: date, last: date
) -> dict[date, set[int]]:
    """Members who sent a message, per local day `first`..`last` (from `member_days`)."""
    query = select(MemberDay.day, MemberDay.member_id).where(
        MemberDay.community_id == community_id,
        MemberDay.day >= first,
        MemberDay.day <= last,
        MemberDay.messages > 0,
    )
    found: dict[date, set[int]] = {}
    for day, member in (await session.execute(query)).all():
        found.setdefault(day, set()).add(int(member))
    return found


def _windows(active: dict[date, set[int]], first: date, last: date, width: int) -> list[int]:
    """Distinct members active in the `width` days ending with each day `first`..`last`:
    a sliding window of per-member counts, so the work is one pass over the pairs."""
    inside: Counter[int] = Counter()
    day = first - (width - 1) * DAY
    for i in range(width - 1):
        inside.update(active.get(day + i * DAY, ()))
    result = []
    day = first
    while day <= last:
        inside.update(active.get(day, ()))
        result.append(len(inside))
        inside.subtract(active.get(day - (width - 1) * DAY, ()))
        inside += Counter()  # drop members whose count fell to zero
        day += DAY
    return result


async def _retention(
    session: AsyncSession, community: Community, first: date, last: date
) -> dict[date, tuple[Retained, ...]]:
    """Each day's D1/D7/D30 cohorts: one read of the joiners, one of their activity."""
    tz = zone(community.timezone)
    start, end = store.local_bounds(
        first - max(RETENTION_DAYS) * DAY, last - min(RETENTION_DAYS) * DAY, tz
    )
    joined_on: dict[date, list[int]] = {}
    for member, at in await store.joiners(session, community.id, start, end):
        joined_on.setdefault(at.astimezone(tz).date(), []).append(member)
    members = [m for ms in joined_on.values() for m in ms]
    active = await store.active_member_days(session, community.id, members, first, last)
    result = {}
    day = first
    while day <= last:
        cohorts = []
        for n in RETENTION_DAYS:
            cohort = joined_on.get(day - n * DAY, [])
            cohorts.append(Retained(len(cohort), sum((m, day) in active for m in cohort)))
        result[day] = tuple(cohorts)
        day += DAY
    return result


async def _busy_days(
    session: AsyncSession, community: Community, first: date, last: date
) -> set[date]:
    """Local days `first`..`last` on which some activity row is dated: only those can have
    participation, so only those are counted (a superset is harmless, a quiet year is cheap)."""
    tz = zone(community.timezone)
    start, end = store.local_bounds(first, last, tz)
    cid = community.id
    stamps = [
        select(model.created_at).where(
            model.community_id == cid, model.created_at >= start, model.created_at < end
        )
        for model in (Poll, Quiz, Giveaway)
    ]
    stamps += [
        select(column)
        .join(parent, parent.id == fk)
        .where(parent.community_id == cid, column >= start, column < end)
        for column, parent, fk in (
            (PollVote.voted_at, Poll, PollVote.poll_id),
            (QuizAnswer.answered_at, Quiz, QuizAnswer.quiz_id),
            (GiveawayEntry.entered_at, Giveaway, GiveawayEntry.giveaway_id),
        )
    ]
    stamps.append(
        select(QaQuestion.asked_at).where(
            QaQuestion.community_id == cid, QaQuestion.asked_at >= start, QaQuestion.asked_at < end
        )
    )
    # Any finished occurrence (posts are the ones that count; others only add a query).
    stamps.append(
        select(Occurrence.finished_at).where(
            Occurrence.what.like("post:%"),
            Occurrence.finished_at >= start,
            Occurrence.finished_at < end,
        )
    )
    days: set[date] = set()
    for query in stamps:
        days.update(at.astimezone(tz).date() for at in (await session.execute(query)).scalars())
    return days


async def daily_rows(
    session: AsyncSession, community: Community, first: date, last: date
) -> tuple[DayReport, ...]:
    """One `DayReport` per local day `first`..`last`, oldest first."""
    check_range(first, last)
    cid = community.id
    tz = zone(community.timezone)
    rows = await store.day_rows(session, cid, first, last)
    active = await _active_days(session, cid, first - 29 * DAY, last)
    wau = _windows(active, first, last, 7)
    mau = _windows(active, first, last, 30)
    retention = await _retention(session, community, first, last)
    carried = await store.latest_member_count(session, cid, first - DAY)
    busy = await _busy_days(session, community, first, last)
    result = []
    for i in range((last - first).days + 1):
        day = first + i * DAY
        row = rows.get(day, DayRow(day))
        if row.member_count is not None:
            carried = (day, row.member_count)
            count, source = row.member_count, "platform"
        elif carried is not None:
            count, source = carried[1], "earlier"
        else:
            count, source = None, None
        start, end = store.local_bounds(day, day, tz)
        d1, d7, d30 = retention[day]
        result.append(
            DayReport(
                day=day,
                messages=row.messages,
                active_members=row.active_members,
                joins=row.joins,
                leaves=row.leaves,
                replies=row.replies,
                reactions=row.reactions,
                member_count=count,
                member_count_source=source,
                dau=len(active.get(day, ())),
                wau=wau[i],
                mau=mau[i],
                participation=(
                    await store.participation(session, cid, start, end)
                    if day in busy
                    else Participation()
                ),
                retention=(d1, d7, d30),
            )
        )
    return tuple(result)


async def build_report(
    session: AsyncSession,
    community: Community,
    first: date,
    last: date,
    *,
    now: datetime,
    real_ids: bool = False,
    top: int = TOP_CONTRIBUTORS,
) -> Report:
    """The daily rows, the whole range's figures and its top contributors."""
    check_range(first, last)
    days = await daily_rows(session, community, first, last)
    totals = await community_metrics(session, community, first, last, now=now, top=top)
    key = None if real_ids else await install_secret(session, PSEUDONYM_KEY, now=now)
    contributors = tuple(
        ContributorRow(
            rank=rank,
            member=c.user_id if key is None else pseudonym(key, community, c.user_id),
            name=c.name if key is None else None,
            messages=c.messages,
            replies=c.replies,
            reactions=c.reactions,
        )
        for rank, c in enumerate(totals.top_contributors, start=1)
    )
    return Report(community, first, last, now, real_ids, days, totals, contributors)
