"""Scheduled posts repository: posts, their saved templates and the audit trail.

Repositories take the session and never commit. `advance` is the one place a post's
`next_run_at` moves on: a conditional UPDATE, so of two instances that fired the same
occurrence only one moves it (and schedules the next timer).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Community, PostAudit, PostTemplate, ScheduledPost

# How many posts one community may keep planned (active, paused or pending).
MAX_POSTS_PER_COMMUNITY = 500
MAX_TEMPLATES_PER_COMMUNITY = 200


class PostStatus(StrEnum):
    PENDING = "pending"  # waits for another manager's approval
    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"  # a one-off that ran, or a schedule with no runs left
    DELETED = "deleted"


LIVE = (PostStatus.PENDING, PostStatus.ACTIVE, PostStatus.PAUSED)


async def get(
    session: AsyncSession, community_id: int, post_id: int, *, deleted: bool = False
) -> ScheduledPost | None:
    """A post of this community; deleted ones only when asked for (`/post restore`)."""
    query = select(ScheduledPost).where(
        ScheduledPost.id == post_id, ScheduledPost.community_id == community_id
    )
    if not deleted:
        query = query.where(ScheduledPost.status != PostStatus.DELETED)
    return (await session.execute(query)).scalar_one_or_none()


async def by_id(session: AsyncSession, post_id: int) -> ScheduledPost | None:
    return await session.get(ScheduledPost, post_id)


# Built once: a statement object memoizes its cache key, so a firing skips building and
# hashing it again (most of SQLAlchemy's cost per statement on this path).
_WITH_COMMUNITY = (
    select(ScheduledPost, Community)
    .join(Community, Community.id == ScheduledPost.community_id)
    .where(ScheduledPost.id == bindparam("p_post"))
)
_POSTS = ScheduledPost.__table__
_SET_OUTCOME = (
    update(_POSTS).where(_POSTS.c.id == bindparam("p_post")).values(last_outcome=bindparam("p_out"))
)


async def with_community(
    session: AsyncSession, post_id: int
) -> tuple[ScheduledPost, Community] | None:
    """A post and its community in one round trip (a firing needs both)."""
    row = (await session.execute(_WITH_COMMUNITY, {"p_post": post_id})).first()
    return (row[0], row[1]) if row is not None else None


_WITH_COMMUNITIES = (
    select(ScheduledPost, Community)
    .join(Community, Community.id == ScheduledPost.community_id)
    .where(ScheduledPost.id.in_(bindparam("p_posts", expanding=True)))
)


async def with_communities(
    session: AsyncSession, post_ids: list[int]
) -> dict[int, tuple[ScheduledPost, Community]]:
    """Posts and their communities in one round trip, by post id (a batch of firings)."""
    rows = await session.execute(_WITH_COMMUNITIES, {"p_posts": post_ids})
    return {post.id: (post, community) for post, community in rows}


async def live_count(session: AsyncSession, community_id: int) -> int:
    query = select(func.count()).where(
        ScheduledPost.community_id == community_id, ScheduledPost.status.in_(LIVE)
    )
    return int((await session.execute(query)).scalar_one())


async def listing(
    session: AsyncSession, community_id: int, *, limit: int = 50
) -> list[ScheduledPost]:
    """Planned posts first (soonest next run first), then paused and pending ones."""
    query = (
        select(ScheduledPost)
        .where(ScheduledPost.community_id == community_id, ScheduledPost.status.in_(LIVE))
        .order_by(ScheduledPost.next_run_at.is_(None), ScheduledPost.next_run_at, ScheduledPost.id)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars().all())


async def overdue(session: AsyncSession, *, now: datetime) -> list[tuple[int, datetime]]:
    """Active posts whose next run is already past (the bot was away, a timer was lost)."""
    query = (
        select(ScheduledPost.id, ScheduledPost.next_run_at)
        .where(ScheduledPost.status == PostStatus.ACTIVE, ScheduledPost.next_run_at <= now)
        .order_by(ScheduledPost.next_run_at)
    )
    return [(row.id, row.next_run_at) for row in await session.execute(query)]


@cache
def _advance_statement(ran_at: bool, ran: bool, done: bool) -> Any:
    """The conditional UPDATE of `advance`, one per shape, built once."""
    values: dict[str, object] = {
        "next_run_at": bindparam("p_next"), "last_outcome": bindparam("p_out")
    }  # fmt: skip
    if ran_at:
        values["last_run_at"] = bindparam("p_ran_at")
    if ran:
        values["runs"] = _POSTS.c.runs + 1
    if done:
        values["status"] = PostStatus.DONE.value
    return (
        update(_POSTS)
        .where(
            _POSTS.c.id == bindparam("p_post"),
            _POSTS.c.next_run_at == bindparam("p_due"),
            _POSTS.c.status == PostStatus.ACTIVE.value,
        )
        .values(**values)
    )


async def advance(
    session: AsyncSession,
    post_id: int,
    *,
    due: datetime,
    next_run: datetime | None,
    ran_at: datetime | None,
    outcome: str,
    ran: bool,
) -> bool:
    """Move the post from the occurrence `due` to `next_run`; False if someone else did."""
    statement = _advance_statement(ran_at is not None, ran, next_run is None)
    params = {"p_post": post_id, "p_due": due, "p_next": next_run, "p_out": outcome}
    if ran_at is not None:
        params["p_ran_at"] = ran_at
    result = await session.execute(statement, params)
    return result.rowcount == 1  # type: ignore[attr-defined]


async def set_outcome(session: AsyncSession, post_id: int, outcome: str) -> None:
    """Record how the latest run ended once its (retried) send finished."""
    await session.execute(_SET_OUTCOME, {"p_post": post_id, "p_out": outcome})


async def set_outcomes(session: AsyncSession, post_ids: list[int], outcome: str) -> None:
    """`set_outcome` for several posts in one statement (executemany)."""
    if post_ids:
        await session.execute(_SET_OUTCOME, [{"p_post": i, "p_out": outcome} for i in post_ids])


# --- templates -----------------------------------------------------------------------------


async def template(session: AsyncSession, community_id: int, name: str) -> PostTemplate | None:
    return await session.get(PostTemplate, (community_id, name))


async def templates(session: AsyncSession, community_id: int) -> list[PostTemplate]:
    query = (
        select(PostTemplate)
        .where(PostTemplate.community_id == community_id)
        .order_by(PostTemplate.name)
        .limit(MAX_TEMPLATES_PER_COMMUNITY)
    )
    return list((await session.execute(query)).scalars().all())


async def template_count(session: AsyncSession, community_id: int) -> int:
    query = select(func.count()).where(PostTemplate.community_id == community_id)
    return int((await session.execute(query)).scalar_one())


async def posts_using(session: AsyncSession, community_id: int, name: str) -> list[int]:
    query = select(ScheduledPost.id).where(
        ScheduledPost.community_id == community_id,
        ScheduledPost.template_name == name,
        ScheduledPost.status.in_(LIVE),
    )
    return list((await session.execute(query)).scalars().all())


async def delete_template(session: AsyncSession, community_id: int, name: str) -> bool:
    result = await session.execute(
        delete(PostTemplate).where(
            PostTemplate.community_id == community_id, PostTemplate.name == name
        )
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


# --- audit ---------------------------------------------------------------------------------


def audit(
    session: AsyncSession,
    community_id: int,
    post_id: int | None,
    action: str,
    *,
    at: datetime,
    actor_id: str | None = None,
    actor_name: str | None = None,
    detail: str | None = None,
) -> None:
    """Add one audit row to the unit of work."""
    session.add(
        PostAudit(
            community_id=community_id,
            post_id=post_id,
            action=action[:32],
            actor_id=actor_id,
            actor_name=(actor_name or "")[:256] or None,
            at=at,
            detail=(detail or "")[:512] or None,
        )
    )


async def audit_trail(
    session: AsyncSession, post_id: int, *, limit: int = 10
) -> Sequence[PostAudit]:
    """The latest audit rows of one post, newest first."""
    query = (
        select(PostAudit)
        .where(PostAudit.post_id == post_id)
        .order_by(PostAudit.at.desc(), PostAudit.id.desc())
        .limit(limit)
    )
    return (await session.execute(query)).scalars().all()
