"""`/summary [day]` and `/summary weekly [day]`: the summary on demand, for managers.

The day defaults to yesterday in the community's zone; `today` gives a partial summary
(marked as such). The reply is the same message the scheduled summary posts, with its chart
where the platform shows images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial

from handlers.analytics import links, summary
from handlers.core.args import Param, ParseEnv, Token
from handlers.core.context import HandlerContext, Services
from handlers.core.errors import UserInputError
from handlers.core.events import CommandEvent, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from storage.analytics import record_member_count

router = Router("analytics")

# How far back a summary may be asked for (the rollups go back further; this keeps typos
# like 2062 or 1026 from being read as real requests).
MAX_DAYS_BACK = 400
_TODAY = ("today", "今天", "今日")
_YESTERDAY = ("yesterday", "昨天", "昨日")


@dataclass(frozen=True, slots=True)
class SummaryDay:
    """Converter: `today`, `yesterday`, `2026-11-19` or `11-19` (the latest such day),
    never a day in the future."""

    label: str = "today|yesterday|YYYY-MM-DD"

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[date, int]:
        raw = tokens[i].value.strip()
        today = env.now.astimezone(env.tz).date()
        word = raw.lower()
        if word in _TODAY:
            return today, 1
        if word in _YESTERDAY:
            return today - timedelta(days=1), 1
        day = _parse_day(raw, today)
        if day is None:
            raise UserInputError("analytics/errors.j2", problem="bad_day", value=raw)
        if day > today:
            raise UserInputError(
                "analytics/errors.j2", problem="future_day", value=day.isoformat(), today=today
            )
        if (today - day).days > MAX_DAYS_BACK:
            raise UserInputError(
                "analytics/errors.j2", problem="too_old", value=day.isoformat(), limit=MAX_DAYS_BACK
            )
        return day, 1


def _parse_day(raw: str, today: date) -> date | None:
    """`YYYY-MM-DD` (or `YYYY/MM/DD`), or `MM-DD` meaning the latest such day up to today."""
    text = raw.replace("/", "-")
    parts = text.split("-")
    try:
        if len(parts) == 3 and len(parts[0]) == 4:
            return date(int(parts[0]), int(parts[1]), int(parts[2]))
        if len(parts) == 2:
            month, day = int(parts[0]), int(parts[1])
            for year in range(today.year, today.year - 5, -1):  # 02-29 needs a leap year
                try:
                    candidate = date(year, month, day)
                except ValueError:
                    continue
                if candidate <= today:
                    return candidate
    except ValueError:
        return None
    return None


_DAY = [Param("day", SummaryDay(), required=False)]


async def _record(services: Services, community_id: int, day: date, count: int) -> None:
    async with services.db.session() as session:
        await record_member_count(session, community_id, day, count)


async def _summary(ctx: HandlerContext, kind: summary.Kind) -> OutgoingMessage:
    now = ctx.now()
    today = now.astimezone(ctx.tz).date()
    day: date = ctx.args.day or today - timedelta(days=1)
    live = await summary.live_member_count(ctx.gateway, ctx.community, day, today=today)
    if live is not None and summary.records_member_count(day, today):
        # In its own unit of work after this one: never a second writer inside it.
        ctx.then(partial(_record, ctx.services, ctx.community.id, day, live))
    data = await summary.gather(
        ctx.session, ctx.community, kind=kind, day=day, now=now, live_member_count=live
    )
    return await summary.render(
        ctx.services, ctx.community, data, images=ctx.gateway.capabilities.images, now=now
    )


@router.command("summary", params=_DAY, min_role=Role.MANAGER, fresh_activity=True)
async def daily(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The daily summary of yesterday (or `today`, or a date)."""
    return await _summary(ctx, summary.Kind.DAILY)


@router.command("summary weekly", params=_DAY, min_role=Role.MANAGER, fresh_activity=True)
async def weekly(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The weekly digest: the 7 days ending yesterday (or the day given)."""
    return await _summary(ctx, summary.Kind.WEEKLY)


# Linked communities (`handlers.analytics.links`): registered here so the analytics router
# that bot/app.py already includes carries them.
router.command("link", params=links.LINK_PARAMS, min_role=Role.MANAGER)(links.link)
router.command("unlink", min_role=Role.MANAGER)(links.unlink)
