"""`/points` and `/leaderboard`: balances, ranks and windows over the points ledger.

Members see their own points (and others' balances); managers give and take points with a
reason (the ledger row keeps who did it and why), look at anyone's history and change the
community's rules. Balances are never stored: every number here is a sum of ledger rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from handlers.core.args import Integer, Param, ParseEnv, Text, Token, Word
from handlers.core.context import HandlerContext
from handlers.core.errors import BadArgument, PermissionDenied, UserInputError
from handlers.core.events import ChatKind, CommandEvent, Role
from handlers.core.members import MemberArg, MemberQuery, MemberRef, find_member, names_of
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.points.messages import message_ref
from handlers.points.periods import Period, period_start
from handlers.points.rules import RULE_NAMES, PointsRules, bounds, points_rules
from storage import points as ledger
from storage.models import PointsEntry
from storage.points import Award, PointsReason
from storage.privacy import is_opted_out

router = Router("points")

TOP = 10
HISTORY_ITEMS = 10
# Rows read for /points history: message points are folded per day, so a chatty member's
# last ten items may span many rows; a bounded read keeps the command cheap.
HISTORY_ROWS = 300
# One manager adjustment at most; more is a typo (or a joke) rather than a reward.
MAX_ADJUST = 100_000
RESET_WORDS = ("default", "reset", "默认")


@dataclass(frozen=True, slots=True)
class PointsAmount(Integer):
    """A whole number of points from 1 to `MAX_ADJUST` (an `Integer`, so Discord offers a
    number field); a number too long to read as one is out of range, not "not a number"."""

    label: str = "points"
    minimum: int = 1
    maximum: int = MAX_ADJUST

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[int, int]:
        raw = tokens[i].value.strip()
        if re.fullmatch(r"[+-]?\d{13,40}", raw):
            raise BadArgument("out_of_range", value=raw, minimum=self.minimum, maximum=self.maximum)
        return Integer.consume(self, tokens, i, env)


_MEMBER = Param("member", MemberArg())
_OPTIONAL_MEMBER = Param("member", MemberArg(), required=False)


async def _require_manager(ctx: HandlerContext, problem: str) -> None:
    """The manager check for a command that members may use in its other form."""
    if ctx.event.chat.kind is ChatKind.PRIVATE:
        name = ctx.command.name if ctx.command else "points"
        raise UserInputError("errors/group_only.j2", command=name)
    if await ctx.actor_role() < Role.MANAGER:
        raise PermissionDenied("points/errors.j2", problem=problem)


async def _member(ctx: HandlerContext, query: MemberQuery | None) -> MemberRef:
    """The member named (the actor when nobody is), among this community's members.

    Someone who earned points without ever posting (a giveaway button) is found by id in
    the ledger.
    """
    actor = ctx.event.actor
    if query is None:
        return MemberRef(actor.user_id, actor.display_name, actor.username)
    found = await find_member(ctx.session, ctx.community.id, ctx.community.platform, query)
    if found is not None:
        return found
    if query.user_id is not None:
        names = await ledger.latest_names(ctx.session, ctx.community.id, [query.user_id])
        if query.user_id in names:
            return MemberRef(query.user_id, names[query.user_id])
    raise UserInputError("points/errors.j2", problem="unknown_member", given=query.text)


def _week_start(ctx: HandlerContext) -> datetime:
    start = period_start("week", ctx.now(), ctx.tz)
    assert start is not None
    return start


@router.command("points", params=[_OPTIONAL_MEMBER], fresh_activity=True)
async def show_points(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """A member's points, rank in the community and points this week (yours by default)."""
    who = await _member(ctx, ctx.args.member)
    place = await ledger.place_of(ctx.session, ctx.community.id, who.user_id)
    week = await ledger.total_since(ctx.session, ctx.community.id, who.user_id, _week_start(ctx))
    return ctx.render(
        "points/balance.j2",
        who=who,
        is_self=who.user_id == event.actor.user_id,
        place=place,
        week=week,
    )


