"""Linked communities: `/link`, `/unlink`, and the combined figures of the summary.

A community that spans a Telegram group and a Discord server is linked by its managers:

- `/link` in one community answers (privately where the platform can) with a one-time
  code valid for `CODE_TTL`. The code is stateless: the community id, the expiry and an
  HMAC of both under an install secret, so any instance, before or after a restart, can
  check it, and nothing has to be cleaned up.
- `/link <code>` by a manager of a community on the *other* platform links the two (both
  sides' manager rights were verified with their platform by the dispatcher: the first
  when the code was made, the second now). Refused: a forged or expired code, the same
  community, the same platform, a side that is already linked.
- `/link` in a linked community shows what it is linked with; `/unlink` on either side
  removes the link on both.

The link lives in `settings["link"]` of both communities (`storage.links`). The summary
shows a "combined" block for a linked community (`combined`): the headline figures of both
sides summed, stickiness and engagement recomputed from the sums. Accounts can't be matched
across platforms, so a person active on both counts twice; the block says so.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.analytics.metrics import CommunityMetrics, daily_metrics, weekly_metrics
from handlers.core.args import Param, Word
from handlers.core.context import HandlerContext
from handlers.core.errors import UserInputError
from handlers.core.events import CommandEvent
from handlers.core.outgoing import OutgoingMessage
from storage import links as store
from storage.models import Community
from storage.secrets import install_secret

CODE_TTL = timedelta(minutes=15)
SECRET_NAME = "community-link"
_MAC_CHARS = 16
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
# How platforms are named, and in which order a combined title lists them.
PLATFORM_NAMES = {"telegram": "Telegram", "discord": "Discord", "console": "Console"}
_ORDER = ("telegram", "discord", "console")

LINK_PARAMS = [Param("code", Word(label="code", max_length=60), required=False)]


# --- the one-time code ----------------------------------------------------------------------


def _base36(number: int) -> str:
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = _DIGITS[digit] + out
        if number == 0:
            return out


def _mac(key: bytes, community: str, stamp: str) -> str:
    message = f"link:{community}:{stamp}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:_MAC_CHARS]


def make_code(key: bytes, community_id: int, now: datetime) -> str:
    """A code naming the community, valid for `CODE_TTL` from `now`."""
    community = _base36(community_id)
    stamp = _base36(int((now + CODE_TTL).timestamp()))
    return f"{community}-{stamp}-{_mac(key, community, stamp)}"


class CodeProblem(Exception):
    """Why a code was refused: "bad_code" (forged, mistyped) or "expired"."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def read_code(key: bytes, code: str, now: datetime) -> int:
    """The community id a genuine, unexpired code names; CodeProblem otherwise."""
    parts = code.strip().lower().split("-")
    if len(parts) != 3 or not all(parts):
        raise CodeProblem("bad_code")
    community, stamp, mac = parts
    if len(community) > 13 or len(stamp) > 13 or any(c not in _DIGITS for c in community + stamp):
        raise CodeProblem("bad_code")
    if not hmac.compare_digest(mac, _mac(key, community, stamp)):
        raise CodeProblem("bad_code")
    if now >= datetime.fromtimestamp(int(stamp, 36), UTC):
        raise CodeProblem("expired")
    return int(community, 36)


# --- commands (registered on the analytics router by handlers.analytics.commands) ----------


def platform_name(platform: str) -> str:
    return PLATFORM_NAMES.get(platform, platform.capitalize())


def _refuse(problem: str, **values: object) -> UserInputError:
    return UserInputError("analytics/link_errors.j2", problem=problem, **values)


