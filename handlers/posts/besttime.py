"""Best time to post: an hour-of-week heat map of a community's measured activity.

`/post besttime` reads activity per hour over the last 28 days and folds it onto the
community's local week: 7 weekdays × 24 local hours. Two sources give the same fold:
`load_heatmap` reads the hourly rollup (`community_hours`, local days and hours, messages
only: the rollup keeps no distinct members per hour, so its slots rank by messages), and
`build_heatmap` over `storage.metrics.hourly_activity` reads raw events (messages and active
members per UTC hour). Each cell holds averages per occurrence of that local hour in the
window ("per week"), so an hour that occurred five times (a DST fall-back doubles one local
hour) is not favoured over one that occurred four times.

Rules:

- Only whole UTC hours count: the window runs from `since` rounded up to the hour to `until`
  rounded down. A community younger than the window (pass `first_seen`, when the bot first
  saw it) counts from that hour, so two weeks of data are averaged over two weeks, not four.
- Each UTC hour maps to exactly one local (weekday, hour): the local time at which it starts.
  This is exact across DST changes; in zones with a non-whole-hour offset (India, +05:30) an
  hour is shown at the local hour it starts in.
- Slots rank by active members, then messages; suggestions are never adjacent hours (also
  across midnight), so three suggestions are three different moments.
- With fewer than 50 messages or fewer than 3 active local days, `enough_data` is False and
  the reply says so instead of guessing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from storage.metrics import HourBucket, LocalHour, local_hours

HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
MIN_MESSAGES = 50
MIN_ACTIVE_DAYS = 3
EVERY_DAY = -1  # `Slot.weekday` of a slot that stands for the same hour on every day
BLOCKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True, slots=True)
class Slot:
    """One local hour: averages per occurrence in the window (per week; per day for EVERY_DAY)."""

    weekday: int  # 0 = Monday … 6 = Sunday, or EVERY_DAY
    hour: int  # local
    messages: float
    members: float
    weeks: int  # how many times this hour occurred in the window: the data behind it


def _rank(slot: Slot) -> tuple[float, float, int, int]:
    """Sort key: most members, then most messages, then earliest in the week."""
    return (-slot.members, -slot.messages, slot.weekday, slot.hour)


def _adjacent(a: Slot, b: Slot) -> bool:
    """Same or neighbouring hour of the week (Sunday 23:00 neighbours Monday 00:00)."""
    distance = abs((a.weekday * 24 + a.hour) - (b.weekday * 24 + b.hour)) % (7 * 24)
    return min(distance, 7 * 24 - distance) <= 1


@dataclass(frozen=True, slots=True)
class HeatMap:
    """Activity per local weekday and hour, averaged per week, with the evidence behind it."""

    cells: tuple[tuple[Slot, ...], ...]  # [weekday][hour]
    weeks: float  # how many weeks of data the window really held
    total_messages: int
    active_days: int = 0  # local days with at least one message
    # False when built from the hourly rollup: slots then hold no member counts (zeros).
    counts_members: bool = True

    @property
    def enough_data(self) -> bool:
        """Whether there is enough activity to suggest anything."""
        return self.total_messages >= MIN_MESSAGES and self.active_days >= MIN_ACTIVE_DAYS

    def _active(self) -> list[Slot]:
        return [slot for day in self.cells for slot in day if slot.messages > 0]

    def best(self, count: int = 3) -> list[Slot]:
        """Up to `count` best slots, best first, no two in the same or adjacent hours."""
        chosen: list[Slot] = []
        for slot in sorted(self._active(), key=_rank):
            if len(chosen) >= count:
                break
            if not any(_adjacent(slot, other) for other in chosen):
                chosen.append(slot)
        return chosen

    def best_daily_hour(self) -> Slot | None:
        """The local hour that is best over all days (for "every day at HH:00"), or None."""
        daily: list[Slot] = []
        for hour in range(24):
            column = [self.cells[day][hour] for day in range(7)]
            occurrences = sum(slot.weeks for slot in column)
            if not occurrences or not any(slot.messages for slot in column):
                continue
            # Cells hold per-occurrence averages; weigh them back by their occurrences.
            messages = sum(slot.messages * slot.weeks for slot in column) / occurrences
            members = sum(slot.members * slot.weeks for slot in column) / occurrences
            weeks = min(slot.weeks for slot in column)
            daily.append(Slot(EVERY_DAY, hour, messages, members, weeks))
        return min(daily, key=_rank, default=None)

    def peak_by_day(self) -> list[Slot]:
        """The best hour of each weekday that had any messages, Monday first."""
        peaks = []
        for day in self.cells:
            active = [slot for slot in day if slot.messages > 0]
            if active:
                peaks.append(min(active, key=_rank))
        return peaks

    def strip(self) -> list[str]:
        """7 lines (Monday first) of 24 blocks ▁…█ scaled to the busiest hour; space for none.

        Scaled by messages per week, for a monospaced block in chat.
        """
        top = max((slot.messages for day in self.cells for slot in day), default=0.0)
        lines = []
        for day in self.cells:
            chars = []
            for slot in day:
                if slot.messages <= 0 or top <= 0:
                    chars.append(" ")
                else:
                    level = min(len(BLOCKS), max(1, math.ceil(slot.messages / top * len(BLOCKS))))
                    chars.append(BLOCKS[level - 1])
            lines.append("".join(chars))
        return lines


def _floor_hour(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(at: datetime) -> datetime:
    floor = _floor_hour(at)
    return floor if floor == at else floor + HOUR


def build_heatmap(
    buckets: Iterable[HourBucket],
    tz: ZoneInfo,
    *,
    since: datetime,
    until: datetime,
    first_seen: datetime | None = None,
) -> HeatMap:
    """Fold hourly UTC buckets onto the local week of `tz`, averaged per occurrence.

    `first_seen` (when the bot first saw the community) shortens the window of a community
    younger than it. Buckets outside the window's whole hours are ignored.
    """
    start, end = _ceil_hour(since), _floor_hour(until)
    if first_seen is not None:
        # Not the first bucket: a quiet start of the window is data (zeros), not absence.
        start = max(start, _floor_hour(first_seen))
    kept = [b for b in buckets if start <= _floor_hour(b.hour) < end]
    messages = [[0] * 24 for _ in range(7)]
    members = [[0] * 24 for _ in range(7)]
    occurrences = [[0] * 24 for _ in range(7)]
    hour = start
    while hour < end:
        local = hour.astimezone(tz)
        occurrences[local.weekday()][local.hour] += 1
        hour += HOUR
    days: set[date] = set()
    total = 0
    for bucket in kept:
        local = bucket.hour.astimezone(tz)
        messages[local.weekday()][local.hour] += bucket.messages
        members[local.weekday()][local.hour] += bucket.members
        total += bucket.messages
        if bucket.messages:
            days.add(local.date())
    cells = tuple(
        tuple(
            Slot(
                day,
                h,
                messages[day][h] / occurrences[day][h] if occurrences[day][h] else 0.0,
                members[day][h] / occurrences[day][h] if occurrences[day][h] else 0.0,
                occurrences[day][h],
            )
            for h in range(24)
        )
        for day in range(7)
    )
    weeks = max(end - start, timedelta(0)) / WEEK
    return HeatMap(cells, weeks, total, len(days))


def rollup_buckets(rows: Iterable[LocalHour], tz: ZoneInfo) -> list[HourBucket]:
    """Hourly rollup rows (local day and hour) as buckets at the UTC instant each local hour
    starts, without member counts.

    A local hour a DST change repeats is one rollup row: its bucket stands at the first of
    the two, and `build_heatmap` still averages it over both occurrences, as it would the
    two raw buckets. In a zone with a non-whole-hour offset a bucket starts at :30 UTC and
    folds onto its own local hour.
    """
    buckets = []
    for row in rows:
        start = datetime(row.day.year, row.day.month, row.day.day, row.hour, tzinfo=tz)
        buckets.append(HourBucket(start.astimezone(UTC), row.messages, 0))
    return buckets


async def load_heatmap(
    session: AsyncSession,
    community_id: int,
    tz: ZoneInfo,
    *,
    since: datetime,
    until: datetime,
    first_seen: datetime | None = None,
) -> HeatMap:
    """The heat map of `[since, until)` from the hourly rollup (never raw events).

    Slots rank by messages (`counts_members` is False): the rollup counts messages, not
    distinct members, per hour.
    """
    rows = await local_hours(
        session,
        community_id,
        since.astimezone(tz).date(),
        until.astimezone(tz).date(),
    )
    heat = build_heatmap(
        rollup_buckets(rows, tz), tz, since=since, until=until, first_seen=first_seen
    )
    return replace(heat, counts_members=False)
