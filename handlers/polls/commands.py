"""`/poll …`: managers make, close and read polls; anyone votes and lists them.

A poll is native where the platform has polls that fit (Telegram; Discord unless it must be
anonymous, which Discord polls can't be), and a message with one button per option
elsewhere (the console). Votes arrive as button presses or as the platform's `PollVote`
and `PollTotals` events; either way each member has one current choice.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import partial

from handlers.core.args import Deadline, Integer, Option, Param, Text
from handlers.core.context import HandlerContext
from handlers.core.errors import BadArgument, UserInputError
from handlers.core.events import ButtonPressed, CommandEvent, PollTotals, PollVote, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.polls import lifecycle, votes
from handlers.polls.draft import MAX_OPTION, MAX_OPTIONS, MAX_QUESTION, DraftProblem, parse_draft
from handlers.polls.results import platform_counts_only, tally_of, tally_totals
from storage import polls as store
from storage.models import Poll

router = Router("polls")

# `--x` standing alone inside the question or an option.
_STRAY_OPTION = re.compile(r"(?<!\S)--[^\W\d_][\w-]*")
_ID = Param("id", Integer(label="poll id", minimum=1, maximum=2**62))
# Room for a 300-character question, ten 100-character options, bars and spaces.
_TEXT_LIMIT = MAX_QUESTION + MAX_OPTIONS * (MAX_OPTION + 3) + 64


class PollRefused(UserInputError):
    """A poll command that can't be done; `problem` names a case in `polls/errors.j2`."""

    template = "polls/errors.j2"


async def find(ctx: HandlerContext, poll_id: int) -> Poll:
    """A poll of this community, or a friendly "not found"."""
    found = await store.get(ctx.session, ctx.community.id, poll_id)
    if found is None:
        raise PollRefused(problem="not_found", id=poll_id)
    return found


