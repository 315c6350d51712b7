"""Occurrence claims: each scheduled firing acts at most once, across restarts and instances."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from handlers.core.firing import fire_once
from storage.db import Database
from storage.models import Occurrence
from storage.occurrences import ClaimOutcome, claim, unfinished_or_missed
from tests.fakes import T0, FakeClock

DUE = T0


class Counter:
    def __init__(self, clock: FakeClock | None = None, took: timedelta = timedelta(0)) -> None:
        self.runs = 0
        self.clock, self.took = clock, took

    async def __call__(self) -> None:
        self.runs += 1
        await asyncio.sleep(0)  # let the other contenders interleave
        if self.clock is not None:
            self.clock.advance(self.took)


async def statuses(db: Database) -> list[tuple[str, str]]:
    async with db.session() as s:
        rows = (await s.execute(select(Occurrence.what, Occurrence.status))).all()
    return sorted((w, st) for w, st in rows)


async def test_concurrent_firings_act_exactly_once(any_db: Database) -> None:
    clock, post = FakeClock(DUE), Counter()
    outcomes = await asyncio.gather(
        *(
            fire_once(any_db, what="post:1", due_at=DUE, clock=clock, action=post,
                      instance=f"instance-{i}")
            for i in range(6)
        )
    )  # fmt: skip
    assert post.runs == 1
    assert sorted(outcomes) == sorted([ClaimOutcome.CLAIMED] + [ClaimOutcome.TAKEN] * 5)
    assert await statuses(any_db) == [("post:1", "done")]


async def test_a_restart_does_not_fire_again(any_db: Database) -> None:
    clock, post = FakeClock(DUE), Counter()
    assert await fire_once(any_db, what="post:1", due_at=DUE, clock=clock, action=post) == (
        ClaimOutcome.CLAIMED
    )
    clock.advance(minutes=1)  # the process restarts and its timer fires for the same slot
    assert await fire_once(any_db, what="post:1", due_at=DUE, clock=clock, action=post) == (
        ClaimOutcome.TAKEN
    )
    assert post.runs == 1
    # The next occurrence of a recurring post is a new slot.
    next_due = DUE + timedelta(days=1)
    clock.set(next_due)
    await fire_once(any_db, what="post:1", due_at=next_due, clock=clock, action=post)
    assert post.runs == 2


async def test_late_within_grace_runs_and_beyond_grace_is_recorded_as_missed(
    any_db: Database,
) -> None:
    post = Counter()
    late = FakeClock(DUE + timedelta(minutes=9))
    outcome = await fire_once(any_db, what="post:1", due_at=DUE, clock=late, action=post)
    assert outcome is ClaimOutcome.CLAIMED and post.runs == 1
    stale = FakeClock(DUE + timedelta(minutes=11))
    outcome = await fire_once(any_db, what="post:2", due_at=DUE, clock=stale, action=post)
    assert outcome is ClaimOutcome.MISSED and post.runs == 1
    # Missed is final: a later retry does not post stale content.
    outcome = await fire_once(any_db, what="post:2", due_at=DUE, clock=stale, action=post)
    assert outcome is ClaimOutcome.TAKEN and post.runs == 1
    async with any_db.session() as s:
        [missed] = await unfinished_or_missed(s, since=DUE - timedelta(days=1))
    assert (missed.what, missed.status, missed.detail) == ("post:2", "missed", "late by 0:11:00")


async def test_failures_and_crashes_are_reported_not_retried(any_db: Database) -> None:
    clock = FakeClock(DUE)

    async def broken() -> None:
        raise RuntimeError("platform down")

    assert await fire_once(any_db, what="summary:1", due_at=DUE, clock=clock, action=broken) == (
        ClaimOutcome.CLAIMED
    )
    # A crash between claim and finish: the claim is committed, the outcome never written.
    async with any_db.session() as s:
        await claim(s, "post:9", DUE, now=DUE, instance="crashed", grace=timedelta(minutes=10))
    post = Counter()
    assert await fire_once(any_db, what="post:9", due_at=DUE, clock=clock, action=post) == (
        ClaimOutcome.TAKEN
    )
    assert post.runs == 0  # at most once, even after a crash
    async with any_db.session() as s:
        report = await unfinished_or_missed(s, since=DUE)
        only_posts = await unfinished_or_missed(s, since=DUE, prefix="post:")
    assert [(o.what, o.status, o.detail) for o in report] == [
        ("post:9", "claimed", None),
        ("summary:1", "failed", "RuntimeError"),
    ]
    assert [o.what for o in only_posts] == ["post:9"]


async def test_finish_records_the_time_after_the_action(any_db: Database) -> None:
    clock = FakeClock(DUE)
    slow = Counter(clock, took=timedelta(seconds=30))
    await fire_once(any_db, what="post:1", due_at=DUE, clock=clock, action=slow)
    async with any_db.session() as s:
        row = (await s.execute(select(Occurrence))).scalar_one()
    assert (row.claimed_at, row.finished_at) == (DUE, DUE + timedelta(seconds=30))
