"""`/stats`: today's and yesterday's activity for the community, from the rollups."""

from __future__ import annotations

from datetime import timedelta

from handlers.core.context import HandlerContext
from handlers.core.events import CommandEvent
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from storage.metrics import day_counts

router = Router("stats")


@router.command("stats", fresh_activity=True)
async def stats(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Show today's and yesterday's messages, active members, joins and leaves."""
    local_now = ctx.now().astimezone(ctx.tz)
    today = local_now.date()
    yesterday = today - timedelta(days=1)
    counts = await day_counts(ctx.session, ctx.community.id, [today, yesterday])
    return ctx.render(
        "stats.j2",
        today=counts[today],
        yesterday=counts[yesterday],
        local_now=local_now,
        timezone=ctx.community.timezone,
    )
