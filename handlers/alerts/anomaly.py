"""Sudden drops and surges of activity, against the weekly baseline.

Every 15 minutes, for every community, the last complete local hour's messages (from the
hourly rollup, `community_hours`) are compared with the same hour's average over the 7 days
before. A **surge** is at least `SURGE_MIN_MESSAGES` messages and at least `SURGE_FACTOR`
times the average; a **drop** is at most `DROP_SHARE` of an average of at least
`DROP_MIN_BASELINE` messages (quiet hours of small communities are not news).

A community is judged only when the baseline is real: the bot knew it a full week before
that hour, and its hourly counts reach back to the first baseline day (a community whose
hourly history began a few days ago would otherwise look like it surged).

Each hour is judged once per alert even though the check runs four times an hour (the
alert row remembers the hour it last counted), and a run of unusual hours is one alert
whose count grows, with a follow-up at most once per cooldown (`storage.alerts`).
Cost per run: one query of the communities, then two small indexed queries per time zone.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from handlers.alerts.notify import COOLDOWNS, AlertNotice, deliver, managers_chat, notice_of
from handlers.alerts.state import ACTIVITY_SUBJECT, DROP, SURGE
from handlers.core.context import Services
from storage import alerts as store
from storage.activity import zone
from storage.models import Community

log = logging.getLogger(__name__)

SURGE_FACTOR = 3.0
SURGE_MIN_MESSAGES = 30
DROP_SHARE = 0.25
DROP_MIN_BASELINE = 20.0
BASELINE_DAYS = 7


@dataclass(frozen=True, slots=True)
class HourVerdict:
    kind: str  # SURGE or DROP
    messages: int
    baseline: float


def judge(messages: int, baseline: float) -> HourVerdict | None:
    """Whether an hour with `messages` against an average of `baseline` is unusual."""
    if messages >= SURGE_MIN_MESSAGES and messages >= SURGE_FACTOR * baseline:
        return HourVerdict(SURGE, messages, baseline)
    if baseline >= DROP_MIN_BASELINE and messages <= DROP_SHARE * baseline:
        return HourVerdict(DROP, messages, baseline)
    return None


def last_complete_hour(now: datetime, tz: ZoneInfo) -> tuple[date, int, datetime]:
    """The local (day, hour) that ended last before `now`, and when it started (UTC)."""
    start = (now.astimezone(UTC) - timedelta(hours=1)).astimezone(tz)
    start = start.replace(minute=0, second=0, microsecond=0)
    return start.date(), start.hour, start.astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return zone(name)
    except Exception:  # a hand-edited time zone: judge its hours in UTC rather than not at all
        return zone("UTC")


async def check_activity(services: Services) -> int:
    """Judge every community's last complete hour; returns how many alerts were sent."""
    now = services.clock.now()
    async with services.db.session() as session:
        communities = await store.live_communities(session)
    by_zone: dict[str, list[Community]] = defaultdict(list)
    for community in communities:
        by_zone[community.timezone].append(community)
    sent = 0
    for name, group in by_zone.items():
        try:
            sent += await _check_zone(services, _zone(name), group, now)
        except Exception:
            log.exception("activity check failed for communities in %s", name)
    return sent


async def _check_zone(
    services: Services, tz: ZoneInfo, communities: list[Community], now: datetime
) -> int:
    day, hour, started = last_complete_hour(now, tz)
    first_day = day - timedelta(days=BASELINE_DAYS)
    known_since = datetime.combine(first_day, time(0), tzinfo=tz).astimezone(UTC)
    eligible = [c for c in communities if c.created_at <= known_since]
    if not eligible:
        return 0
    baseline_days = [day - timedelta(days=n) for n in range(1, BASELINE_DAYS + 1)]
    ids = [c.id for c in eligible]
    outgoing: list[tuple[Community, list[AlertNotice]]] = []
    async with services.db.session() as session:
        counts = await store.hour_messages(session, ids, [day, *baseline_days], hour)
        covered = await store.hours_recorded_on(session, ids, first_day)
        for community in eligible:
            if community.id not in covered:
                continue
            messages = counts.get((community.id, day), 0)
            baseline = sum(counts.get((community.id, d), 0) for d in baseline_days)
            verdict = judge(messages, baseline / BASELINE_DAYS)
            if verdict is None:
                continue
            recorded = await store.record(
                session,
                community.id,
                verdict.kind,
                ACTIVITY_SUBJECT,
                now=now,
                count=1,
                detail={
                    "day": day.isoformat(),
                    "hour": hour,
                    "started": started.isoformat(),
                    "messages": verdict.messages,
                    "baseline": round(verdict.baseline, 1),
                },
                cooldown=COOLDOWNS[verdict.kind],
                notify=managers_chat(community) is not None,
                once_key=f"{day.isoformat()}T{hour:02}",
            )
            if recorded is not None and recorded.notice is not None:
                outgoing.append((community, [notice_of(recorded)]))
    sent = 0
    for community, notices in outgoing:
        sent += await deliver(services, community, notices)
    return sent
