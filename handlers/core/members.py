"""Naming a member in a command: `@username`, a platform mention, or a platform id.

`MemberArg` only reads what was typed (it needs no database); `find_member` then looks for
that member among the members the bot has seen in this community.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.args import ParseEnv, Token
from handlers.core.errors import BadArgument
from storage.models import Member, Membership

# Discord `<@123>` / `<@!123>`, Telegram `tg://user?id=123`, the neutral `[name](mention:123)`.
_MENTIONS = (
    re.compile(r"<@!?(\d{1,25})>"),
    re.compile(r"tg://user\?id=(\d{1,25})"),
    re.compile(r"\[[^\]]*\]\(mention:([0-9A-Za-z_.-]{1,64})\)"),
)
_USERNAME = re.compile(r"@?([\w.-]{1,64})")


@dataclass(frozen=True, slots=True)
class MemberQuery:
    """Who a command argument names: by platform id, by username, or either (a bare word)."""

    text: str
    user_id: str | None = None
    username: str | None = None


def parse_member(text: str) -> MemberQuery:
    """Read a member argument; anything unrecognisable names nobody (found by no lookup)."""
    raw = text.strip()
    for pattern in _MENTIONS:
        m = pattern.fullmatch(raw)
        if m:
            return MemberQuery(raw, user_id=m.group(1))
    m = _USERNAME.fullmatch(raw)
    if m is None:
        return MemberQuery(raw)
    if raw.startswith("@"):
        return MemberQuery(raw, username=m.group(1))
    if raw.isdigit():
        return MemberQuery(raw, user_id=raw)
    # A bare word: an id on platforms whose ids are words (the console), else a username.
    return MemberQuery(raw, user_id=raw, username=raw)


@dataclass(frozen=True, slots=True)
class MemberArg:
    """A converter for `Param`: one token naming a member."""

    label: str = "member"

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[MemberQuery, int]:
        value = tokens[i].value
        if not value.strip():
            raise BadArgument("empty", label=self.label)
        return parse_member(value), 1


@dataclass(frozen=True, slots=True)
class MemberRef:
    """A member of a community as stored: platform id and current names."""

    user_id: str
    display_name: str
    username: str | None = None


async def find_member(
    session: AsyncSession, community_id: int, platform: str, query: MemberQuery
) -> MemberRef | None:
    """The member a query names among this community's members: an exact id first, then
    the most recently active holder of the username (usernames change hands)."""
    conditions = []
    if query.user_id is not None:
        conditions.append(Member.external_id == query.user_id)
    if query.username is not None:
        conditions.append(func.lower(Member.username) == query.username.lower())
    if not conditions:
        return None
    exact = Member.external_id == query.user_id if query.user_id is not None else None
    order = [case((exact, 0), else_=1)] if exact is not None else []
    row = (
        await session.execute(
            select(Member.external_id, Member.display_name, Member.username)
            .join(Membership, Membership.member_id == Member.id)
            .where(
                Membership.community_id == community_id,
                Member.platform == platform,
                or_(*conditions),
            )
            .order_by(*order, Membership.last_seen_at.desc())
            .limit(1)
        )
    ).one_or_none()
    return MemberRef(*row) if row is not None else None


async def names_of(session: AsyncSession, platform: str, user_ids: Iterable[str]) -> dict[str, str]:
    """Current display names of members by platform id (those the bot has seen)."""
    ids = list(set(user_ids))
    if not ids:
        return {}
    query = select(Member.external_id, Member.display_name).where(
        Member.platform == platform, Member.external_id.in_(ids)
    )
    return dict((await session.execute(query)).all())
