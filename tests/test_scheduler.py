"""The scheduler wrapper: named jobs, keyed timers, JSON-only arguments, failures contained."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger

from scheduler.service import SchedulerService, UnknownJob


@pytest.fixture
async def scheduler():
    service = SchedulerService()
    await service.start()
    yield service
    service.shutdown()


async def test_timers_are_added_replaced_and_cancelled_by_key(scheduler):
    calls: list[dict] = []

    async def post(**kwargs):
        calls.append(kwargs)

    scheduler.register("post.fire", post)
    later = datetime.now(UTC) + timedelta(days=1)
    assert scheduler.schedule("post:1", "post.fire", later, post_id=1) == later
    assert scheduler.schedule("post:1", "post.fire", later + timedelta(hours=1), post_id=1) == (
        later + timedelta(hours=1)
    )
    assert scheduler.keys() == ["post:1"]
    daily = scheduler.schedule(
        "summary:5", "post.fire", CronTrigger(hour=9, timezone="Asia/Shanghai")
    )
    assert daily is not None and daily.astimezone(UTC).hour == 1
    assert scheduler.cancel("post:1") is True
    assert scheduler.cancel("post:1") is False
    assert scheduler.keys() == ["summary:5"]
    await scheduler.run_now("post.fire", post_id=7)
    assert calls == [{"post_id": 7}]


async def test_unknown_jobs_and_unserialisable_arguments_are_refused(scheduler):
    async def job(**kwargs):
        return None

    scheduler.register("job", job)
    with pytest.raises(UnknownJob):
        scheduler.schedule("k", "nope", datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(TypeError):
        scheduler.schedule("k", "job", datetime.now(UTC) + timedelta(hours=1), callback=job)
    with pytest.raises(ValueError, match="registered twice"):
        scheduler.register("job", job)


async def test_a_failing_job_is_logged_not_raised(scheduler, caplog):
    async def broken(**kwargs):
        raise RuntimeError("job exploded")

    scheduler.register("broken", broken)
    caplog.set_level(logging.ERROR)
    await scheduler.run_now("broken")
    assert "job exploded" in caplog.text


async def test_reconcilers_rebuild_timers_at_start():
    service = SchedulerService()

    async def job(**kwargs):
        return None

    async def rebuild(s: SchedulerService) -> None:
        s.schedule("post:9", "job", datetime.now(UTC) + timedelta(hours=2), post_id=9)

    service.register("job", job)
    service.on_start(rebuild)
    await service.start()
    try:
        assert service.keys() == ["post:9"]
    finally:
        service.shutdown()


async def test_stop_ends_jobs_still_running_before_their_database_closes(scheduler):
    import asyncio

    started, finished = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # a job caught mid-flight (a query, a send)
        finally:
            finished.set()

    scheduler.register("slow", slow)
    scheduler.schedule("slow:1", "slow", datetime.now(UTC))
    await asyncio.wait_for(started.wait(), 10)  # I/O wait for the job to begin, not a timing test
    await scheduler.stop()
    assert finished.is_set() and not scheduler.running


async def test_timers_due_together_reach_a_batched_job_as_one_batch(scheduler):
    import asyncio

    batches: list[list[int]] = []

    async def fire_many(items: list[dict]) -> None:
        batches.append([item["n"] for item in items])

    scheduler.register_batch("many", fire_many)
    # Five timers come due at once: each queues its item, one worker takes them all.
    await asyncio.gather(*(scheduler.run_now("many", n=n) for n in range(5)))
    assert batches == [[0, 1, 2, 3, 4]]
    await scheduler.run_now("many", n=5)
    assert batches[-1] == [5]
    with pytest.raises(ValueError):
        scheduler.register("many", fire_many)


async def test_items_queued_while_a_batch_runs_make_the_next_batch(scheduler):
    import asyncio

    batches: list[list[int]] = []
    first_taken, release = asyncio.Event(), asyncio.Event()

    async def fire_many(items: list[dict]) -> None:
        batches.append([item["n"] for item in items])
        first_taken.set()
        await release.wait()

    scheduler.register_batch("many", fire_many)
    first = asyncio.ensure_future(scheduler.run_now("many", n=0))
    await first_taken.wait()
    later = [asyncio.ensure_future(scheduler.run_now("many", n=n)) for n in (1, 2, 3)]
    await asyncio.sleep(0)  # let them queue (no real time passes)
    release.set()
    await asyncio.gather(first, *later)
    assert batches == [[0], [1, 2, 3]]


async def test_a_failing_batch_is_logged_and_its_timers_end(scheduler, caplog):
    import asyncio

    async def broken(items: list[dict]) -> None:
        raise RuntimeError("boom")

    scheduler.register_batch("broken", broken)
    await asyncio.gather(*(scheduler.run_now("broken", n=n) for n in range(3)))
    assert "a batch of 3 timers failed" in caplog.text


async def test_stop_ends_a_batch_mid_way_and_every_timer_waiting_for_it(scheduler):
    import asyncio

    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(items: list[dict]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            finished.set()

    scheduler.register_batch("slow", slow)
    waiting = [asyncio.ensure_future(scheduler.run_now("slow", n=n)) for n in range(3)]
    await asyncio.wait_for(started.wait(), 10)  # I/O wait for the batch to begin
    queued_after = asyncio.ensure_future(scheduler.run_now("slow", n=9))
    await asyncio.sleep(0)
    await scheduler.stop()
    assert finished.is_set()
    await asyncio.wait_for(asyncio.gather(*waiting, queued_after), 10)  # none left hanging


async def test_a_batch_takes_at_most_its_limit_and_the_rest_come_next(scheduler):
    import asyncio

    batches: list[list[int]] = []

    async def fire_many(items: list[dict]) -> None:
        batches.append([item["n"] for item in items])

    scheduler.register_batch("many", fire_many, most=2)
    await asyncio.gather(*(scheduler.run_now("many", n=n) for n in range(5)))
    assert batches == [[0, 1], [2, 3], [4]]
