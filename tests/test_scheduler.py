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