async def link(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """`/link`: a code to link with the other platform, or what this community is linked
    with; `/link <code>`: link with the community that made the code."""
    code: str | None = ctx.args.code
    current = await store.linked_community(ctx.session, ctx.community)
    if code is None:
        if current is not None:
            return _linked_reply(ctx, current, "shown")
        key = await install_secret(ctx.session, SECRET_NAME, now=ctx.now())
        return ctx.render(
            "analytics/link.j2",
            state="code",
            code=make_code(key, ctx.community.id, ctx.now()),
            minutes=int(CODE_TTL.total_seconds() // 60),
            private=True,
        )
    key = await install_secret(ctx.session, SECRET_NAME, now=ctx.now())
    try:
        other_id = read_code(key, code, ctx.now())
    except CodeProblem as exc:
        raise _refuse(exc.problem) from None
    if other_id == ctx.community.id:
        raise _refuse("same_community")
    # Both rows locked (in id order: no deadlock) so two links can't cross.
    first, second = sorted((ctx.community.id, other_id))
    await store.load(ctx.session, first, lock=True)
    await store.load(ctx.session, second, lock=True)
    other = await store.load(ctx.session, other_id)
    if other is None or other.removed_at is not None:
        raise _refuse("bad_code")
    if other.platform == ctx.community.platform:
        raise _refuse("same_platform", platform=platform_name(other.platform))
    if current is not None:
        raise _refuse("already_linked", title=_title(current))
    if await store.linked_community(ctx.session, other) is not None:
        raise _refuse("other_linked", title=_title(other))
    store.link(ctx.community, other, ctx.now())
    return _linked_reply(ctx, other, "linked")


async def unlink(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """`/unlink`: remove the link on both sides."""
    if store.link_of(ctx.community) is None:
        raise _refuse("not_linked")
    other = await store.unlink(ctx.session, ctx.community)
    return ctx.render(
        "analytics/link.j2",
        state="unlinked",
        other_title=_title(other) if other is not None else None,
        other_platform=platform_name(other.platform) if other is not None else None,
    )


def _title(community: Community) -> str:
    return community.title or f"#{community.external_id}"


def _linked_reply(ctx: HandlerContext, other: Community, state: str) -> OutgoingMessage:
    mine = store.link_of(ctx.community)
    return ctx.render(
        "analytics/link.j2",
        state=state,
        other_title=_title(other),
        other_platform=platform_name(other.platform),
        since=mine.since[:10] if mine is not None else "",
    )


# --- the combined figures -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Combined:
    """Both sides' headline figures summed (a person on both platforms counts twice)."""

    platforms: tuple[str, ...]  # display names, e.g. ("Telegram", "Discord")
    other_title: str
    messages: int
    active_members: int
    joins: int
    leaves: int
    replies: int
    reactions: int
    member_count: int | None  # None unless both sides' counts are known
    dau: int
    mau: int

    @property
    def net_growth(self) -> int:
        return self.joins - self.leaves

    @property
    def interactions(self) -> int:
        return self.replies + self.reactions

    @property
    def stickiness(self) -> float | None:
        """Summed DAU / summed MAU."""
        return self.dau / self.mau if self.mau else None

    @property
    def engagement_rate(self) -> float | None:
        """Summed active members / summed member count."""
        return self.active_members / self.member_count if self.member_count else None

    @property
    def title(self) -> str:
        return " + ".join(self.platforms)


def combine(
    community: Community, mine: CommunityMetrics, other: Community, theirs: CommunityMetrics
) -> Combined:
    """Sum two communities' metrics of the same period."""
    sides = sorted(
        [community.platform, other.platform],
        key=lambda p: _ORDER.index(p) if p in _ORDER else len(_ORDER),
    )
    counts = (mine.member_count.value, theirs.member_count.value)
    return Combined(
        platforms=tuple(platform_name(p) for p in sides),
        other_title=_title(other),
        messages=mine.messages + theirs.messages,
        active_members=mine.active_members + theirs.active_members,
        joins=mine.joins + theirs.joins,
        leaves=mine.leaves + theirs.leaves,
        replies=mine.replies + theirs.replies,
        reactions=mine.reactions + theirs.reactions,
        member_count=None if None in counts else sum(c for c in counts if c is not None),
        dau=mine.dau + theirs.dau,
        mau=mine.mau + theirs.mau,
    )


async def combined(
    session: AsyncSession,
    community: Community,
    metrics: CommunityMetrics,
    *,
    weekly: bool,
    day: date,
    now: datetime,
) -> Combined | None:
    """The combined figures of a linked community for the summary of `day` (the other side
    read for the same local dates in its own zone, with its recorded member count); None
    when the community isn't linked."""
    other = await store.linked_community(session, community)
    if other is None:
        return None
    read = weekly_metrics if weekly else daily_metrics
    theirs = await read(session, other, day, now=now)
    return combine(community, metrics, other, theirs)
