"""Scheduled actions that run exactly once: claim the occurrence, act, record the outcome."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.clock import Clock
from storage.db import Database
from storage.occurrences import ClaimOutcome, claim, finish

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(minutes=10)

Item = TypeVar("Item")


def instance_name() -> str:
    """Which process claimed a firing, for the occurrence log."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def fire_once(
    db: Database,
    *,
    what: str,
    due_at: datetime,
    clock: Clock,
    action: Callable[[], Awaitable[None]],
    grace: timedelta = DEFAULT_GRACE,
    instance: str | None = None,
) -> ClaimOutcome:
    """Run `action` for the firing `(what, due_at)` unless it ran already or is too late.

    The claim is committed before acting, so a second instance (or a restart) sees it and
    stands back: a crash mid-action means the firing is not repeated (at most once).
    """
    async with db.session() as session:
        claimed = await claim(
            session,
            what,
            due_at,
            now=clock.now(),
            instance=instance or instance_name(),
            grace=grace,
        )
    if claimed.outcome is not ClaimOutcome.CLAIMED:
        if claimed.outcome is ClaimOutcome.MISSED:
            log.warning("%s due %s was missed (the bot was away); recorded", what, due_at)
        return claimed.outcome
    assert claimed.occurrence_id is not None
    failure: str | None = None
    try:
        await action()
    except Exception as exc:
        failure = type(exc).__name__
        log.exception("%s due %s failed", what, due_at)
    async with db.session() as session:
        await finish(
            session,
            claimed.occurrence_id,
            now=clock.now(),
            failed=failure is not None,
            detail=failure,
        )
    return ClaimOutcome.CLAIMED


async def record_together(
    db: Database,
    items: Sequence[Item],
    together: Callable[[AsyncSession, Sequence[Item]], Awaitable[None]],
    alone: Callable[[AsyncSession, Item], Awaitable[None]],
    *,
    what: str,
    label: Callable[[Item], str],
) -> None:
    """Record a batch's outcomes in one write transaction; if that fails, each in its own,
    so one item the database refuses does not lose the others'."""
    if not items:
        return
    try:
        async with db.writing() as session:
            await together(session, items)
        return
    except Exception:
        log.warning("recording %d %s together failed", len(items), what, exc_info=True)
    for item in items:
        try:
            async with db.writing() as session:
                await alone(session, item)
        except Exception:
            log.exception("%s: could not record its outcome", label(item))
