"""When a community's daily summary is due, and its timer.

Each community chooses a local time (`/settings summary 09:00`, the default) or `off`. On
local day P the summary of day P-1 is due at that time, in the community's zone:

- A time that occurs twice on a day (the clocks go back) is due at its first occurrence
  only, so it runs once.
- A time the clocks skip (they go forward) is due when the clocks jump past it: 02:30 on a
  spring-forward night in New York runs at 03:30 EDT, the same instant 02:30 EST would be.

One timer per community (`summary:<community id>`) waits for the next due time; the firing
and the sweep live in `handlers.analytics.delivery`. This module only reads settings and
computes times, so `/settings` can re-arm a timer without importing the delivery.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.service import SchedulerService
from storage.activity import zone
from storage.models import Community

SUMMARY_TIME = "summary_time"  # key in `communities.settings`: "HH:MM" or "off"
DEFAULT_TIME = time(9, 0)
OFF = "off"
FIRE_JOB = "summary.fire"
_CLOCK = re.compile(r"([01]?\d|2[0-3])(?::([0-5]\d))?")


def parse_clock(text: str) -> time | None:
    """`09:00`, `9:30` or `9` as a local time of day; None when it isn't one."""
    match = _CLOCK.fullmatch(text.strip().replace("：", ":"))
    if match is None:
        return None
    return time(int(match.group(1)), int(match.group(2) or 0))


def summary_time(settings: Mapping[str, Any] | None) -> time | None:
    """The community's summary time, or None when a manager turned the summary off."""
    chosen = (settings or {}).get(SUMMARY_TIME)
    if chosen == OFF:
        return None
    if isinstance(chosen, str):
        parsed = parse_clock(chosen)
        if parsed is not None:
            return parsed
    return DEFAULT_TIME


def due_on(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant the clock in `tz` shows `at` on `day` (its first occurrence; for a
    skipped time, the instant the clocks jumped past it)."""
    local = datetime.combine(day, at, tzinfo=tz)  # fold=0: the first of a repeated time
    return local.astimezone(UTC)


def reported_day(posting_day: date) -> date:
    """The day a summary posted on `posting_day` reports: the day before."""
    return posting_day - timedelta(days=1)


def what(community_id: int, day: date) -> str:
    """The occurrence name of a community's summary of `day` (once per community and day)."""
    return f"summary:{community_id}:{day.isoformat()}"


def timer_key(community_id: int) -> str:
    return f"summary:{community_id}"


def last_due(now: datetime, at: time, tz: ZoneInfo) -> tuple[date, datetime]:
    """The latest (posting day, due instant) at or before `now`."""
    today = now.astimezone(tz).date()
    for day in (today, today - timedelta(days=1), today - timedelta(days=2)):
        due = due_on(day, at, tz)
        if due <= now:
            return day, due
    raise AssertionError("a due time within two days always exists")  # pragma: no cover


def next_due(now: datetime, at: time, tz: ZoneInfo) -> tuple[date, datetime]:
    """The first (posting day, due instant) strictly after `now`."""
    today = now.astimezone(tz).date()
    for day in (today - timedelta(days=1), today, today + timedelta(days=1)):
        due = due_on(day, at, tz)
        if due > now:
            return day, due
    return today + timedelta(days=2), due_on(today + timedelta(days=2), at, tz)


def arm(scheduler: SchedulerService | None, community: Community, now: datetime) -> None:
    """(Re)set the community's timer for its next summary, or cancel it when it is off
    (or the bot was removed from the community)."""
    if scheduler is None or not scheduler.running:
        return
    at = summary_time(community.settings)
    if at is None or community.removed_at is not None:
        scheduler.cancel(timer_key(community.id))
        return
    _, due = next_due(now, at, zone(community.timezone))
    scheduler.schedule(
        timer_key(community.id), FIRE_JOB, due, community_id=community.id, due=due.isoformat()
    )
