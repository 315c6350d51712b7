"""Occurrence claims: every scheduled firing acts at most once, across restarts and instances.

A firing first inserts its `(what, due_at)` row; the unique key lets exactly one process
win. The winner acts and records the outcome. A firing that comes too late (the bot was
down past the grace window) is recorded as missed instead, so it can be reported, never
silently dropped and never posted stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Occurrence

OCCURRENCES = Occurrence.__table__


class OccurrenceStatus(StrEnum):
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"
    MISSED = "missed"
    RETRYING = "retrying"  # a send failed; a retry timer takes it back (claimed) later


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # this process won and must act
    TAKEN = "taken"  # another process (or an earlier run of this one) already has it
    MISSED = "missed"  # too late: recorded as missed, do not act


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    occurrence_id: int | None = None


async def claim(
    session: AsyncSession,
    what: str,
    due_at: datetime,
    *,
    now: datetime,
    instance: str,
    grace: timedelta,
) -> Claim:
    """Claim one firing; the caller commits before acting so other instances see the claim."""
    late = now - due_at > grace
    inserted = await _insert(
        session,
        what,
        due_at,
        status=OccurrenceStatus.MISSED if late else OccurrenceStatus.CLAIMED,
        now=now,
        instance=instance,
        detail=f"late by {now - due_at}" if late else None,
    )
    if inserted is None:
        return Claim(ClaimOutcome.TAKEN)
    return Claim(ClaimOutcome.MISSED if late else ClaimOutcome.CLAIMED, inserted)


async def record_missed(
    session: AsyncSession,
    what: str,
    due_at: datetime,
    *,
    now: datetime,
    instance: str,
    detail: str,
) -> bool:
    """Record a firing that will not act (skipped, merged, too late); False if it was known."""
    inserted = await _insert(
        session, what, due_at, status=OccurrenceStatus.MISSED, now=now, instance=instance,
        detail=detail,
    )  # fmt: skip
    return inserted is not None


async def _insert(
    session: AsyncSession,
    what: str,
    due_at: datetime,
    *,
    status: OccurrenceStatus,
    now: datetime,
    instance: str,
    detail: str | None,
) -> int | None:
    """Insert the firing's row unless `(what, due_at)` exists; its id, or None if it did."""
    finished = status is not OccurrenceStatus.CLAIMED
    params = {
        "o_what": what[:128],
        "o_due": due_at,
        "o_status": status.value,
        "o_by": instance[:64],
        "o_at": now,
        "o_finished": now if finished else None,
        "o_detail": detail[:256] if detail else None,
    }
    statement = _insert_statement(session.bind.dialect.name)
    return (await session.execute(statement, params)).scalar_one_or_none()


@cache
def _insert_statement(dialect: str) -> Any:
    """The claim's INSERT ... ON CONFLICT DO NOTHING, built once per dialect (a statement
    object memoizes its cache key, so each claim skips building and hashing it)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(OCCURRENCES)
        .values(
            what=bindparam("o_what"),
            due_at=bindparam("o_due"),
            status=bindparam("o_status"),
            claimed_by=bindparam("o_by"),
            claimed_at=bindparam("o_at"),
            finished_at=bindparam("o_finished"),
            detail=bindparam("o_detail"),
        )
        .on_conflict_do_nothing(index_elements=[OCCURRENCES.c.what, OCCURRENCES.c.due_at])
        .returning(OCCURRENCES.c.id)
    )


async def history(session: AsyncSession, what: str, *, limit: int = 10) -> Sequence[Occurrence]:
    """The latest firings of one `what`, newest first."""
    query = (
        select(Occurrence)
        .where(Occurrence.what == what)
        .order_by(Occurrence.due_at.desc(), Occurrence.id.desc())
        .limit(limit)
    )
    return (await session.execute(query)).scalars().all()


async def finish(
    session: AsyncSession,
    occurrence_id: int,
    *,
    now: datetime,
    failed: bool = False,
    detail: str | None = None,
) -> None:
    """Record how a claimed firing ended."""
    status = OccurrenceStatus.FAILED if failed else OccurrenceStatus.DONE
    params = {
        "o_id": occurrence_id,
        "o_status": status.value,
        "o_finished": now,
        "o_detail": (detail or None) and detail[:256],
    }
    await session.execute(_FINISH, params)


async def finish_done(session: AsyncSession, occurrence_ids: list[int], *, now: datetime) -> None:
    """`finish` for several firings that went well, in one statement (executemany)."""
    if occurrence_ids:
        done = OccurrenceStatus.DONE.value
        params = [
            {"o_id": i, "o_status": done, "o_finished": now, "o_detail": None}
            for i in occurrence_ids
        ]
        await session.execute(_FINISH, params)


_FINISH = (
    update(OCCURRENCES)
    .where(OCCURRENCES.c.id == bindparam("o_id"))
    .values(
        status=bindparam("o_status"),
        finished_at=bindparam("o_finished"),
        detail=bindparam("o_detail"),
    )
)


async def unfinished_or_missed(
    session: AsyncSession, *, since: datetime, prefix: str = ""
) -> Sequence[Occurrence]:
    """Firings since `since` that were missed, failed, or never finished: for managers' reports."""
    query = (
        select(Occurrence)
        .where(
            Occurrence.due_at >= since,
            Occurrence.status.in_(
                [
                    OccurrenceStatus.MISSED,
                    OccurrenceStatus.FAILED,
                    OccurrenceStatus.CLAIMED,
                    OccurrenceStatus.RETRYING,
                ]
            ),
            Occurrence.what.startswith(prefix),
        )
        .order_by(Occurrence.due_at, Occurrence.what)
    )
    return (await session.execute(query)).scalars().all()
