"""The summary message: gathered in a unit of work, then rendered (with its chart) outside it.

`gather` reads everything a daily summary or weekly digest shows, in the caller's session:
the metrics (`handlers.analytics.metrics`), the 14-day series for the chart, AMA questions
still unanswered, and the lines other features contribute. `render` turns that into one
message from `analytics/summary.j2`, with the chart drawn on a worker thread where the
platform shows images (text sparklines elsewhere, or when drawing fails).

Other features add lines without this module knowing them: if `handlers.segments` or
`handlers.alerts` can be imported and has `summary_lines(session, community, day, locale)`
(sync or async, returning lines of neutral Markdown already in `locale`; `day` is the
reported day, or the last day of a weekly digest), its lines fill the template's `segments`
or `anomalies` block; an installed alerts feature with no lines is "no alerts". A failing
contributor is logged and left out.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.analytics import links
from handlers.analytics.metrics import (
    CommunityMetrics,
    SeriesPoint,
    daily_metrics,
    daily_series,
    weekly_metrics,
)
from handlers.core.context import Services
from handlers.core.events import ChatKind, ChatRef, Platform
from handlers.core.gateway import ChatGateway
from handlers.core.markup import Safe, to_plain
from handlers.core.outgoing import Image, OutgoingMessage
from storage import qa as qa_store
from storage.activity import zone
from storage.models import Community

log = logging.getLogger(__name__)

UNANSWERED_SHOWN = 5
BLOCKS = "▁▂▃▄▅▆▇█"
ZERO = "·"
# Where other features' summary lines come from (template block -> module).
CONTRIBUTORS = {"segments": "handlers.segments", "anomalies": "handlers.alerts"}


class Kind(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


@dataclass(frozen=True, slots=True)
class SummaryData:
    """Everything one summary shows, read in one unit of work."""

    kind: Kind
    metrics: CommunityMetrics
    series: tuple[SeriesPoint, ...]
    unanswered: tuple[qa_store.Unanswered, ...]
    # Lines from other features; None when the feature isn't installed (or failed).
    segments: tuple[Safe, ...] | None = None
    anomalies: tuple[Safe, ...] | None = None
    # Both sides summed when the community is linked with one on another platform.
    combined: links.Combined | None = None


def main_chat(community: Community) -> ChatRef:
    """The community's own chat: on Telegram (and the console) the group is the community.
    On Discord the id is the server's, which only member counts may use."""
    return ChatRef(
        Platform(community.platform),
        community.external_id,
        community.external_id,
        community.title,
        ChatKind.GROUP,
        community.title,
    )


async def live_member_count(
    gateway: ChatGateway | None, community: Community, day: date, *, today: date
) -> int | None:
    """The platform's member count right now, asked only for a summary of yesterday or
    today (for older days the current count would be wrong); None when unknown."""
    if gateway is None or day not in (today, today - timedelta(days=1)):
        return None
    try:
        return await gateway.member_count(main_chat(community))
    except Exception:
        log.warning("member count of community %s unavailable", community.id, exc_info=True)
        return None


def records_member_count(day: date, today: date) -> bool:
    """Whether a summary of `day` records the live member count for it: only for the day
    that just ended (the first summary of a day keeps its count)."""
    return day == today - timedelta(days=1)


