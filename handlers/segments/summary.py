"""Segment lines for the daily summary (`handlers.analytics` calls `summary_lines`)."""

from __future__ import annotations

from datetime import date
from functools import cache

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.render import Renderer
from handlers.segments.report import segment_report
from storage.models import Community

# The summary shows the biggest flows only; `/segments` has the rest.
SUMMARY_MOVES = 3


@cache
def _renderer() -> Renderer:
    return Renderer()


async def summary_lines(
    session: AsyncSession, community: Community, day: date, locale: str
) -> list[str]:
    """The "segments movement" of the daily summary of local day `day`, in `locale`.

    Returns already-rendered lines in the neutral Markdown subset (no trailing newlines):
    first the count of each segment on `day` with its change against `day - 7`, then, when
    anything moved, the biggest moves between segments and how many joined and left. Reads
    the rollups in the caller's session (one grouped query) and never writes.
    """
    report = await segment_report(session, community, day)
    text = _renderer().render(
        "segments/summary.j2", locale, report=report, shown_moves=SUMMARY_MOVES
    )
    return [line for line in text.splitlines() if line.strip()]
