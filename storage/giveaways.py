"""Giveaway rows: entries that count exactly once, a draw that happens exactly once.

Every state change is one conditional statement, so two button presses, two processes
or a press racing the draw cannot both win: the database decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import DialectInsert, transition
from storage.models import Community, Giveaway, GiveawayEntry, GiveawayWinner
from storage.privacy import opted_out

GIVEAWAYS = Giveaway.__table__
ENTRIES = GiveawayEntry.__table__
WINNERS = GiveawayWinner.__table__


class GiveawayStatus(StrEnum):
    OPEN = "open"
    DRAWN = "drawn"
    CANCELLED = "cancelled"


class EntryOutcome(StrEnum):
    ENTERED = "entered"
    ALREADY = "already"  # this member entered before
    CLOSED = "closed"  # ended, drawn or cancelled
    FULL = "full"  # max_entries reached


@dataclass(frozen=True, slots=True)
class EntrantRow:
    user_id: str
    entrant_id: str
    display_name: str
    weight: int


async def get(session: AsyncSession, community_id: int, giveaway_id: int) -> Giveaway | None:
    """A giveaway of this community (ids of other communities are not found)."""
    found = await session.get(Giveaway, giveaway_id, populate_existing=True)
    return found if found is not None and found.community_id == community_id else None


async def requirements_of(session: AsyncSession, giveaway_id: int) -> dict[str, Any] | None:
    """A giveaway's entry rules as stored (None: no such giveaway); they never change."""
    return await session.scalar(_REQUIREMENTS, {"p_id": giveaway_id})


async def by_id(session: AsyncSession, giveaway_id: int) -> Giveaway | None:
    return await session.get(Giveaway, giveaway_id, populate_existing=True)


# Built once: a statement object memoizes its cache key, so the scheduler's jobs skip
# building and hashing it again (most of SQLAlchemy's cost per statement on their path).
_WITH_COMMUNITY = (
    select(Giveaway, Community)
    .join(Community, Community.id == Giveaway.community_id)
    .where(Giveaway.id == bindparam("p_id"))
    .execution_options(populate_existing=True)
)
_RECORD_RESULT = (
    update(GIVEAWAYS)
    .where(GIVEAWAYS.c.id == bindparam("p_id"))
    .values(result_message_id=bindparam("p_msg"))
)
# An entry's statements, run on every Enter press.
_REQUIREMENTS = select(GIVEAWAYS.c.requirements).where(GIVEAWAYS.c.id == bindparam("p_id"))
_ENTRY_OF = select(
    ENTRIES.c.user_id, ENTRIES.c.entrant_id, ENTRIES.c.display_name, ENTRIES.c.weight
).where(ENTRIES.c.giveaway_id == bindparam("p_id"), ENTRIES.c.user_id == bindparam("p_user"))
_ADD_ENTRY = DialectInsert(
    lambda insert: insert(ENTRIES).on_conflict_do_nothing().returning(ENTRIES.c.user_id)
)
_COUNT_ENTRY = (
    update(GIVEAWAYS)
    .where(
        GIVEAWAYS.c.id == bindparam("p_id"),
        GIVEAWAYS.c.status == GiveawayStatus.OPEN.value,
        GIVEAWAYS.c.ends_at > bindparam("p_now"),
        or_(
            GIVEAWAYS.c.max_entries.is_(None),
            GIVEAWAYS.c.entry_count < GIVEAWAYS.c.max_entries,
        ),
    )
    .values(entry_count=GIVEAWAYS.c.entry_count + 1)
    .returning(GIVEAWAYS.c.id)
)
_STATE = select(GIVEAWAYS.c.status, GIVEAWAYS.c.ends_at).where(GIVEAWAYS.c.id == bindparam("p_id"))


async def with_community(
    session: AsyncSession, giveaway_id: int
) -> tuple[Giveaway, Community] | None:
    """A giveaway and its community in one round trip, as they stand now."""
    row = (await session.execute(_WITH_COMMUNITY, {"p_id": giveaway_id})).first()
    return (row[0], row[1]) if row is not None else None


