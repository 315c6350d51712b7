"""The points ledger: every change is a row; balances and leaderboards are sums of rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import PointsEntry

LEDGER = PointsEntry.__table__


class PointsReason(StrEnum):
    """Why points changed; `ref` then names the thing (a message key, `poll:12`, ...)."""

    MESSAGE = "message"
    POLL_VOTE = "poll_vote"
    QUIZ_CORRECT = "quiz_correct"
    GIVEAWAY_ENTRY = "giveaway_entry"
    QA_ANSWERED = "qa_answered"
    GIVEN = "given"  # by a manager
    TAKEN = "taken"  # by a manager


@dataclass(frozen=True, slots=True)
class Award:
    """Points for one member for one thing; `ref` makes a second award for it a no-op."""

    user_id: str
    display_name: str
    amount: int
    reason: PointsReason
    ref: str
    actor_id: str | None = None
    note: str | None = None


async def award(session: AsyncSession, community_id: int, item: Award, *, now: datetime) -> bool:
    """Write one ledger row in the caller's transaction; False when that award exists already."""
    if item.amount == 0:
        return False
    inserted = (
        await session.execute(
            dialect_insert(session)(LEDGER)
            .values(
                community_id=community_id,
                user_id=item.user_id,
                display_name=item.display_name[:256],
                amount=item.amount,
                reason=item.reason.value,
                ref=item.ref[:128],
                actor_id=item.actor_id,
                note=item.note[:256] if item.note else None,
                at=now,
            )
            .on_conflict_do_nothing()
            .returning(LEDGER.c.id)
        )
    ).scalar_one_or_none()
    return inserted is not None


async def balance(session: AsyncSession, community_id: int, user_id: str) -> int:
    """The member's points in this community: the sum of their ledger rows."""
    total = await session.scalar(
        select(func.coalesce(func.sum(LEDGER.c.amount), 0)).where(
            LEDGER.c.community_id == community_id, LEDGER.c.user_id == user_id
        )
    )
    return int(total or 0)