@router.command(
    "leaderboard", params=[Param("period", Period(), required=False)], fresh_activity=True
)
async def show_leaderboard(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The top members this week (default), this month or of all time; and your own place."""
    period = ctx.args.period or "week"
    since = period_start(period, ctx.now(), ctx.tz)
    top = await ledger.leaderboard(ctx.session, ctx.community.id, since=since, limit=TOP)
    me = None
    # Members who opted out are left off the board; the caller is told why they're missing.
    hidden = await is_opted_out(
        ctx.session, ctx.community.id, ctx.community.platform, event.actor.user_id
    )
    if not hidden and event.actor.user_id not in {s.user_id for s in top}:
        me = await ledger.place_of(ctx.session, ctx.community.id, event.actor.user_id, since=since)
    return ctx.render(
        "points/leaderboard.j2",
        period=period,
        since=since,
        rows=top,
        me=me,
        actor_id=event.actor.user_id,
        opted_out=hidden,
    )


_ADJUST = [
    _MEMBER,
    Param("amount", PointsAmount()),
    # Optional to the parser only, so a missing reason gets the feature's own explanation.
    Param("reason", Text(label="reason", max_length=200), required=False),
]


@router.command("points give", params=_ADJUST, min_role=Role.MANAGER, fresh_activity=True)
async def give(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Give a member points, with a reason (recorded with your name)."""
    return await _adjust(event, ctx, PointsReason.GIVEN)


@router.command("points take", params=_ADJUST, min_role=Role.MANAGER, fresh_activity=True)
async def take(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Take points from a member, with a reason; never below zero."""
    return await _adjust(event, ctx, PointsReason.TAKEN)


async def _adjust(
    event: CommandEvent, ctx: HandlerContext, reason: PointsReason
) -> OutgoingMessage:
    who = await _member(ctx, ctx.args.member)
    amount: int = ctx.args.amount
    note = " ".join((ctx.args.reason or "").split())
    if not note:
        raise UserInputError("points/errors.j2", problem="no_reason")
    community_id = ctx.community.id
    if reason is PointsReason.TAKEN:
        await ledger.lock_balances(ctx.session, community_id)
        current = await ledger.balance(ctx.session, community_id, who.user_id)
        if current < amount:
            raise UserInputError(
                "points/errors.j2", problem="not_enough", who=who, balance=current, amount=amount
            )
    change = Award(
        who.user_id,
        who.display_name,
        amount if reason is PointsReason.GIVEN else -amount,
        reason,
        # The command's own message: a replayed update changes nothing the second time.
        ref=message_ref(event.chat.chat_id, event.key),
        actor_id=event.actor.user_id,
        note=note,
    )
    await ledger.award(ctx.session, community_id, change, now=ctx.now())
    return ctx.render(
        "points/adjusted.j2",
        action=reason.value,
        who=who,
        amount=amount,
        note=note,
        balance=await ledger.balance(ctx.session, community_id, who.user_id),
    )


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One line of /points history: a ledger row, or a day's message points folded together."""

    at: datetime
    amount: int
    reason: str
    subject: str | None = None
    note: str | None = None
    actor_id: str | None = None
    count: int = 1


_SUBJECT = re.compile(r"^[a-z_]+:(\d{1,20})$")


def fold_history(rows: Sequence[PointsEntry], tz: ZoneInfo, limit: int) -> list[HistoryItem]:
    """Newest first; consecutive message awards of one local day become one item."""
    items: list[HistoryItem] = []
    for row in rows:
        last = items[-1] if items else None
        if (
            last is not None
            and row.reason == last.reason == PointsReason.MESSAGE.value
            and row.at.astimezone(tz).date() == last.at.astimezone(tz).date()
        ):
            items[-1] = HistoryItem(
                last.at, last.amount + row.amount, last.reason, count=last.count + 1
            )
            continue
        if len(items) == limit:
            break
        m = _SUBJECT.match(row.ref)
        items.append(
            HistoryItem(
                row.at, row.amount, row.reason, m.group(1) if m else None, row.note, row.actor_id
            )
        )
    return items


@router.command("points history", params=[_OPTIONAL_MEMBER], fresh_activity=True)
async def show_history(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The latest changes of your points and why; managers may look at anyone's."""
    who = await _member(ctx, ctx.args.member)
    is_self = who.user_id == event.actor.user_id
    if not is_self:
        await _require_manager(ctx, "history_others")
    rows = await ledger.history(ctx.session, ctx.community.id, who.user_id, limit=HISTORY_ROWS)
    items = fold_history(rows, ctx.tz, HISTORY_ITEMS)
    actors = await names_of(
        ctx.session, ctx.community.platform, {i.actor_id for i in items if i.actor_id}
    )
    return ctx.render(
        "points/history.j2",
        who=who,
        is_self=is_self,
        items=items,
        actors=actors,
        balance=await ledger.balance(ctx.session, ctx.community.id, who.user_id),
    )


def _overrides(settings: dict | None) -> dict:
    stored = (settings or {}).get("points")
    return dict(stored) if isinstance(stored, dict) else {}


def _render_rules(ctx: HandlerContext, **values: object) -> OutgoingMessage:
    rules = points_rules(ctx.services.features, ctx.community.settings)
    base: PointsRules = ctx.services.features.get("points") or PointsRules()
    current = rules.model_dump()
    return ctx.render(
        "points/rules.j2",
        rules=current,
        overridden=[k for k, v in current.items() if v != getattr(base, k)],
        **values,
    )


@router.command(
    "points rules",
    params=[
        Param("name", Word(label="rule", max_length=64), required=False),
        Param("value", Word(label="value", max_length=20), required=False),
    ],
)
async def rules_command(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Show how points are earned here; managers change one: /points rules message 2."""
    name: str | None = ctx.args.name
    if name is None:
        return _render_rules(ctx, changed=None)
    await _require_manager(ctx, "rules_managers")
    key = name.lower().replace("-", "_")
    if key not in RULE_NAMES:
        raise UserInputError(
            "points/errors.j2", problem="unknown_rule", name=name, known=RULE_NAMES
        )
    raw: str | None = ctx.args.value
    if raw is None:
        raise UserInputError("points/errors.j2", problem="no_value", name=key)
    low, high = bounds(key)
    previous = getattr(points_rules(ctx.services.features, ctx.community.settings), key)
    overrides = _overrides(ctx.community.settings)
    if raw.lower() in RESET_WORDS:
        overrides.pop(key, None)
    elif re.fullmatch(r"\d{1,12}", raw) and low <= int(raw) <= high:
        overrides[key] = int(raw)
    else:
        raise UserInputError(
            "points/errors.j2", problem="rule_value", name=key, value=raw, minimum=low, maximum=high
        )
    # A new dict, so the JSON column is saved (see handlers/settings.py).
    settings = dict(ctx.community.settings or {})
    if overrides:
        settings["points"] = overrides
    else:
        settings.pop("points", None)
    ctx.community.settings = settings
    return _render_rules(ctx, changed=key, previous=previous)
