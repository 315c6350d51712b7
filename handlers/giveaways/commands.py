"""`/giveaway …`: managers start, list, end, cancel and reroll giveaways; anyone verifies."""

from __future__ import annotations

import logging
from dataclasses import replace

from handlers.core.args import Deadline, Duration, Integer, Option, Param, Text, Word
from handlers.core.context import HandlerContext
from handlers.core.errors import NotFound, PermissionDenied, UserInputError
from handlers.core.events import ButtonPressed, CommandEvent, Role
from handlers.core.outgoing import Button, OutgoingMessage
from handlers.core.router import Router
from handlers.giveaways import lifecycle
from handlers.giveaways.draw import commitment, new_seed, verify
from handlers.giveaways.requirements import BonusRules, Rules
from storage import giveaways as store
from storage.models import Giveaway

log = logging.getLogger(__name__)

router = Router("giveaways")

MAX_WINNERS = 100
ENTRANTS_SAMPLE = 10
_ID = Param("id", Integer(label="giveaway id", minimum=1, maximum=2**62))


async def find(ctx: HandlerContext, giveaway_id: int) -> Giveaway:
    """A giveaway of this community, or a friendly "not found"."""
    found = await store.get(ctx.session, ctx.community.id, giveaway_id)
    if found is None:
        raise NotFound(what="giveaway", id=giveaway_id, hint_command="/giveaway list")
    return found


