"""Poll rows: one current vote per member, a close that happens exactly once.

Every state change is one conditional statement, so a vote racing the close, two
processes closing at once, or two sweeps posting the result cannot both win: the
database decides. A vote first "touches" its open poll row (an UPDATE that matches only
while the poll is open); on PostgreSQL that row lock orders it against the close, so no
vote lands after the close committed, and SQLite serializes writers anyway.

Posting the result takes a short lease (`result_lease_until`); the sweep takes over a
result whose lease ran out without a message id (the poster died or the platform failed).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert, transition
from storage.models import Community, Poll, PollVote

POLLS = Poll.__table__
VOTES = PollVote.__table__


class PollStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def _result_pending(now: datetime) -> ColumnElement[bool]:
    """Closed polls whose result is not posted and nobody holds a live lease on."""
    return and_(
        POLLS.c.status == PollStatus.CLOSED.value,
        POLLS.c.result_message_id.is_(None),
        or_(POLLS.c.result_lease_until.is_(None), POLLS.c.result_lease_until <= now),
    )


async def get(session: AsyncSession, community_id: int, poll_id: int) -> Poll | None:
    """A poll of this community (ids of other communities are not found)."""
    found = await session.get(Poll, poll_id, populate_existing=True)
    return found if found is not None and found.community_id == community_id else None


async def by_id(session: AsyncSession, poll_id: int) -> Poll | None:
    return await session.get(Poll, poll_id, populate_existing=True)


# Built once: a statement object memoizes its cache key, so the scheduler's jobs skip
# building and hashing it again (most of SQLAlchemy's cost per statement on their path).
_WITH_COMMUNITY = (
    select(Poll, Community)
    .join(Community, Community.id == Poll.community_id)
    .where(Poll.id == bindparam("p_id"))
    .execution_options(populate_existing=True)
)
_RECORD_RESULT = (
    update(POLLS)
    .where(POLLS.c.id == bindparam("p_id"))
    .values(result_message_id=bindparam("p_msg"), result_lease_until=None)
)


async def with_community(session: AsyncSession, poll_id: int) -> tuple[Poll, Community] | None:
    """A poll and its community in one round trip, as they stand now."""
    row = (await session.execute(_WITH_COMMUNITY, {"p_id": poll_id})).first()
    return (row[0], row[1]) if row is not None else None


async def by_native(session: AsyncSession, community_id: int, native_poll_id: str) -> Poll | None:
    """The poll a platform poll id belongs to, within one community."""
    query = select(Poll).where(
        Poll.community_id == community_id, Poll.native_poll_id == native_poll_id
    )
    return (await session.execute(query)).scalars().first()


async def hold_open(session: AsyncSession, poll_id: int) -> bool:
    """Lock an open poll's row for this transaction (a vote is about to be written); False
    when it is closed. Closing waits for the lock, so the vote is counted or refused whole."""
    touched = (
        await session.execute(
            update(POLLS)
            .where(POLLS.c.id == poll_id, POLLS.c.status == PollStatus.OPEN.value)
            .values(status=POLLS.c.status)
            .returning(POLLS.c.id)
        )
    ).scalar_one_or_none()
    return touched is not None


async def vote_of(session: AsyncSession, poll_id: int, user_id: str) -> list[int] | None:
    """A member's current choice (option positions), or None when they have not voted."""
    found = await session.scalar(
        select(VOTES.c.option_ids).where(VOTES.c.poll_id == poll_id, VOTES.c.user_id == user_id)
    )
    return list(found) if found is not None else None


async def set_vote(
    session: AsyncSession,
    poll_id: int,
    *,
    user_id: str,
    display_name: str,
    option_ids: Sequence[int],
    now: datetime,
) -> None:
    """Replace a member's choice with `option_ids` (at least one), or record their first."""
    values = {
        "poll_id": poll_id,
        "user_id": user_id,
        "display_name": display_name[:256],
        "option_ids": sorted(set(option_ids)),
        "voted_at": now,
    }
    insert = dialect_insert(session)(VOTES).values(**values)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[VOTES.c.poll_id, VOTES.c.user_id],
            set_={
                "display_name": insert.excluded.display_name,
                "option_ids": insert.excluded.option_ids,
                "voted_at": insert.excluded.voted_at,
            },
        )
    )


async def remove_vote(session: AsyncSession, poll_id: int, user_id: str) -> bool:
    """Forget a member's vote (they retracted it); False when there was none."""
    gone = await session.execute(
        delete(VOTES)
        .where(VOTES.c.poll_id == poll_id, VOTES.c.user_id == user_id)
        .returning(VOTES.c.user_id)
    )
    return gone.scalar_one_or_none() is not None


async def choices(session: AsyncSession, poll_id: int) -> list[list[int]]:
    """Every member's current choice (who chose is not needed to count)."""
    rows = await session.execute(select(VOTES.c.option_ids).where(VOTES.c.poll_id == poll_id))
    return [list(row[0] or []) for row in rows]


