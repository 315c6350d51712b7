"""`/settings`: a community's time zone, language and special chats, changed by its managers."""

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


# Chats a community can name for its automatic posts; other features read these keys.
SPECIAL_CHATS = {"announcements": "announcements_chat", "managers": "managers_chat"}


def special_chat(settings: dict, purpose: str) -> dict[str, str] | None:
    """The chat chosen for `purpose` ("announcements" or "managers"), if a manager chose one."""
    chosen = settings.get(SPECIAL_CHATS[purpose])
    return chosen if isinstance(chosen, dict) else None


async def _choose_chat(event: CommandEvent, ctx: HandlerContext, purpose: str) -> OutgoingMessage:
    key = SPECIAL_CHATS[purpose]
    settings = dict(ctx.community.settings or {})
    previous = special_chat(settings, purpose)
    if ctx.args.where == "here":
        settings[key] = {"id": event.chat.chat_id, "title": event.chat.title or ""}
    else:
        settings.pop(key, None)
    # A new dict, so SQLAlchemy sees the JSON column change.
    ctx.community.settings = settings
    return ctx.render(
        "settings.j2",
        changed=purpose,
        previous_chat=previous,
        chosen=special_chat(settings, purpose),
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
