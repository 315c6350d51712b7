"""Recording votes: one current choice per member, whichever way it arrives.

A button press and a native vote both end here: the new choice is worked out from the
member's current one, written (or removed when empty) while the poll row is held open,
and a member's first vote in a poll earns `poll_vote` points once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from handlers.core.context import HandlerContext
from handlers.core.events import VoteChange
from handlers.points.rules import points_rules
from storage import polls as store
from storage.models import Poll
from storage.points import Award, PointsReason, award


class VoteOutcome(StrEnum):
    CHOSEN = "chosen"  # a new or changed choice was recorded
    UNCHANGED = "unchanged"  # the member chose what they had already
    REMOVED = "removed"  # the member took their vote back
    CLOSED = "closed"  # the poll no longer takes votes


@dataclass(frozen=True, slots=True)
class VoteResult:
    outcome: VoteOutcome
    choice: tuple[int, ...] = ()
    points: int = 0


def pressed(multiple: bool, current: Sequence[int] | None, index: int) -> list[int]:
    """The choice after pressing option `index`: in a multiple-choice poll a press toggles that
    option; otherwise it replaces the choice (pressing the same one again changes nothing)."""
    chosen = set(current or ())
    if not multiple:
        return [index]
    chosen ^= {index}
    return sorted(chosen)


def changed(
    multiple: bool,
    current: Sequence[int] | None,
    change: VoteChange,
    option_ids: Sequence[int],
    options: int,
) -> list[int]:
    """The choice after a native vote: Telegram's whole new choice (empty = retracted), or one
    answer Discord added or removed. Positions the poll doesn't have are ignored."""
    given = [i for i in option_ids if 0 <= i < options]
    chosen = set(current or ())
    if change is VoteChange.REMOVE:
        chosen -= set(given)
    elif change is VoteChange.ADD:
        if not given:
            return sorted(chosen)
        chosen = chosen | set(given) if multiple else {given[-1]}
    else:
        chosen = set(given) if multiple else set(given[-1:])
    return sorted(chosen)


async def vote(
    ctx: HandlerContext, poll: Poll, decide: Callable[[list[int] | None], list[int]]
) -> VoteResult:
    """Apply the actor's vote in the handler's unit of work."""
    session, actor = ctx.session, ctx.event.actor
    if poll.status != store.PollStatus.OPEN or not await store.hold_open(session, poll.id):
        return VoteResult(VoteOutcome.CLOSED)
    current = await store.vote_of(session, poll.id, actor.user_id)
    choice = decide(current)
    if choice == sorted(set(current or ())):
        outcome = VoteOutcome.UNCHANGED if choice else VoteOutcome.REMOVED
        return VoteResult(outcome, tuple(choice))
    if not choice:
        await store.remove_vote(session, poll.id, actor.user_id)
        return VoteResult(VoteOutcome.REMOVED)
    await store.set_vote(
        session,
        poll.id,
        user_id=actor.user_id,
        display_name=actor.display_name,
        option_ids=choice,
        now=ctx.now(),
    )
    amount = points_rules(ctx.services.features, ctx.community.settings).poll_vote
    item = Award(
        actor.user_id, actor.display_name, amount, PointsReason.POLL_VOTE, f"poll:{poll.id}"
    )
    earned = await award(session, ctx.community.id, item, now=ctx.now())
    return VoteResult(VoteOutcome.CHOSEN, tuple(choice), amount if earned else 0)
