"""Analytics queries for one community over local days: rollups and feature tables only.

Nothing here scans `activity_events`: daily counters come from `community_days`, hour-of-day
counters from `community_hours`, who was active from `member_days`, joins from `memberships`,
and taking part in activities from the polls, quizzes, giveaways, AMA and occurrence tables.
`handlers.analytics.metrics` turns these into the figures reports show.

Days are calendar days in the community's time zone (as the activity writer counted them);
feature tables store UTC instants, so callers pass the UTC bounds of the local days
(`local_bounds`). "Active" means sent at least one message that day, as `community_days`
counts it (a reaction alone is an interaction, not activity).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, case, cast, distinct, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import postdays
from storage.db import dialect_insert
from storage.models import (
    CommunityDay,
    CommunityHour,
    Giveaway,
    GiveawayEntry,
    Member,
    MemberDay,
    Membership,
    Occurrence,
    Poll,
    PollVote,
    QaQuestion,
    Quiz,
    QuizAnswer,
    ScheduledPost,
)

COMMUNITY_DAYS = CommunityDay.__table__
# Member ids per `IN (...)` list: far below the bound-parameter caps of both databases.
_CHUNK = 1000


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant a local day starts (where midnight is skipped by DST, the instant the
    clocks jumped: the first moment that has that date)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def local_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """`[start, end)` in UTC of the local days `first` to `last`, both included."""
    return local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz)


@dataclass(frozen=True, slots=True)
class DayRow:
    """One `community_days` row: the community's counters for one local day."""

    day: date
    messages: int = 0
    active_members: int = 0
    joins: int = 0
    leaves: int = 0
    reactions: int = 0
    replies: int = 0
    member_count: int | None = None


async def day_rows(
    session: AsyncSession, community_id: int, first: date, last: date
) -> dict[date, DayRow]:
    """The rollup rows of local days `first`..`last`; days without a row are left out."""
    query = select(CommunityDay).where(
        CommunityDay.community_id == community_id,
        CommunityDay.day >= first,
        CommunityDay.day <= last,
    )
    rows = (await session.execute(query)).scalars()
    return {
        r.day: DayRow(
            r.day,
            r.messages,
            r.active_members,
            r.joins,
            r.leaves,
            r.reactions,
            r.replies,
            r.member_count,
        )
        for r in rows
    }


async def distinct_active(session: AsyncSession, community_id: int, first: date, last: date) -> int:
    """Distinct members who sent a message on any local day `first`..`last`."""
    (active,) = await active_in_windows(session, community_id, last, ((last - first).days + 1,))
    return active


async def active_in_windows(
    session: AsyncSession, community_id: int, last: date, spans: Sequence[int]
) -> tuple[int, ...]:
    """For each span: distinct members who sent a message in the `span` local days up to
    `last` (DAU, WAU, MAU for spans 1, 7, 30).

    One pass over the community's `memberships` with their posting-day masks when the masks
    reach the longest window, as they do for recent days; otherwise one `member_days` count
    per span.
    """
    longest = max(spans)
    if min(spans) > 0 and longest <= postdays.BITS:
        ms = Membership
        bits = postdays.aligned(ms.recent_posts_day, ms.recent_posts, last)
        reached = postdays.covered(ms.recent_posts_day, last, longest)
        masked = select(
            func.count(case((~reached, 1))),
            *(func.count(case((and_(reached, postdays.any_in(bits, n)), 1))) for n in spans),
        ).where(
            ms.community_id == community_id,
            ms.recent_posts_day >= postdays.day_number(last) - (longest - 1),
        )
        unreached, *active = (await session.execute(masked)).one()
        if not unreached:
            return tuple(int(a) for a in active)
    counts = []
    for span in spans:
        query = select(func.count(distinct(MemberDay.member_id))).where(
            MemberDay.community_id == community_id,
            MemberDay.day >= last - timedelta(days=span - 1),
            MemberDay.day <= last,
            MemberDay.messages > 0,
        )
        counts.append(int((await session.execute(query)).scalar_one()))
    return tuple(counts)


@dataclass(frozen=True, slots=True)
class HourTotals:
    """Messages and reactions per local hour of day (index 0 = 00:00-00:59), summed over days.

    A local hour a DST change repeats counts both; one it skips has nothing.
    """

    messages: tuple[int, ...]
    reactions: tuple[int, ...]


async def hour_totals(
    session: AsyncSession, community_id: int, first: date, last: date
) -> HourTotals:
    """Hour-of-day activity over local days `first`..`last`, from `community_hours`."""
    query = (
        select(
            CommunityHour.hour,
            func.sum(CommunityHour.messages),
            func.sum(CommunityHour.reactions),
        )
        .where(
            CommunityHour.community_id == community_id,
            CommunityHour.day >= first,
            CommunityHour.day <= last,
        )
        .group_by(CommunityHour.hour)
    )
    messages, reactions = [0] * 24, [0] * 24
    for hour, m, r in (await session.execute(query)).all():
        if 0 <= hour < 24:
            messages[hour], reactions[hour] = int(m or 0), int(r or 0)
    return HourTotals(tuple(messages), tuple(reactions))


