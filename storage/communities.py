"""Community repository: find or create a community and change its settings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.activity import CommunityDefaults
from storage.db import dialect_insert
from storage.models import Chat, Community


async def ensure_community(
    session: AsyncSession,
    *,
    platform: str,
    external_id: str,
    title: str | None,
    defaults: CommunityDefaults,
    now: datetime,
) -> Community:
    """The community for a platform id, created with the defaults on first sight."""
    query = select(Community).where(
        Community.platform == platform, Community.external_id == external_id
    )
    community = (await session.execute(query)).scalar_one_or_none()
    if community is None:
        insert = dialect_insert(session)
        # The activity writer may create the same row concurrently; let either win.
        await session.execute(
            insert(Community)
            .values(
                platform=platform,
                external_id=external_id,
                title=(title or "")[:256] or None,
                timezone=defaults.timezone,
                locale=defaults.locale,
                settings={},
                created_at=now,
            )
            .on_conflict_do_nothing()
        )
        community = (await session.execute(query)).scalar_one()
    elif title and community.title != title[:256]:
        community.title = title[:256]
    return community


async def rekey_community(session: AsyncSession, platform: str, old: str, new: str) -> bool:
    """Move a community (and its chat) to a new platform id, keeping its history.

    Telegram gives a group a new id when it becomes a supergroup. Returns False when
    there is nothing to move or the new id is already a community of its own.
    """
    existing = await session.execute(
        select(Community.id).where(Community.platform == platform, Community.external_id == new)
    )
    if existing.scalar_one_or_none() is not None:
        return False
    found = await session.execute(
        select(Community.id).where(Community.platform == platform, Community.external_id == old)
    )
    community_id = found.scalar_one_or_none()
    if community_id is None:
        return False
    await session.execute(
        update(Community).where(Community.id == community_id).values(external_id=new)
    )
    await session.execute(
        update(Chat)
        .where(Chat.community_id == community_id, Chat.external_id == old)
        .values(external_id=new)
    )
    return True
