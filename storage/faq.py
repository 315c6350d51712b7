"""FAQ entries and the log of when each member was last answered from them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import FaqEntry


async def add(
    session: AsyncSession,
    community_id: int,
    *,
    question: str,
    answer: str,
    created_by: str,
    now: datetime,
    source_question_id: int | None = None,
) -> FaqEntry:
    """A new FAQ entry in the caller's transaction (flushed, so its id is known)."""
    entry = FaqEntry(
        community_id=community_id,
        question=question,
        answer=answer,
        hits=0,
        source_question_id=source_question_id,
        created_by=created_by,
        created_at=now,
    )
    session.add(entry)
    await session.flush()
    return entry