@dataclass(frozen=True, slots=True)
class Contributor:
    """A member's activity over a period (platform id and current display name)."""

    user_id: str
    name: str
    messages: int
    replies: int
    reactions: int


async def top_contributors(
    session: AsyncSession, community_id: int, first: date, last: date, limit: int
) -> list[Contributor]:
    """The members who sent the most messages on local days `first`..`last`, most first.

    Members who opted out (`/optout`) and bots are never listed; they still count in totals.
    Ties go to more reactions, then by name.
    """
    if limit <= 0:
        return []
    messages = func.sum(MemberDay.messages)
    reactions = func.sum(MemberDay.reactions)
    query = (
        select(
            Member.external_id,
            Member.display_name,
            messages,
            func.sum(MemberDay.replies),
            reactions,
        )
        .join(Member, Member.id == MemberDay.member_id)
        .join(
            Membership,
            and_(
                Membership.community_id == MemberDay.community_id,
                Membership.member_id == MemberDay.member_id,
            ),
        )
        .where(
            MemberDay.community_id == community_id,
            MemberDay.day >= first,
            MemberDay.day <= last,
            Membership.opted_out_at.is_(None),
            Member.is_bot.is_(False),
        )
        .group_by(Member.id, Member.external_id, Member.display_name)
        .having(messages > 0)
        .order_by(messages.desc(), reactions.desc(), Member.display_name, Member.external_id)
        .limit(limit)
    )
    return [
        Contributor(user_id, name, int(m), int(rp or 0), int(rc or 0))
        for user_id, name, m, rp, rc in (await session.execute(query)).all()
    ]


async def joiners(
    session: AsyncSession, community_id: int, start: datetime, end: datetime
) -> list[tuple[int, datetime]]:
    """(member id, join time) of members whose latest join is in `[start, end)`.

    `memberships.joined_at` keeps a member's latest join: one who left and came back counts
    in the cohort of their return.
    """
    query = select(Membership.member_id, Membership.joined_at).where(
        Membership.community_id == community_id,
        Membership.joined_at >= start,
        Membership.joined_at < end,
    )
    return [(int(m), at) for m, at in (await session.execute(query)).all()]


async def active_member_days(
    session: AsyncSession,
    community_id: int,
    member_ids: Iterable[int],
    first: date,
    last: date,
) -> set[tuple[int, date]]:
    """(member id, local day) pairs on which these members sent a message, `first`..`last`."""
    ids = sorted(set(member_ids))
    found: set[tuple[int, date]] = set()
    for start in range(0, len(ids), _CHUNK):
        query = select(MemberDay.member_id, MemberDay.day).where(
            MemberDay.community_id == community_id,
            MemberDay.day >= first,
            MemberDay.day <= last,
            MemberDay.messages > 0,
            MemberDay.member_id.in_(ids[start : start + _CHUNK]),
        )
        found.update((int(m), d) for m, d in (await session.execute(query)).all())
    return found


async def record_member_count(
    session: AsyncSession, community_id: int, day: date, count: int
) -> None:
    """Record the platform's member count for a local day, unless one is recorded already
    (the first summary of a day keeps its count: platforms only tell the current one)."""
    insert = dialect_insert(session)
    stmt = insert(COMMUNITY_DAYS).values(community_id=community_id, day=day, member_count=count)
    stmt = stmt.on_conflict_do_update(
        index_elements=[COMMUNITY_DAYS.c.community_id, COMMUNITY_DAYS.c.day],
        set_={
            "member_count": func.coalesce(COMMUNITY_DAYS.c.member_count, stmt.excluded.member_count)
        },
    )
    await session.execute(stmt)


async def latest_member_count(
    session: AsyncSession, community_id: int, day: date
) -> tuple[date, int] | None:
    """The member count recorded for `day`, else the latest one recorded before it."""
    query = (
        select(CommunityDay.day, CommunityDay.member_count)
        .where(
            CommunityDay.community_id == community_id,
            CommunityDay.day <= day,
            CommunityDay.member_count.is_not(None),
        )
        .order_by(CommunityDay.day.desc())
        .limit(1)
    )
    row = (await session.execute(query)).one_or_none()
    return (row[0], int(row[1])) if row is not None else None


@dataclass(frozen=True, slots=True)
class Participation:
    """Taking part in the community's activities during a period.

    Members are counted by platform id; `participants` is everyone who voted, answered a
    quiz, entered a giveaway or asked an AMA question (each member once).
    """

    posts_delivered: int = 0  # scheduled-post runs that went out
    polls: int = 0  # polls started
    poll_voters: int = 0  # distinct members whose vote is dated in the period
    quizzes: int = 0  # quiz questions asked
    quiz_answerers: int = 0
    giveaways: int = 0  # giveaways started
    giveaway_entries: int = 0
    ama_questions: int = 0
    ama_askers: int = 0
    participants: int = 0

    @property
    def anything(self) -> bool:
        """Whether any activity ran or anyone took part."""
        return any(
            (self.posts_delivered, self.polls, self.poll_voters, self.quizzes,
             self.quiz_answerers, self.giveaways, self.giveaway_entries, self.ama_questions)
        )  # fmt: skip