async def voter_counts(session: AsyncSession, poll_ids: Sequence[int]) -> dict[int, int]:
    """How many members voted in each poll (for listings)."""
    if not poll_ids:
        return {}
    rows = await session.execute(
        select(VOTES.c.poll_id, func.count())
        .where(VOTES.c.poll_id.in_(list(poll_ids)))
        .group_by(VOTES.c.poll_id)
    )
    return {row[0]: int(row[1]) for row in rows}


async def set_native_totals(
    session: AsyncSession, poll_id: int, totals: Sequence[int], voters: int
) -> bool:
    """Keep the platform's counts of an open poll: `[count per option…, voters]`."""
    done = await session.execute(
        update(POLLS)
        .where(POLLS.c.id == poll_id, POLLS.c.status == PollStatus.OPEN.value)
        .values(native_totals=[*(int(t) for t in totals), int(voters)])
        .returning(POLLS.c.id)
    )
    return done.scalar_one_or_none() is not None


async def claim_close(
    session: AsyncSession,
    poll_id: int,
    *,
    now: datetime,
    by: str | None = None,
    early: bool = False,
    lease: timedelta | None = None,
) -> bool:
    """Move an open poll to closed; True for exactly one caller. Votes stop here.

    Without `early` only a poll whose close time has come is closed (the timer's claim).
    With `lease` the closer also takes the result lease (see `take_result_lease`) in the
    same statement, to post the result without another transaction.
    """
    conditions = [POLLS.c.status == PollStatus.OPEN.value]
    if not early:
        conditions += [POLLS.c.closes_at.is_not(None), POLLS.c.closes_at <= now]
    values: dict[str, object] = {
        "status": PollStatus.CLOSED.value, "closed_at": now, "closed_by": by
    }  # fmt: skip
    if lease is not None:
        values["result_lease_until"] = now + lease
    return await transition(session, POLLS, poll_id, *conditions, **values)


async def take_result_lease(
    session: AsyncSession, poll_id: int, *, now: datetime, lease: timedelta
) -> bool:
    """The right to post a closed poll's result for `lease`; one holder at a time."""
    got = (
        await session.execute(
            update(POLLS)
            .where(POLLS.c.id == poll_id, _result_pending(now))
            .values(result_lease_until=now + lease)
            .returning(POLLS.c.id)
        )
    ).scalar_one_or_none()
    return got is not None


async def record_result(session: AsyncSession, poll_id: int, message_id: str) -> None:
    """The result is posted: its message id ends the lease for good."""
    await session.execute(_RECORD_RESULT, {"p_id": poll_id, "p_msg": message_id})


async def record_results(session: AsyncSession, posted: list[tuple[int, str]]) -> None:
    """`record_result` for several polls in one statement (executemany)."""
    if posted:
        params = [{"p_id": poll_id, "p_msg": message_id} for poll_id, message_id in posted]
        await session.execute(_RECORD_RESULT, params)


async def needing_attention(session: AsyncSession, *, now: datetime) -> list[int]:
    """Polls past their close time that are still open, or closed without a posted result."""
    rows = await session.execute(
        select(POLLS.c.id)
        .where(
            or_(
                and_(
                    POLLS.c.status == PollStatus.OPEN.value,
                    POLLS.c.closes_at.is_not(None),
                    POLLS.c.closes_at <= now,
                ),
                _result_pending(now),
            )
        )
        .order_by(POLLS.c.id)
    )
    return [row[0] for row in rows]


async def timed_open_polls(session: AsyncSession) -> list[tuple[int, datetime]]:
    """(id, closes_at) of every open poll with a close time, to rebuild timers at start-up."""
    rows = await session.execute(
        select(POLLS.c.id, POLLS.c.closes_at).where(
            POLLS.c.status == PollStatus.OPEN.value, POLLS.c.closes_at.is_not(None)
        )
    )
    return [(row[0], row[1]) for row in rows]


async def listing(session: AsyncSession, community_id: int, limit: int = 15) -> list[Poll]:
    """Open polls first (newest first), then the latest closed ones."""
    mine = Poll.community_id == community_id
    is_open = Poll.status == PollStatus.OPEN.value
    opened = await session.execute(
        select(Poll).where(mine, is_open).order_by(Poll.id.desc()).limit(limit)
    )
    found = list(opened.scalars().all())
    if len(found) < limit:
        closed = await session.execute(
            select(Poll)
            .where(mine, ~is_open)
            .order_by(Poll.closed_at.desc(), Poll.id.desc())
            .limit(limit - len(found))
        )
        found += list(closed.scalars().all())
    return found


async def discard(session: AsyncSession, poll_id: int) -> None:
    """Forget a poll that never reached the chat (posting it failed): nobody saw it."""
    await session.execute(delete(POLLS).where(POLLS.c.id == poll_id))


async def native_chat(
    session: AsyncSession, platform: str, native_poll_id: str
) -> tuple[Poll, Community] | None:
    """The poll a platform poll id belongs to, with its community, so an adapter that lost
    its in-memory map of poll chats (a restart) can still place a vote in its chat."""
    row = (
        await session.execute(
            select(Poll, Community)
            .join(Community, Community.id == Poll.community_id)
            .where(Poll.native_poll_id == native_poll_id, Community.platform == platform)
            .order_by(Poll.id.desc())
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None
