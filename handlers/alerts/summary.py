"""Alert lines for the daily summary (`handlers.analytics` calls `summary_lines`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.render import Renderer
from storage import alerts as store
from storage.activity import zone
from storage.models import Community

# A summary lists this many alerts; `/watch` shows the latest ones.
SUMMARY_ALERTS = 5
# Counted beyond the shown ones, for "…and N more" (a day with more is a day to look at).
COUNTED = 100


@cache
def _renderer() -> Renderer:
    return Renderer()


async def summary_lines(
    session: AsyncSession, community: Community, day: date, locale: str
) -> list[str]:
    """The "anomalies" of the daily summary of local day `day`, in `locale`.

    One already-rendered line (neutral Markdown subset) per alert that had hits that day,
    earliest first, at most `SUMMARY_ALERTS`, then "…and N more" if there were more: what
    it was (a watched word, negative messages, an activity surge or drop), how often, and
    when, in the community's time zone. Never any message text. An empty list when there
    were no alerts, so the caller can say so in its own words. Reads only; the caller's
    session.
    """
    tz = zone(community.timezone)
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    rows = await store.between(session, community.id, start, end, limit=COUNTED)
    if not rows:
        return []
    text = _renderer().render(
        "alerts/summary.j2",
        locale,
        alerts=rows[:SUMMARY_ALERTS],
        more=len(rows) - SUMMARY_ALERTS if len(rows) > SUMMARY_ALERTS else 0,
        tz=tz,
    )
    return [line for line in text.splitlines() if line.strip()]