async def _count(session: AsyncSession, query: object) -> int:
    return int((await session.execute(query)).scalar_one() or 0)  # type: ignore[call-overload]


async def _user_ids(session: AsyncSession, query: object) -> list[str]:
    return [str(v) for v in (await session.execute(query)).scalars()]  # type: ignore[call-overload]


async def posts_delivered(
    session: AsyncSession, community_id: int, start: datetime, end: datetime
) -> int:
    """Runs of the community's scheduled posts that went out (finished) in `[start, end)`."""
    what = literal("post:") + cast(ScheduledPost.id, String)
    query = (
        select(func.count())
        .select_from(Occurrence)
        .join(ScheduledPost, Occurrence.what == what)
        .where(
            ScheduledPost.community_id == community_id,
            Occurrence.status == "done",
            # A run is finished the day it is due, or soon after when retried.
            Occurrence.due_at >= start - timedelta(days=1),
            Occurrence.due_at < end,
            Occurrence.finished_at >= start,
            Occurrence.finished_at < end,
        )
    )
    return await _count(session, query)


async def participation(
    session: AsyncSession, community_id: int, start: datetime, end: datetime
) -> Participation:
    """What ran and who took part in `[start, end)`, from the feature tables."""
    voters = await _user_ids(
        session,
        select(PollVote.user_id)
        .distinct()
        .join(Poll, Poll.id == PollVote.poll_id)
        .where(Poll.community_id == community_id, PollVote.voted_at >= start,
               PollVote.voted_at < end),
    )  # fmt: skip
    answerers = await _user_ids(
        session,
        select(QuizAnswer.user_id)
        .distinct()
        .join(Quiz, Quiz.id == QuizAnswer.quiz_id)
        .where(Quiz.community_id == community_id, QuizAnswer.answered_at >= start,
               QuizAnswer.answered_at < end),
    )  # fmt: skip
    entrants = await _user_ids(
        session,
        select(GiveawayEntry.user_id)
        .join(Giveaway, Giveaway.id == GiveawayEntry.giveaway_id)
        .where(Giveaway.community_id == community_id, GiveawayEntry.entered_at >= start,
               GiveawayEntry.entered_at < end),
    )  # fmt: skip
    askers = await _user_ids(
        session,
        select(QaQuestion.asker_id).where(
            QaQuestion.community_id == community_id,
            QaQuestion.asked_at >= start,
            QaQuestion.asked_at < end,
        ),
    )

    async def started(model: type[Poll] | type[Quiz] | type[Giveaway]) -> int:
        return await _count(
            session,
            select(func.count()).where(
                model.community_id == community_id,
                model.created_at >= start,
                model.created_at < end,
            ),
        )

    return Participation(
        posts_delivered=await posts_delivered(session, community_id, start, end),
        polls=await started(Poll),
        poll_voters=len(voters),
        quizzes=await started(Quiz),
        quiz_answerers=len(answerers),
        giveaways=await started(Giveaway),
        giveaway_entries=len(entrants),
        ama_questions=len(askers),
        ama_askers=len(set(askers)),
        participants=len({*voters, *answerers, *entrants, *askers}),
    )


# --- checks: recounts from raw events, never a report path ------------------------------


async def recount_hours_from_events(
    session: AsyncSession, community_id: int, timezone: str
) -> dict[tuple[date, int], tuple[int, int]]:
    """(local day, hour) -> (messages, reactions) recounted from raw events: a check of the
    hourly rollup (tests, the demo), never used by reports."""
    from storage.activity import ActivityKind
    from storage.models import ActivityEvent

    tz = ZoneInfo(timezone)
    query = select(ActivityEvent.kind, ActivityEvent.occurred_at).where(
        ActivityEvent.community_id == community_id,
        ActivityEvent.kind.in_([int(ActivityKind.MESSAGE), int(ActivityKind.REACTION)]),
    )
    counts: dict[tuple[date, int], list[int]] = {}
    for kind, at in (await session.execute(query)).all():
        local = at.astimezone(tz)
        tally = counts.setdefault((local.date(), local.hour), [0, 0])
        tally[0 if kind == ActivityKind.MESSAGE else 1] += 1
    return {key: (m, r) for key, (m, r) in counts.items()}


async def stored_hours(
    session: AsyncSession, community_id: int
) -> dict[tuple[date, int], tuple[int, int]]:
    """Every `community_hours` row of a community that counted anything."""
    query = select(
        CommunityHour.day, CommunityHour.hour, CommunityHour.messages, CommunityHour.reactions
    ).where(CommunityHour.community_id == community_id)
    return {
        (day, hour): (m, r) for day, hour, m, r in (await session.execute(query)).all() if m or r
    }
