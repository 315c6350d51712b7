"""Linked communities: a Telegram group and a Discord server reported together.

No table of its own: each side keeps `settings["link"]`, a dict with a random `group` id
shared by both sides and the other side's `community_id`, `platform`, `external_id`,
`title` and `since` (ISO time). A link counts only when both sides point at each other
with the same group id, so a half-written or stale entry is simply ignored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Community

LINK_KEY = "link"


@dataclass(frozen=True, slots=True)
class Link:
    """One side's view of its link."""

    group: str
    community_id: int
    platform: str
    external_id: str
    title: str | None
    since: str


def link_of(community: Community) -> Link | None:
    """The link this community's settings record (not checked against the other side)."""
    raw: Any = (community.settings or {}).get(LINK_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        return Link(
            group=str(raw["group"]),
            community_id=int(raw["community_id"]),
            platform=str(raw["platform"]),
            external_id=str(raw["external_id"]),
            title=raw.get("title") or None,
            since=str(raw.get("since") or ""),
        )
    except (KeyError, TypeError, ValueError):
        return None


async def load(session: AsyncSession, community_id: int, *, lock: bool = False) -> Community | None:
    """A community by id; `lock` takes a row lock on PostgreSQL so two links can't race."""
    return await session.get(Community, community_id, with_for_update=lock or None)


async def linked_community(session: AsyncSession, community: Community) -> Community | None:
    """The other side of a mutual link, or None (no link, a stale one, or the other side
    was removed)."""
    mine = link_of(community)
    if mine is None:
        return None
    other = await load(session, mine.community_id)
    if other is None or other.removed_at is not None:
        return None
    theirs = link_of(other)
    if theirs is None or theirs.group != mine.group or theirs.community_id != community.id:
        return None
    return other


def _set(community: Community, value: dict[str, Any] | None) -> None:
    # A new dict, so SQLAlchemy sees the JSON column change.
    settings = dict(community.settings or {})
    if value is None:
        settings.pop(LINK_KEY, None)
    else:
        settings[LINK_KEY] = value
    community.settings = settings


def _entry(group: str, other: Community, now: datetime) -> dict[str, Any]:
    return {
        "group": group,
        "community_id": other.id,
        "platform": other.platform,
        "external_id": other.external_id,
        "title": other.title,
        "since": now.isoformat(),
    }


def link(first: Community, second: Community, now: datetime) -> str:
    """Point both communities at each other under a new group id; returns that id."""
    group = secrets.token_hex(8)
    _set(first, _entry(group, second, now))
    _set(second, _entry(group, first, now))
    return group


async def unlink(session: AsyncSession, community: Community) -> Community | None:
    """Remove the link on this side and, when it points back, on the other; returns the
    other side if it was unlinked too."""
    mine = link_of(community)
    _set(community, None)
    if mine is None:
        return None
    other = await load(session, mine.community_id, lock=True)
    if other is None:
        return None
    theirs = link_of(other)
    if theirs is not None and theirs.community_id == community.id:
        _set(other, None)
        return other
    return None