@router.command(
    "poll new",
    aliases=["poll"],
    params=[Param("text", Text(label="question | option | option", max_length=_TEXT_LIMIT))],
    options=[
        Option("multi"),
        Option("anonymous"),
        Option("closes", Deadline(label="duration|end time")),
    ],
    min_role=Role.MANAGER,
)
async def create(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage | None:
    """Post a poll here: `/poll Lunch? | Pizza | Sushi --closes 2h`."""
    capabilities = ctx.gateway.capabilities
    anonymous: bool = ctx.args.anonymous
    native = capabilities.native_polls and (capabilities.anonymous_polls or not anonymous)
    if not native and not capabilities.buttons:
        raise PollRefused(problem="no_polls")
    stray = _STRAY_OPTION.search(ctx.args.text)
    if stray:
        # The parser leaves unknown `--words` in the text; in a poll they are a typo.
        known = ", ".join(f"--{o.name}" for o in ctx.command.options) if ctx.command else ""
        raise BadArgument("unknown_option", value=stray.group(0), known=known)
    try:
        draft = parse_draft(ctx.args.text, max_option_length=capabilities.max_poll_option_length)
    except DraftProblem as exc:
        raise PollRefused(problem=exc.problem, **exc.values) from None
    now = ctx.now()
    closes_at = ctx.args.closes
    longest = capabilities.max_poll_duration if native else None
    if longest is not None:
        # The platform ends its polls by itself after this long: close ours no later.
        if closes_at is not None and closes_at - now > longest:
            raise PollRefused(problem="closes_too_late", longest=longest)
        closes_at = closes_at or now + longest
    poll = Poll(
        community_id=ctx.community.id,
        chat_id=event.chat.chat_id,
        chat_title=event.chat.title,
        chat_kind=event.chat.kind.value,
        native=native,
        question=draft.question,
        options=list(draft.options),
        multiple=ctx.args.multi,
        anonymous=anonymous,
        status=store.PollStatus.OPEN.value,
        closes_at=closes_at,
        created_by=event.actor.user_id,
        created_by_name=event.actor.display_name[:256],
        created_at=now,
    )
    ctx.session.add(poll)
    await ctx.session.flush()
    # After commit: votes must never arrive for a poll that isn't saved.
    ctx.then(partial(lifecycle.publish, ctx.services, ctx.gateway, poll.id))
    if native:
        # A native poll can't carry its id: tell the manager (only them, where possible).
        return ctx.render("polls/created.j2", p=poll, private=True)
    return None


@router.command("poll close", params=[_ID], aliases=["poll end"], min_role=Role.MANAGER)
async def close(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage | None:
    """Close a poll now and post its result."""
    poll = await find(ctx, ctx.args.id)
    closed = poll.status == store.PollStatus.OPEN and await store.claim_close(
        ctx.session, poll.id, now=ctx.now(), by=event.actor.user_id, early=True
    )
    if not closed:
        raise PollRefused(problem="not_open", p=poll)
    ctx.then(partial(lifecycle.announce, ctx.services, poll.id))
    if poll.chat_id != event.chat.chat_id:
        return ctx.render("polls/closed.j2", p=poll, private=True)
    return None


@router.command("poll results", params=[_ID], min_role=Role.MANAGER)
async def results(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """A poll's numbers, with a chart: so far while open, final once closed."""
    poll = await find(ctx, ctx.args.id)
    tally = await tally_of(ctx.session, poll)
    return await lifecycle.result_message(
        ctx.services, poll, ctx.community, tally, ctx.gateway.capabilities
    )


@router.command("poll list")
async def list_polls(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """This community's open polls and the latest closed ones."""
    found = await store.listing(ctx.session, ctx.community.id)
    counted = await store.voter_counts(ctx.session, [p.id for p in found])
    voters = {
        p.id: (
            tally_totals(p.options, p.native_totals).voters
            if platform_counts_only(p)
            else counted.get(p.id, 0)
        )
        for p in found
    }
    return ctx.render("polls/list.j2", polls=found, voters=voters)


@router.button(lifecycle.VOTE_PREFIX)
async def press(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
    """A member pressed an option under a button poll."""
    raw_id, _, raw_option = event.data.removeprefix(lifecycle.VOTE_PREFIX).partition(":")
    if not (raw_id.isdigit() and raw_option.isdigit()):
        raise PollRefused(problem="not_found", id=raw_id[:20])
    poll = await find(ctx, int(raw_id))
    index = int(raw_option)
    if index >= len(poll.options):
        raise PollRefused(problem="not_found", id=raw_id)
    result = await votes.vote(
        ctx, poll, lambda current: votes.pressed(poll.multiple, current, index)
    )
    if result.outcome is votes.VoteOutcome.CHOSEN or result.outcome is votes.VoteOutcome.REMOVED:
        services, poll_id = ctx.services, poll.id

        async def refresh_later() -> None:
            lifecycle.request_refresh(services, poll_id)

        ctx.then(refresh_later)
    reply = ctx.render("polls/vote.j2", p=poll, result=result, pressed=index, private=True)
    return replace(reply, silent=True)


@router.on(PollVote)
async def native_vote(event: PollVote, ctx: HandlerContext) -> None:
    """A member voted (or took a vote back) in a native poll: the platform shows it, we count."""
    poll = await store.by_native(ctx.session, ctx.community.id, event.poll_id)
    if poll is None or not poll.native:
        return
    await votes.vote(
        ctx,
        poll,
        lambda current: votes.changed(
            poll.multiple, current, event.change, event.option_ids, len(poll.options)
        ),
    )


@router.on(PollTotals)
async def native_totals(event: PollTotals, ctx: HandlerContext) -> None:
    """The platform's counts for a native poll: the only numbers an anonymous one has."""
    poll = await store.by_native(ctx.session, ctx.community.id, event.poll_id)
    if poll is None or not poll.native or len(event.totals) != len(poll.options):
        return
    await store.set_native_totals(ctx.session, poll.id, event.totals, event.voters)
