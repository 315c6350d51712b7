"""FAQ entries and the log of when each member was last answered from them.

Answering is rate limited by one conditional upsert on `faq_replies` (entry, member): it
writes only when the last answer is older than the cooldown, so two messages, two processes
or a restart can't answer the same member twice within it. The database decides.

Processes cache each community's FAQ in memory (`handlers.faq.cache`). Every change made
through this module marks its community in the session; once that session commits, the
community's `generation` goes up, and caches built from an older generation reload.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.db import dialect_insert
from storage.models import FaqEntry, FaqReply

ENTRIES = FaqEntry.__table__
REPLIES = FaqReply.__table__

# Limits that keep one community's FAQ quick to match and to list.
MAX_ENTRIES_PER_COMMUNITY = 500
MAX_QUESTION_LENGTH = 500  # the column's size
MAX_ANSWER_LENGTH = 1500  # leaves room for the reply's frame within Discord's 2,000

_CHANGED = "faq_changed_communities"
_generations: dict[int, int] = {}


def generation(community_id: int) -> int:
    """How many committed FAQ changes this process has seen for a community."""
    return _generations.get(community_id, 0)


def mark_changed(session: AsyncSession, community_id: int) -> None:
    """Make in-process caches of this community's FAQ reload once `session` commits (also
    for changes of its FAQ settings, which live on the community row)."""
    session.info.setdefault(_CHANGED, set()).add(community_id)


@event.listens_for(Session, "after_commit")
def _bump_generations(session: Session) -> None:
    for community_id in session.info.pop(_CHANGED, ()):
        _generations[community_id] = _generations.get(community_id, 0) + 1


@event.listens_for(Session, "after_rollback")
def _forget_changes(session: Session) -> None:
    session.info.pop(_CHANGED, None)


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
    mark_changed(session, community_id)
    return entry


async def get(session: AsyncSession, community_id: int, faq_id: int) -> FaqEntry | None:
    """An entry of this community (ids of other communities are not found)."""
    found = await session.get(FaqEntry, faq_id, populate_existing=True)
    return found if found is not None and found.community_id == community_id else None


async def listing(
    session: AsyncSession, community_id: int, *, offset: int = 0, limit: int | None = None
) -> list[FaqEntry]:
    """A community's entries, oldest first."""
    query = (
        select(FaqEntry)
        .where(FaqEntry.community_id == community_id)
        .order_by(FaqEntry.id)
        .offset(offset)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars().all())


async def count(session: AsyncSession, community_id: int) -> int:
    query = select(func.count()).select_from(ENTRIES).where(ENTRIES.c.community_id == community_id)
    return int((await session.execute(query)).scalar_one())


async def questions(session: AsyncSession, community_id: int) -> list[tuple[int, str]]:
    """`(id, question)` of every entry: all a matching index needs (answers stay in the db)."""
    query = (
        select(ENTRIES.c.id, ENTRIES.c.question)
        .where(ENTRIES.c.community_id == community_id)
        .order_by(ENTRIES.c.id)
    )
    return [(row.id, row.question) for row in await session.execute(query)]


async def remove(session: AsyncSession, community_id: int, faq_id: int) -> bool:
    """Delete an entry and its reply log; False when this community has no such entry."""
    await session.execute(delete(REPLIES).where(REPLIES.c.faq_id == faq_id))
    result: Any = await session.execute(
        delete(ENTRIES).where(ENTRIES.c.id == faq_id, ENTRIES.c.community_id == community_id)
    )
    if result.rowcount:
        mark_changed(session, community_id)
    return bool(result.rowcount)


async def claim_reply(
    session: AsyncSession, faq_id: int, user_id: str, *, now: datetime, cooldown: timedelta
) -> bool:
    """Record that `user_id` is answered from `faq_id` now, unless they were within
    `cooldown`; True when this caller may answer. One statement, so it is race-free."""
    insert = dialect_insert(session)(REPLIES).values(
        faq_id=faq_id, user_id=user_id, answered_at=now
    )
    stmt = insert.on_conflict_do_update(
        index_elements=[REPLIES.c.faq_id, REPLIES.c.user_id],
        set_={"answered_at": insert.excluded.answered_at},
        where=REPLIES.c.answered_at <= now - cooldown,
    ).returning(REPLIES.c.faq_id)
    return (await session.execute(stmt)).first() is not None


async def last_answered(session: AsyncSession, faq_id: int, user_id: str) -> datetime | None:
    """When `user_id` was last answered from `faq_id`, if ever."""
    query = select(REPLIES.c.answered_at).where(
        REPLIES.c.faq_id == faq_id, REPLIES.c.user_id == user_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def count_hit(session: AsyncSession, faq_id: int) -> None:
    """One more automatic answer from this entry (in the database, not read-modify-write)."""
    await session.execute(
        update(ENTRIES).where(ENTRIES.c.id == faq_id).values(hits=ENTRIES.c.hits + 1)
    )