async def enter(
    session: AsyncSession,
    giveaway_id: int,
    *,
    user_id: str,
    entrant_id: str,
    display_name: str,
    weight: int,
    now: datetime,
) -> EntryOutcome:
    """Add one entry unless the member is in already, the giveaway closed, or it is full.

    The entry row and the counter bump happen in the caller's transaction: if the bump
    finds the giveaway closed or full, the caller's rollback removes the row again.
    """
    row = {
        "giveaway_id": giveaway_id,
        "user_id": user_id,
        "entrant_id": entrant_id,
        "display_name": display_name[:256],
        "weight": weight,
        "entered_at": now,
    }
    inserted = (await session.execute(_ADD_ENTRY.of(session), row)).scalar_one_or_none()
    if inserted is None:
        return EntryOutcome.ALREADY
    params = {"p_id": giveaway_id, "p_now": now}
    if (await session.execute(_COUNT_ENTRY, params)).scalar_one_or_none() is not None:
        return EntryOutcome.ENTERED
    state = (await session.execute(_STATE, {"p_id": giveaway_id})).one()
    if state.status == GiveawayStatus.OPEN.value and state.ends_at > now:
        return EntryOutcome.FULL
    return EntryOutcome.CLOSED


async def claim_draw(
    session: AsyncSession,
    giveaway_id: int,
    *,
    now: datetime,
    early: bool = False,
    lease: timedelta | None = None,
) -> bool:
    """Move an open giveaway to drawn; True for exactly one caller. Entries stop here.

    With `lease` the drawer also takes the result lease (see `take_result_lease`) in the
    same statement, to post the result without another transaction.
    """
    conditions = [GIVEAWAYS.c.status == GiveawayStatus.OPEN.value]
    if not early:
        conditions.append(GIVEAWAYS.c.ends_at <= now)
    values: dict[str, object] = {"status": GiveawayStatus.DRAWN.value, "drawn_at": now}
    if lease is not None:
        values["result_lease_until"] = now + lease
    return await transition(session, GIVEAWAYS, giveaway_id, *conditions, **values)


async def cancel(session: AsyncSession, giveaway_id: int) -> bool:
    """Cancel an open giveaway; False when it was already drawn or cancelled."""
    done = (
        await session.execute(
            update(GIVEAWAYS)
            .where(GIVEAWAYS.c.id == giveaway_id, GIVEAWAYS.c.status == GiveawayStatus.OPEN.value)
            .values(status=GiveawayStatus.CANCELLED.value)
            .returning(GIVEAWAYS.c.id)
        )
    ).scalar_one_or_none()
    return done is not None


async def entrants(session: AsyncSession, giveaway_id: int) -> list[EntrantRow]:
    """Every entry of a giveaway, in entrant-id order."""
    rows = await session.execute(
        select(ENTRIES.c.user_id, ENTRIES.c.entrant_id, ENTRIES.c.display_name, ENTRIES.c.weight)
        .where(ENTRIES.c.giveaway_id == giveaway_id)
        .order_by(ENTRIES.c.entrant_id)
    )
    return [EntrantRow(*row) for row in rows]


async def entry_of(session: AsyncSession, giveaway_id: int, user_id: str) -> EntrantRow | None:
    found = await session.execute(_ENTRY_OF, {"p_id": giveaway_id, "p_user": user_id})
    row = found.one_or_none()
    return EntrantRow(*row) if row is not None else None


async def sample_entrants(session: AsyncSession, giveaway_id: int, limit: int) -> list[EntrantRow]:
    """The most recent entries (for managers' `/giveaway entrants`); members who opted out
    are left out (the entry count still includes them)."""
    rows = await session.execute(
        select(ENTRIES.c.user_id, ENTRIES.c.entrant_id, ENTRIES.c.display_name, ENTRIES.c.weight)
        .join(GIVEAWAYS, GIVEAWAYS.c.id == ENTRIES.c.giveaway_id)
        .where(ENTRIES.c.giveaway_id == giveaway_id)
        .where(~opted_out(GIVEAWAYS.c.community_id, ENTRIES.c.user_id))
        .order_by(ENTRIES.c.entered_at.desc(), ENTRIES.c.user_id)
        .limit(limit)
    )
    return [EntrantRow(*row) for row in rows]


async def bonus_entries(session: AsyncSession, giveaway_id: int) -> int:
    """Entries beyond one per member (bonus weights), for the announcement."""
    total = await session.scalar(
        select(func.coalesce(func.sum(ENTRIES.c.weight - 1), 0)).where(
            ENTRIES.c.giveaway_id == giveaway_id
        )
    )
    return int(total or 0)


async def add_winners(
    session: AsyncSession, giveaway_id: int, round_no: int, user_ids: Sequence[str]
) -> None:
    if user_ids:
        await session.execute(
            WINNERS.insert(),
            [
                {"giveaway_id": giveaway_id, "user_id": u, "round": round_no, "position": i}
                for i, u in enumerate(user_ids)
            ],
        )