@router.command(
    "giveaway start",
    params=[
        Param("ends", Deadline()),
        Param("winners", Integer(label="winners", minimum=1, maximum=MAX_WINNERS)),
        Param("prize", Text(label="prize", max_length=200)),
    ],
    options=[
        Option("min-messages", Integer(label="messages", minimum=1, maximum=100_000)),
        Option("member-for", Duration(label="duration", maximum=Duration().maximum * 10)),
        Option("role", Word(label="role", max_length=100)),
        Option("exclude-managers"),
        Option("max-entries", Integer(label="entries", minimum=1, maximum=10_000_000)),
        Option("bonus", BonusRules()),
    ],
    min_role=Role.MANAGER,
)
async def start(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage | None:
    """Start a giveaway here: members enter with a button until it ends, then it draws."""
    args = ctx.args
    rules = Rules(
        min_messages=args["min-messages"],
        member_for=args["member-for"],
        role=args.role,
        exclude_managers=args["exclude-managers"],
        bonus=args.bonus or {},
    )
    if rules.needs_roles and not ctx.gateway.capabilities.roles:
        raise UserInputError("giveaways/errors.j2", problem="no_roles")
    prize = " ".join(args.prize.split())
    if not prize:
        raise UserInputError("giveaways/errors.j2", problem="no_prize")
    seed = new_seed()
    now = ctx.now()
    giveaway = Giveaway(
        community_id=ctx.community.id,
        chat_id=event.chat.chat_id,
        chat_title=event.chat.title,
        chat_kind=event.chat.kind.value,
        prize=prize,
        winners=args.winners,
        ends_at=args.ends,
        status=store.GiveawayStatus.OPEN.value,
        seed=seed,
        commitment=commitment(seed),
        requirements=rules.to_json(),
        max_entries=args["max-entries"],
        entry_count=0,
        count_shown=0,
        created_by=event.actor.user_id,
        created_at=now,
        rounds=[],
    )
    ctx.session.add(giveaway)
    await ctx.session.flush()
    message = await lifecycle.announcement(ctx.services, ctx.session, giveaway, ctx.community)
    services, gateway, chat, giveaway_id = ctx.services, ctx.gateway, event.chat, giveaway.id

    async def publish() -> None:
        # After commit: the Enter button must never point at a giveaway that isn't saved.
        try:
            sent = await gateway.send(chat, message)
        except Exception:
            log.exception("giveaway %s: announcement could not be posted", giveaway_id)
            async with services.db.session() as session:
                await store.cancel(session, giveaway_id)
            return
        async with services.db.session() as session:
            row = await store.by_id(session, giveaway_id)
            assert row is not None
            row.message_id = sent.message_id
            ends_at = row.ends_at
        lifecycle.schedule_draw(services, giveaway_id, ends_at)

    ctx.then(publish)
    return None


@router.command("giveaway list", min_role=Role.MANAGER)
async def list_giveaways(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """This community's open giveaways and the latest finished ones."""
    found = await store.listing(ctx.session, ctx.community.id)
    return ctx.render("giveaways/list.j2", giveaways=found, now=ctx.now())


@router.command("giveaway end", params=[_ID], aliases=["giveaway draw"], min_role=Role.MANAGER)
async def end_now(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage | None:
    """End a giveaway now and draw its winners."""
    giveaway = await find(ctx, ctx.args.id)
    if giveaway.status != store.GiveawayStatus.OPEN:
        raise UserInputError("giveaways/errors.j2", problem="not_open", g=giveaway)
    if not await lifecycle.draw_in(ctx.session, giveaway.id, now=ctx.now(), early=True):
        raise UserInputError("giveaways/errors.j2", problem="not_open", g=giveaway)
    services, giveaway_id = ctx.services, giveaway.id

    async def post_result() -> None:
        lifecycle.cancel_timers(services, giveaway_id)
        await lifecycle.announce(services, giveaway_id)

    ctx.then(post_result)
    return None


CANCEL_PREFIX = "giveaway:cancel:"
KEEP_PREFIX = "giveaway:keep:"


@router.command("giveaway cancel", params=[_ID], options=[Option("yes")], min_role=Role.MANAGER)
async def cancel(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Cancel an open giveaway after a confirmation (`--yes` skips it): nobody wins."""
    giveaway = await find(ctx, ctx.args.id)
    if giveaway.status != store.GiveawayStatus.OPEN:
        raise UserInputError("giveaways/errors.j2", problem="not_open", g=giveaway)
    if ctx.args.yes:
        return await _cancel(ctx, giveaway)

    # Cancelling can't be undone and the entries are lost: ask first, with buttons.
    def label(which: str) -> str:
        return ctx.renderer.render("giveaways/button.j2", ctx.locale, which=which)

    buttons = (
        (
            Button(label("cancel"), f"{CANCEL_PREFIX}{giveaway.id}"),
            Button(label("keep"), f"{KEEP_PREFIX}{giveaway.id}"),
        ),
    )
    return replace(ctx.render("giveaways/cancel_confirm.j2", g=giveaway), buttons=buttons)


@router.button(CANCEL_PREFIX)
async def confirm_cancel(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
    """A manager confirmed a cancellation (rights checked with the platform again)."""
    giveaway = await _pressed_on(event, ctx, CANCEL_PREFIX)
    if giveaway.status != store.GiveawayStatus.OPEN:
        raise UserInputError("giveaways/errors.j2", problem="not_open", g=giveaway)
    return await _cancel(ctx, giveaway)


@router.button(KEEP_PREFIX)
async def keep(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
    """A manager changed their mind: the giveaway goes on."""
    giveaway = await _pressed_on(event, ctx, KEEP_PREFIX)
    return ctx.render("giveaways/cancel_confirm.j2", g=giveaway, kept=True, private=True)


async def _pressed_on(event: ButtonPressed, ctx: HandlerContext, prefix: str) -> Giveaway:
    if await ctx.actor_role() < Role.MANAGER:
        raise PermissionDenied(command="giveaway cancel", role=Role.MANAGER.name.lower())
    raw = event.data.removeprefix(prefix)
    if not raw.isdigit():
        raise NotFound(what="giveaway", id=raw[:20])
    return await find(ctx, int(raw))


async def _cancel(ctx: HandlerContext, giveaway: Giveaway) -> OutgoingMessage:
    if not await store.cancel(ctx.session, giveaway.id):
        raise UserInputError("giveaways/errors.j2", problem="not_open", g=giveaway)
    await ctx.session.refresh(giveaway)
    final = await lifecycle.announcement(ctx.services, ctx.session, giveaway, ctx.community)
    services, chat, gateway = ctx.services, lifecycle.chat_of(giveaway, ctx.community), ctx.gateway
    giveaway_id = giveaway.id

    async def close_announcement() -> None:
        lifecycle.cancel_timers(services, giveaway_id)
        await lifecycle.edit_announcement(gateway, chat, giveaway, final)

    ctx.then(close_announcement)
    return ctx.render("giveaways/cancelled.j2", g=giveaway)


@router.command(
    "giveaway reroll",
    params=[_ID, Param("count", Integer(label="winners", minimum=1, maximum=MAX_WINNERS), False)],
    min_role=Role.MANAGER,
)
async def reroll(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Draw replacement winners; nobody who already won can win again."""
    giveaway = await find(ctx, ctx.args.id)
    if giveaway.status != store.GiveawayStatus.DRAWN:
        raise UserInputError("giveaways/errors.j2", problem="not_drawn", g=giveaway)
    count = ctx.args.count or 1
    chosen = await lifecycle.reroll_in(
        ctx.session, giveaway, count, now=ctx.now(), by=event.actor.user_id
    )
    if chosen:
        note = ctx.render("giveaways/winner_note.j2", g=giveaway, private=True)
        gateway, chat = ctx.gateway, lifecycle.chat_of(giveaway, ctx.community)

        async def tell_winners() -> None:
            await lifecycle.notify_winners(gateway, chat, chosen, note)

        ctx.then(tell_winners)
    return ctx.render("giveaways/reroll.j2", g=giveaway, winners=chosen, asked=count)


@router.command("giveaway entrants", params=[_ID], min_role=Role.MANAGER)
async def entrants(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """How many entered a giveaway, and the latest of them."""
    giveaway = await find(ctx, ctx.args.id)
    sample = await store.sample_entrants(ctx.session, giveaway.id, ENTRANTS_SAMPLE)
    return ctx.render(
        "giveaways/entrants.j2",
        g=giveaway,
        sample=sample,
        bonus_entries=await store.bonus_entries(ctx.session, giveaway.id),
    )


@router.command("giveaway verify", params=[_ID])
async def verify_draw(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Recompute a drawn giveaway's winners from its revealed seed and frozen entrant list."""
    giveaway = await find(ctx, ctx.args.id)
    if giveaway.status != store.GiveawayStatus.DRAWN:
        raise UserInputError("giveaways/errors.j2", problem="not_drawn", g=giveaway)
    record = await lifecycle.record_of(ctx.session, giveaway)
    mine = await store.entry_of(ctx.session, giveaway.id, event.actor.user_id)
    return ctx.render(
        "giveaways/verify.j2",
        g=giveaway,
        record=record,
        result=verify(record),
        my_entrant_id=mine.entrant_id if mine else None,
    )
