"""Community repository: find or create a community and change its settings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.activity import CommunityDefaults
from storage.models import Community


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
        insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
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


async def get_community(session: AsyncSession, community_id: int) -> Community | None:
    return await session.get(Community, community_id)
