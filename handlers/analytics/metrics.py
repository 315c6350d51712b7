"""The metrics API: one community's figures over a period of local days, from the rollups.

One entry point, `community_metrics(session, community, first, last)`, serves the daily
summary (a one-day period), the weekly digest (seven days) and exports (any period); the
helpers `daily_metrics` and `weekly_metrics` name the usual periods, and `daily_series` gives
the per-day points of a chart. Nothing here scans raw activity events (`storage.analytics`).

Definitions (days are local to the community's time zone, as the activity writer counted):

- **messages, replies, reactions, joins, leaves**: sums of `community_days` over the period;
  net growth = joins - leaves; interactions = replies + reactions.
- **active members**: distinct members who sent at least one message in the period.
- **DAU, WAU, MAU**: distinct members active on the period's last day, in the 7 days and in
  the 30 days ending with it. Stickiness = DAU / MAU (None when MAU is 0).
- **member count**: the platform's count recorded for the last day (`community_days
  .member_count`, written when the day is first summarised), else a live count the caller
  passes (yesterday, today), else the latest one recorded before; None when never known.
  Engagement rate = active members / member count.
- **participation**: scheduled-post runs delivered, polls started and distinct voters, quiz
  questions and distinct answerers, giveaways started and entries, AMA questions and
  askers, all dated in the period (`storage.analytics.Participation`).
- **retention Dn** (n = 1, 7, 30): of the members whose latest join fell on a day j with
  j + n in the period, the share active on day j + n (pooled over the period's days). None
  when that cohort is empty.
- **top contributors**: most messages in the period; opted-out members and bots left out.
- **hours**: messages per local hour of day, summed over the period.
- **trends**: each headline number against the previous period of the same length and the
  average of the `BASELINE` periods before (7 days for a day, 4 weeks for a week).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from storage import analytics as store
from storage.activity import zone
from storage.analytics import Contributor, DayRow, Participation
from storage.models import Community

DAY = timedelta(days=1)
TOP_CONTRIBUTORS = 5
RETENTION_DAYS = (1, 7, 30)
# How many earlier periods the average of a trend spans, by period length in days.
BASELINE = {1: 7, 7: 4}
DEFAULT_BASELINE = 4
SERIES_DAYS = 14

__all__ = [
    "Cohort",
    "CommunityMetrics",
    "Contributor",
    "Figures",
    "MemberCount",
    "Participation",
    "Period",
    "Retention",
    "SeriesPoint",
    "Trend",
    "Trends",
    "community_metrics",
    "daily_metrics",
    "daily_series",
    "weekly_metrics",
]


@dataclass(frozen=True, slots=True)
class Period:
    """Local days `first` to `last`, both included."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"period ends ({self.last}) before it starts ({self.first})")

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def earlier(self, n: int = 1) -> Period:
        """The period of the same length `n` periods before this one."""
        shift = self.days * n * DAY
        return Period(self.first - shift, self.last - shift)

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """`[start, end)` in UTC."""
        return store.local_bounds(self.first, self.last, tz)


@dataclass(frozen=True, slots=True)
class Figures:
    """The headline counts of one period."""

    messages: int = 0
    active_members: int = 0
    joins: int = 0
    leaves: int = 0
    replies: int = 0
    reactions: int = 0

    @property
    def net_growth(self) -> int:
        return self.joins - self.leaves

    @property
    def interactions(self) -> int:
        return self.replies + self.reactions


@dataclass(frozen=True, slots=True)
class Trend:
    """A headline number, the previous period's and the average of the baseline periods."""

    value: int
    previous: int
    average: float

    @property
    def delta(self) -> int:
        """Change against the previous period."""
        return self.value - self.previous

    @property
    def change(self) -> float | None:
        """Relative change against the previous period; None when it was zero."""
        return self.delta / abs(self.previous) if self.previous else None

    @property
    def against_average(self) -> float | None:
        """Relative change against the baseline average; None when that was zero."""
        return (self.value - self.average) / abs(self.average) if self.average else None

    @property
    def direction(self) -> int:
        """1 up, -1 down, 0 unchanged against the previous period."""
        return (self.delta > 0) - (self.delta < 0)

    @property
    def average_direction(self) -> int:
        """1 above, -1 below, 0 at the baseline average."""
        return (self.value > self.average) - (self.value < self.average)


