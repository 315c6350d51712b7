"""`/mydata`: everything stored about a member in one community, as a JSON document."""

from __future__ import annotations

import json
import re
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.events import UserRef
from handlers.core.outgoing import Document
from storage import privacy as store
from storage.models import Community

FORMAT = "commops-mydata/1"
MIME_TYPE = "application/json"


def filename_for(community: Community) -> str:
    """`commops-mydata-<community>.json`, safe as a file name on every platform."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", community.external_id).strip("_-") or "community"
    return f"commops-mydata-{slug[:64]}.json"


async def export_document(
    session: AsyncSession,
    community: Community,
    actor: UserRef,
    *,
    now: datetime,
    retention_days: int,
) -> Document:
    """The member's data in this community: their account, membership, activity (times and
    kinds), rollups, points, entries, votes, answers, questions and FAQ replies, plus the
    rows where they acted as a manager; every table that can name a member has its key."""
    who = await store.subject(session, community, actor.user_id)
    tables = await store.export_rows(session, who)
    document = {
        "format": FORMAT,
        "generated_at": now.isoformat(),
        "community": {
            "platform": community.platform,
            "id": community.external_id,
            "title": community.title,
        },
        "member": {
            "user_id": actor.user_id,
            "display_name": actor.display_name,
            "username": actor.username,
        },
        "retention": {
            # null: this install keeps raw activity for good.
            "raw_activity_days": retention_days or None,
            "daily_rollups": "kept",
            "message_text": "never stored",
        },
        "opted_out": await store.is_opted_out(
            session, community.id, community.platform, actor.user_id
        ),
        "privacy_notice_sent_at": _iso(
            await store.notice_sent_at(session, community.id, actor.user_id)
        ),
        "tables": tables,
    }
    content = json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
    return Document(content.encode("utf-8"), filename_for(community), MIME_TYPE)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