async def _contributed(
    module_name: str, session: AsyncSession, community: Community, day: date
) -> tuple[Safe, ...] | None:
    """Lines from another feature's `summary_lines` (possibly none), or None when that
    feature isn't installed or failed."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            return None  # the feature isn't there (yet)
        log.exception("%s could not be imported for the summary", module_name)
        return None
    provider = getattr(module, "summary_lines", None)
    if provider is None:
        return None
    try:
        lines = provider(session, community, day, community.locale)
        if inspect.isawaitable(lines):
            lines = await lines
        return tuple(Safe(str(line)) for line in lines or () if str(line).strip())
    except Exception:
        log.exception("%s.summary_lines failed; the summary goes on without it", module_name)
        return None


async def gather(
    session: AsyncSession,
    community: Community,
    *,
    kind: Kind,
    day: date,
    now: datetime,
    live_member_count: int | None = None,
) -> SummaryData:
    """Read a summary: `day` is the reported day, or the last day of a weekly digest."""
    if kind is Kind.WEEKLY:
        metrics = await weekly_metrics(
            session, community, day, now=now, live_member_count=live_member_count
        )
    else:
        metrics = await daily_metrics(
            session, community, day, now=now, live_member_count=live_member_count
        )
    series = await daily_series(session, community.id, day)
    unanswered = await qa_store.unanswered(session, community.id, UNANSWERED_SHOWN)
    extras = {
        block: await _contributed(module, session, community, day)
        for block, module in CONTRIBUTORS.items()
    }
    combined = await _combined(session, community, metrics, kind=kind, day=day, now=now)
    return SummaryData(kind, metrics, series, tuple(unanswered), **extras, combined=combined)


async def _combined(
    session: AsyncSession,
    community: Community,
    metrics: CommunityMetrics,
    *,
    kind: Kind,
    day: date,
    now: datetime,
) -> links.Combined | None:
    """The linked communities' combined figures; a failure leaves only the block out."""
    try:
        return await links.combined(
            session, community, metrics, weekly=kind is Kind.WEEKLY, day=day, now=now
        )
    except Exception:
        log.exception("community %s: combined figures failed; summary goes on", community.id)
        return None


def sparkline(values: Sequence[int]) -> str:
    """Blocks ▁…█ scaled to the largest value; · for zero (a space at either end of a code
    span would be trimmed by Markdown)."""
    top = max(values, default=0)
    return "".join(
        BLOCKS[min(len(BLOCKS), max(1, math.ceil(v / top * len(BLOCKS)))) - 1] if v > 0 else ZERO
        for v in values
    )


def _reported_days(data: SummaryData) -> set[date]:
    period = data.metrics.period
    return {period.first + timedelta(days=i) for i in range(period.days)}


async def _chart(services: Services, community: Community, data: SummaryData) -> Image | None:
    """The chart PNG, or None when it could not be drawn (the text then has sparklines)."""
    locale = community.locale

    def label(which: str) -> str:
        # Templates write neutral Markdown; a chart shows the plain text.
        text = services.renderer.render(
            "analytics/chart.j2", locale, which=which, kind=data.kind.value, m=data.metrics,
            community=community,
        )  # fmt: skip
        return to_plain(text)

    try:
        # matplotlib takes most of a second to import: only when a chart is drawn.
        from handlers.analytics.charts import ChartLabels, render_summary_chart

        labels = ChartLabels(
            title=label("title"),
            messages=label("messages"),
            active=label("active"),
            days_title=label("days"),
            hours_title=label("hours"),
        )
        png = await asyncio.to_thread(
            render_summary_chart,
            data.series,
            data.metrics.hours,
            labels,
            reported=_reported_days(data),
        )
    except Exception:
        log.exception("community %s: the summary chart could not be drawn", community.id)
        return None
    name = f"summary-{data.metrics.period.last.isoformat()}.png"
    return Image(png, name, alt=labels.title[:200])


async def render(
    services: Services,
    community: Community,
    data: SummaryData,
    *,
    images: bool,
    now: datetime,
    late_for: datetime | None = None,
) -> OutgoingMessage:
    """The summary message; `late_for` is the due time of a scheduled summary posted late."""
    image = await _chart(services, community, data) if images else None
    tz = zone(community.timezone)
    weekdays = services.renderer.catalog(community.locale).get("weekdays", [])
    period = data.metrics.period
    return services.renderer.message(
        "analytics/summary.j2",
        community.locale,
        image=image,
        kind=data.kind.value,
        m=data.metrics,
        data=data,
        community=community,
        tz=tz,
        weekday=weekdays[period.last.weekday()] if len(weekdays) == 7 else "",
        local_now=now.astimezone(tz),
        late_for=late_for.astimezone(tz) if late_for is not None else None,
        chart=image is not None,
        days_line=sparkline([p.messages for p in data.series]),
        hours_line=sparkline(data.metrics.hours),
        series_first=data.series[0].day if data.series else period.first,
    )