@dataclass(frozen=True, slots=True)
class Trends:
    """The trend of each headline number."""

    messages: Trend
    active_members: Trend
    joins: Trend
    leaves: Trend
    net_growth: Trend
    interactions: Trend


@dataclass(frozen=True, slots=True)
class MemberCount:
    """How many members the community has, and where the number comes from.

    `source`: "platform" (recorded for that day), "live" (asked now), "earlier" (recorded
    on `as_of`, before the day) or None (never known).
    """

    value: int | None = None
    as_of: date | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Cohort:
    """Joiners whose n-th day falls in the period, and how many were active on it."""

    days: int  # n
    size: int
    retained: int

    @property
    def rate(self) -> float | None:
        """retained / size; None when nobody joined."""
        return self.retained / self.size if self.size else None


@dataclass(frozen=True, slots=True)
class Retention:
    """D1, D7 and D30 retention of the joiners (see the module's definitions)."""

    d1: Cohort
    d7: Cohort
    d30: Cohort

    @property
    def cohorts(self) -> tuple[Cohort, Cohort, Cohort]:
        return (self.d1, self.d7, self.d30)


@dataclass(frozen=True, slots=True)
class CommunityMetrics:
    """Every figure of one community over one period (see the module's definitions)."""

    community_id: int
    period: Period
    partial: bool  # the period has not ended yet (`/summary today`)
    figures: Figures
    trends: Trends
    baseline_periods: int
    member_count: MemberCount
    dau: int
    wau: int
    mau: int
    participation: Participation
    retention: Retention
    top_contributors: tuple[Contributor, ...]
    hours: tuple[int, ...]  # messages per local hour of day, 24 values

    @property
    def messages(self) -> int:
        return self.figures.messages

    @property
    def active_members(self) -> int:
        return self.figures.active_members

    @property
    def joins(self) -> int:
        return self.figures.joins

    @property
    def leaves(self) -> int:
        return self.figures.leaves

    @property
    def net_growth(self) -> int:
        return self.figures.net_growth

    @property
    def replies(self) -> int:
        return self.figures.replies

    @property
    def reactions(self) -> int:
        return self.figures.reactions

    @property
    def interactions(self) -> int:
        return self.figures.interactions

    @property
    def stickiness(self) -> float | None:
        """DAU / MAU, or None without monthly activity."""
        return self.dau / self.mau if self.mau else None

    @property
    def engagement_rate(self) -> float | None:
        """Active members / member count, or None when the count is unknown (or zero)."""
        count = self.member_count.value
        return self.active_members / count if count else None

    @property
    def peak_hour(self) -> int | None:
        """The local hour with the most messages (the earliest of equals); None if silent."""
        top = max(self.hours, default=0)
        return self.hours.index(top) if top else None

    @property
    def quiet(self) -> bool:
        """Nothing at all happened: no message, reaction, join, leave or activity."""
        f = self.figures
        return not (f.messages or f.reactions or f.joins or f.leaves or self.participation.anything)


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One day of a chart's series."""

    day: date
    messages: int
    active_members: int


# --- computing ----------------------------------------------------------------------------


async def _figures(
    session: AsyncSession, community_id: int, periods: list[Period]
) -> list[Figures]:
    """Headline counts of several periods: one rollup read, plus a distinct count per
    period longer than a day (a day's active members are in its rollup row)."""
    first = min(p.first for p in periods)
    last = max(p.last for p in periods)
    rows = await store.day_rows(session, community_id, first, last)
    result = []
    for period in periods:
        days = [rows.get(period.first + i * DAY, DayRow(period.first)) for i in range(period.days)]
        if period.days == 1:
            active = days[0].active_members
        else:
            active = await store.distinct_active(session, community_id, period.first, period.last)
        result.append(
            Figures(
                messages=sum(d.messages for d in days),
                active_members=active,
                joins=sum(d.joins for d in days),
                leaves=sum(d.leaves for d in days),
                replies=sum(d.replies for d in days),
                reactions=sum(d.reactions for d in days),
            )
        )
    return result


def _trend(name: str, now: Figures, previous: Figures, baseline: list[Figures]) -> Trend:
    value = getattr(now, name)
    average = sum(getattr(f, name) for f in baseline) / len(baseline) if baseline else 0.0
    return Trend(value, getattr(previous, name), average)


def _trends(now: Figures, earlier: list[Figures]) -> Trends:
    names = ("messages", "active_members", "joins", "leaves", "net_growth", "interactions")
    return Trends(*(_trend(name, now, earlier[0], earlier) for name in names))


