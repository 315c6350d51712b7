"""Entering a giveaway: the Enter button, or `/enter [id]` where buttons are missing.

The answer goes only to the member where the platform allows (a toast, an ephemeral
reply, a private message): "you're in", or exactly which requirement is not met.
"""

from __future__ import annotations

from datetime import timedelta

from handlers.core.args import Integer, Param
from handlers.core.context import HandlerContext, Services
from handlers.core.errors import NotFound, UserInputError
from handlers.core.events import ButtonPressed, CommandEvent, Event, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.giveaways import lifecycle
from handlers.giveaways.draw import pseudonym
from handlers.giveaways.requirements import (
    MESSAGE_WINDOW_DAYS,
    Rules,
    Standing,
    unmet,
    weight,
)
from handlers.points.rules import points_rules
from storage import giveaways as store
from storage.metrics import member_messages_since, member_since
from storage.points import Award, PointsReason, award
from storage.secrets import install_secret

router = Router("giveaway-entry")

PSEUDONYM_KEY = "giveaway-pseudonyms"


class EntryRefused(UserInputError):
    """The member can't enter; the reply says why (and the entry row is rolled back)."""

    template = "giveaways/entry.j2"


async def enter(ctx: HandlerContext, giveaway_id: int) -> OutgoingMessage:
    """Enter the actor into a giveaway of this community, or say precisely why not."""
    event: Event = ctx.event
    giveaway = await store.get(ctx.session, ctx.community.id, giveaway_id)
    if giveaway is None:
        raise NotFound(what="giveaway", id=giveaway_id)
    now = ctx.now()
    if giveaway.status != store.GiveawayStatus.OPEN or giveaway.ends_at <= now:
        raise EntryRefused(outcome="closed", g=giveaway)
    already = await store.entry_of(ctx.session, giveaway.id, event.actor.user_id)
    if already is not None:
        raise EntryRefused(outcome="already", g=giveaway, entrant_id=already.entrant_id)
    rules = Rules.from_json(giveaway.requirements)
    profile = await ctx.gateway.profile(event.chat, event.actor)
    platform = event.chat.platform.value
    local_today = now.astimezone(ctx.tz).date()
    standing = Standing(
        role=await ctx.actor_role() if rules.exclude_managers else Role.MEMBER,
        profile=profile,
        messages=await member_messages_since(
            ctx.session,
            ctx.community.id,
            platform,
            event.actor.user_id,
            local_today - timedelta(days=MESSAGE_WINDOW_DAYS - 1),
        )
        if rules.min_messages
        else 0,
        known_since=await member_since(ctx.session, ctx.community.id, platform, event.actor.user_id)
        if rules.member_for
        else None,
    )
    problems = unmet(rules, standing, now)
    if problems:
        raise EntryRefused(outcome="refused", g=giveaway, problems=problems)
    key = await install_secret(ctx.session, PSEUDONYM_KEY, now=now)
    entrant_id = pseudonym(key, giveaway.id, platform, event.actor.user_id)
    entries = weight(rules, profile)
    outcome = await store.enter(
        ctx.session,
        giveaway.id,
        user_id=event.actor.user_id,
        entrant_id=entrant_id,
        display_name=event.actor.display_name,
        weight=entries,
        now=now,
    )
    if outcome is not store.EntryOutcome.ENTERED:
        # Raising rolls the unit of work back, so a refused entry leaves no row behind.
        raise EntryRefused(outcome=outcome.value, g=giveaway, entrant_id=entrant_id)
    # In the entry's own unit of work; the ref makes it once per member and giveaway.
    rules = points_rules(ctx.services.features, ctx.community.settings)
    entry_points = Award(
        event.actor.user_id,
        event.actor.display_name,
        rules.giveaway_entry,
        PointsReason.GIVEAWAY_ENTRY,
        ref=f"giveaway:{giveaway.id}",
    )
    await award(ctx.session, ctx.community.id, entry_points, now=now)
    services, giveaway_id = ctx.services, giveaway.id

    async def refresh_later() -> None:
        lifecycle.request_count_refresh(services, giveaway_id)

    ctx.then(refresh_later)
    return ctx.render(
        "giveaways/entry.j2",
        outcome="entered",
        g=giveaway,
        entrant_id=entrant_id,
        entries=entries,
        private=True,
    )


async def rules_read_activity(event: ButtonPressed, services: Services) -> bool:
    """Whether the pressed giveaway's rules count messages or tenure: only then must the
    activity writer flush first (a wait for its next batch on every press otherwise)."""
    raw = event.data.removeprefix(lifecycle.ENTER_PREFIX)
    if not raw.isdigit():
        return False  # the handler says it can't find it
    async with services.db.session() as session:
        requirements = await store.requirements_of(session, int(raw))
    rules = Rules.from_json(requirements)
    return bool(rules.min_messages or rules.member_for)


@router.button(lifecycle.ENTER_PREFIX, fresh_activity=rules_read_activity)
async def press_enter(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
    """A member pressed a giveaway's Enter button."""
    raw = event.data.removeprefix(lifecycle.ENTER_PREFIX)
    if not raw.isdigit():
        raise NotFound(what="giveaway", id=raw[:20])
    return await enter(ctx, int(raw))


@router.command(
    "enter",
    params=[Param("id", Integer(label="giveaway id", minimum=1, maximum=2**62), required=False)],
    fresh_activity=True,
)
async def enter_command(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Enter a giveaway (the only open one here when no id is given)."""
    giveaway_id = ctx.args.id
    if giveaway_id is None:
        found = await store.open_in(ctx.session, ctx.community.id, now=ctx.now())
        if len(found) != 1:
            raise UserInputError("giveaways/errors.j2", problem="which", open=found)
        giveaway_id = found[0].id
    return await enter(ctx, giveaway_id)