async def winners(session: AsyncSession, giveaway_id: int) -> list[tuple[int, EntrantRow]]:
    """(round, entrant) for every winner, in round and rank order."""
    rows = await session.execute(
        select(
            WINNERS.c.round,
            ENTRIES.c.user_id,
            ENTRIES.c.entrant_id,
            ENTRIES.c.display_name,
            ENTRIES.c.weight,
        )
        .join(
            ENTRIES,
            and_(
                ENTRIES.c.giveaway_id == WINNERS.c.giveaway_id,
                ENTRIES.c.user_id == WINNERS.c.user_id,
            ),
        )
        .where(WINNERS.c.giveaway_id == giveaway_id)
        .order_by(WINNERS.c.round, WINNERS.c.position)
    )
    return [(row[0], EntrantRow(*row[1:])) for row in rows]


async def take_result_lease(
    session: AsyncSession, giveaway_id: int, *, now: datetime, lease: timedelta
) -> bool:
    """The right to post a drawn giveaway's result for `lease`; one holder at a time."""
    got = (
        await session.execute(
            update(GIVEAWAYS)
            .where(
                GIVEAWAYS.c.id == giveaway_id,
                GIVEAWAYS.c.status == GiveawayStatus.DRAWN.value,
                GIVEAWAYS.c.result_message_id.is_(None),
                or_(
                    GIVEAWAYS.c.result_lease_until.is_(None),
                    GIVEAWAYS.c.result_lease_until <= now,
                ),
            )
            .values(result_lease_until=now + lease)
            .returning(GIVEAWAYS.c.id)
        )
    ).scalar_one_or_none()
    return got is not None


async def record_result(session: AsyncSession, giveaway_id: int, message_id: str) -> None:
    """The result is posted: its message id ends the lease for good."""
    await session.execute(_RECORD_RESULT, {"p_id": giveaway_id, "p_msg": message_id})


async def record_results(session: AsyncSession, posted: list[tuple[int, str]]) -> None:
    """`record_result` for several giveaways in one statement (executemany)."""
    if posted:
        params = [{"p_id": giveaway_id, "p_msg": message_id} for giveaway_id, message_id in posted]
        await session.execute(_RECORD_RESULT, params)


async def needing_attention(session: AsyncSession, *, now: datetime) -> list[int]:
    """Giveaways past their end that are still open, or drawn without a posted result."""
    rows = await session.execute(
        select(GIVEAWAYS.c.id)
        .where(
            or_(
                and_(
                    GIVEAWAYS.c.status == GiveawayStatus.OPEN.value,
                    GIVEAWAYS.c.ends_at <= now,
                ),
                and_(
                    GIVEAWAYS.c.status == GiveawayStatus.DRAWN.value,
                    GIVEAWAYS.c.result_message_id.is_(None),
                    or_(
                        GIVEAWAYS.c.result_lease_until.is_(None),
                        GIVEAWAYS.c.result_lease_until <= now,
                    ),
                ),
            )
        )
        .order_by(GIVEAWAYS.c.ends_at)
    )
    return [row[0] for row in rows]


async def open_giveaways(session: AsyncSession) -> list[tuple[int, datetime]]:
    """(id, ends_at) of every open giveaway, to rebuild timers at start-up."""
    rows = await session.execute(
        select(GIVEAWAYS.c.id, GIVEAWAYS.c.ends_at).where(
            GIVEAWAYS.c.status == GiveawayStatus.OPEN.value
        )
    )
    return [(row[0], row[1]) for row in rows]


async def open_in(session: AsyncSession, community_id: int, *, now: datetime) -> list[Giveaway]:
    """A community's giveaways that still take entries, soonest end first."""
    query = (
        select(Giveaway)
        .where(
            Giveaway.community_id == community_id,
            Giveaway.status == GiveawayStatus.OPEN.value,
            Giveaway.ends_at > now,
        )
        .order_by(Giveaway.ends_at)
    )
    return list((await session.execute(query)).scalars().all())


async def listing(session: AsyncSession, community_id: int, limit: int = 15) -> list[Giveaway]:
    """Open giveaways first (soonest end first), then the latest finished ones."""
    mine = Giveaway.community_id == community_id
    is_open = Giveaway.status == GiveawayStatus.OPEN.value
    opened = await session.execute(
        select(Giveaway).where(mine, is_open).order_by(Giveaway.ends_at).limit(limit)
    )
    found = list(opened.scalars().all())
    closed = await session.execute(
        select(Giveaway)
        .where(mine, ~is_open)
        .order_by(Giveaway.ends_at.desc())
        .limit(limit - len(found))
    )
    return found + list(closed.scalars().all())