async def _member_count(
    session: AsyncSession, community_id: int, day: date, live: int | None
) -> MemberCount:
    recorded = await store.latest_member_count(session, community_id, day)
    if recorded is not None and recorded[0] == day:
        return MemberCount(recorded[1], day, "platform")
    if live is not None:
        return MemberCount(live, day, "live")
    if recorded is not None:
        return MemberCount(recorded[1], recorded[0], "earlier")
    return MemberCount()


async def _retention(
    session: AsyncSession, community_id: int, period: Period, tz: ZoneInfo
) -> Retention:
    """Pooled Dn retention: one read of the joiners of every cohort, one of their activity."""
    longest = max(RETENTION_DAYS)
    start, end = store.local_bounds(
        period.first - longest * DAY, period.last - min(RETENTION_DAYS) * DAY, tz
    )
    joined = {
        member: at.astimezone(tz).date()
        for member, at in await store.joiners(session, community_id, start, end)
    }
    active = await store.active_member_days(
        session, community_id, joined, period.first, period.last
    )
    cohorts = []
    for n in RETENTION_DAYS:
        targets = [
            (member, day + n * DAY)
            for member, day in joined.items()
            if period.first <= day + n * DAY <= period.last
        ]
        retained = sum(1 for pair in targets if pair in active)
        cohorts.append(Cohort(n, len(targets), retained))
    return Retention(*cohorts)


async def community_metrics(
    session: AsyncSession,
    community: Community,
    first: date,
    last: date | None = None,
    *,
    now: datetime | None = None,
    live_member_count: int | None = None,
    top: int = TOP_CONTRIBUTORS,
) -> CommunityMetrics:
    """Every figure of `community` over local days `first`..`last` (one day by default).

    `now` marks a period that has not ended as partial; `live_member_count` is the platform's
    count right now, used when none was recorded for the last day.
    """
    period = Period(first, last or first)
    tz = zone(community.timezone)
    cid = community.id
    baseline = BASELINE.get(period.days, DEFAULT_BASELINE)
    figures, *earlier = await _figures(
        session, cid, [period, *(period.earlier(n) for n in range(1, baseline + 1))]
    )
    start, end = period.bounds(tz)
    day = period.last
    dau, wau, mau = await store.active_in_windows(session, cid, day, (1, 7, 30))
    return CommunityMetrics(
        community_id=cid,
        period=period,
        partial=now is not None and now < end,
        figures=figures,
        trends=_trends(figures, earlier),
        baseline_periods=baseline,
        member_count=await _member_count(session, cid, day, live_member_count),
        dau=dau,
        wau=wau,
        mau=mau,
        participation=await store.participation(session, cid, start, end),
        retention=await _retention(session, cid, period, tz),
        top_contributors=tuple(
            await store.top_contributors(session, cid, period.first, period.last, top)
        ),
        hours=(await store.hour_totals(session, cid, period.first, period.last)).messages,
    )


async def daily_metrics(
    session: AsyncSession,
    community: Community,
    day: date,
    *,
    now: datetime | None = None,
    live_member_count: int | None = None,
) -> CommunityMetrics:
    """One local day's figures, against the day before and the 7-day average."""
    return await community_metrics(
        session, community, day, now=now, live_member_count=live_member_count
    )


async def weekly_metrics(
    session: AsyncSession,
    community: Community,
    last_day: date,
    *,
    now: datetime | None = None,
    live_member_count: int | None = None,
) -> CommunityMetrics:
    """The 7 local days ending with `last_day`, against the week before and a 4-week average."""
    return await community_metrics(
        session,
        community,
        last_day - 6 * DAY,
        last_day,
        now=now,
        live_member_count=live_member_count,
    )


async def daily_series(
    session: AsyncSession, community_id: int, last: date, days: int = SERIES_DAYS
) -> tuple[SeriesPoint, ...]:
    """Messages and active members of each of the `days` local days ending with `last`,
    oldest first (days without activity are zeros)."""
    first = last - (days - 1) * DAY
    rows = await store.day_rows(session, community_id, first, last)
    points = []
    for i in range(days):
        row = rows.get(first + i * DAY, DayRow(first + i * DAY))
        points.append(SeriesPoint(first + i * DAY, row.messages, row.active_members))
    return tuple(points)
