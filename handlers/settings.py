"""`/settings`: a community's time zone, language, special chats and daily summary time,
changed by its managers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from handlers.analytics import schedule as summary_schedule
from handlers.core.args import Choice, Duration, Param, ParseEnv, TimeZoneName, Token
from handlers.core.context import HandlerContext
from handlers.core.errors import UserInputError
from handlers.core.events import CommandEvent, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.render import LOCALES
from handlers.core.router import Router
from handlers.posts.policy import (
    APPROVAL,
    GRACE_MINUTES,
    MAX_GRACE,
    PINGS,
    QUIET_HOURS,
    PostPolicy,
)
from handlers.posts.quiet import QuietHoursArg

router = Router("settings")


def _render(ctx: HandlerContext, **values: object) -> OutgoingMessage:
    return ctx.render(
        "settings.j2",
        policy=PostPolicy.of(ctx.community.settings),
        summary_at=summary_schedule.summary_time(ctx.community.settings),
        **values,
    )


def _change(ctx: HandlerContext, key: str, value: object) -> None:
    """Set (or with None, drop) one settings key; a new dict, so the JSON column is saved."""
    settings = dict(ctx.community.settings or {})
    if value is None:
        settings.pop(key, None)
    else:
        settings[key] = value
    ctx.community.settings = settings


@router.command("settings", min_role=Role.MANAGER)
async def show_settings(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Show the community's settings."""
    return _render(ctx, changed=None)


@router.command("settings timezone", params=[Param("zone", TimeZoneName())], min_role=Role.MANAGER)
async def set_timezone(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Set the time zone that schedules and daily reports use."""
    previous = ctx.community.timezone
    ctx.community.timezone = ctx.args.zone
    _rearm_summary(ctx)  # its local time moved with the zone
    return _render(ctx, changed="timezone", previous=previous)


@router.command(
    "settings language",
    params=[Param("language", Choice(LOCALES, label="language"))],
    aliases=["settings locale"],
    min_role=Role.MANAGER,
)
async def set_language(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Set the language the bot answers this community in."""
    previous = ctx.community.locale
    ctx.community.locale = ctx.args.language
    return _render(ctx, changed="language", previous=previous)


# Chats a community can name for its automatic posts; other features read these keys.
SPECIAL_CHATS = {"announcements": "announcements_chat", "managers": "managers_chat"}


def special_chat(settings: dict, purpose: str) -> dict[str, str] | None:
    """The chat chosen for `purpose` ("announcements" or "managers"), if a manager chose one."""
    chosen = settings.get(SPECIAL_CHATS[purpose])
    return chosen if isinstance(chosen, dict) else None


async def _choose_chat(event: CommandEvent, ctx: HandlerContext, purpose: str) -> OutgoingMessage:
    previous = special_chat(ctx.community.settings or {}, purpose)
    here = {"id": event.chat.chat_id, "title": event.chat.title or ""}
    _change(ctx, SPECIAL_CHATS[purpose], here if ctx.args.where == "here" else None)
    return _render(
        ctx,
        changed=purpose,
        previous_chat=previous,
        chosen=special_chat(ctx.community.settings, purpose),
    )


_WHERE = [Param("where", Choice(("here", "off"), label="here|off"))]


@router.command("settings announcements", params=_WHERE, min_role=Role.MANAGER)
async def set_announcements(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Post automatic announcements in this chat (`here`), or back in the main chat (`off`)."""
    return await _choose_chat(event, ctx, "announcements")


@router.command("settings managers", params=_WHERE, min_role=Role.MANAGER)
async def set_managers_chat(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Send managers' reports and alerts to this chat (`here`), or stop (`off`)."""
    return await _choose_chat(event, ctx, "managers")


class _QuietOrOff(QuietHoursArg):
    def consume(self, tokens, i, env):  # type: ignore[no-untyped-def]
        if tokens[i].value.strip().lower() in ("off", "none", "关"):
            return None, 1
        return super().consume(tokens, i, env)


@router.command(
    "settings quiet",
    params=[Param("hours", _QuietOrOff(label="HH:MM-HH:MM|off"))],
    min_role=Role.MANAGER,
)
async def set_quiet_hours(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Hold automatic posts between two local times (`23:00-08:00`), or `off`."""
    hours = ctx.args.hours
    _change(ctx, QUIET_HOURS, hours.to_json() if hours is not None else None)
    return _render(ctx, changed="quiet")


@router.command(
    "settings approval",
    params=[Param("state", Choice(("on", "off"), label="on|off"))],
    min_role=Role.MANAGER,
)
async def set_approval(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Require a second manager to approve each post before it goes live (`on`), or not."""
    _change(ctx, APPROVAL, True if ctx.args.state == "on" else None)
    return _render(ctx, changed="approval")


@router.command(
    "settings pings",
    params=[Param("state", Choice(("on", "off"), label="on|off"))],
    min_role=Role.MANAGER,
)
async def set_pings(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Let scheduled posts ping @everyone, @here and roles on Discord (`on`), or never."""
    _change(ctx, PINGS, True if ctx.args.state == "on" else None)
    return _render(ctx, changed="pings")


@router.command(
    "settings grace",
    params=[Param("window", Duration(label="duration", minimum=timedelta(0), maximum=MAX_GRACE))],
    min_role=Role.MANAGER,
)
async def set_grace(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """How late a post missed while the bot was away may still go out (default 10m)."""
    minutes = int(ctx.args.window.total_seconds() // 60)
    _change(ctx, GRACE_MINUTES, minutes)
    return _render(ctx, changed="grace")


class _SummaryTime:
    """Converter: a local time of day (`09:00`, `9:30`, `21`), or `off`."""

    label = "HH:MM|off"

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[str, int]:
        raw = tokens[i].value.strip()
        if raw.lower() in ("off", "none", "关", "关闭"):
            return summary_schedule.OFF, 1
        at = summary_schedule.parse_clock(raw)
        if at is None:
            raise UserInputError("analytics/errors.j2", problem="bad_time", value=raw)
        return at.strftime("%H:%M"), 1


def _rearm_summary(ctx: HandlerContext) -> None:
    """Once the change is committed, set the community's summary timer for its new time."""
    scheduler, community, clock = ctx.scheduler, ctx.community, ctx.clock

    async def rearm() -> None:
        summary_schedule.arm(scheduler, community, clock.now())

    ctx.then(rearm)


@router.command("settings summary", params=[Param("at", _SummaryTime())], min_role=Role.MANAGER)
async def set_summary(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Post the daily summary at this local time every day (`09:00`, the default), or `off`."""
    _change(ctx, summary_schedule.SUMMARY_TIME, ctx.args.at)
    _rearm_summary(ctx)
    return _render(ctx, changed="summary")
