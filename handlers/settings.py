"""`/settings`: a community's time zone and language, changed by its managers."""

from __future__ import annotations

from handlers.core.args import Choice, Param, TimeZoneName
from handlers.core.context import HandlerContext
from handlers.core.events import CommandEvent, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.render import LOCALES
from handlers.core.router import Router

router = Router("settings")


@router.command("settings", min_role=Role.MANAGER)
async def show_settings(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Show the community's settings."""
    return ctx.render("settings.j2", changed=None)


@router.command("settings timezone", params=[Param("zone", TimeZoneName())], min_role=Role.MANAGER)
async def set_timezone(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Set the time zone that schedules and daily reports use."""
    previous = ctx.community.timezone
    ctx.community.timezone = ctx.args.zone
    return ctx.render("settings.j2", changed="timezone", previous=previous)


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
    return ctx.render("settings.j2", changed="language", previous=previous)
