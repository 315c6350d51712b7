"""Leaderboard windows: this week and this month start at local midnight in the community's zone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from handlers.core.args import ParseEnv, Token
from handlers.core.errors import BadArgument
from handlers.points.messages import day_window

PERIODS = ("week", "month", "all")
# What members type, in both languages, for each window.
_ALIASES = {
    "week": "week", "weekly": "week", "w": "week", "周": "week", "本周": "week",
    "month": "month", "monthly": "month", "m": "month", "月": "month", "本月": "month",
    "all": "all", "alltime": "all", "all-time": "all", "total": "all", "全部": "all", "总": "all",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Period:
    """A converter for `Param`: `week`, `month` or `all` (and their Chinese names)."""

    label: str = "week|month|all"

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[str, int]:
        raw = tokens[i].value.strip()
        found = _ALIASES.get(raw.lower())
        if found is None:
            raise BadArgument("choice", value=raw, choices=", ".join(PERIODS))
        return found, 1


def period_start(period: str, now: datetime, tz: ZoneInfo) -> datetime | None:
    """When `period` began (aware UTC): Monday 00:00 or the 1st 00:00 local; None for all."""
    today = now.astimezone(tz).date()
    if period == "week":
        return day_window(today - timedelta(days=today.weekday()), tz)[0]
    if period == "month":
        return day_window(today.replace(day=1), tz)[0]
    return None
