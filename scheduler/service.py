"""Timers: a thin layer over APScheduler's asyncio scheduler with a memory job store.

Jobs are registered by name at wiring time and scheduled by key with JSON-able keyword
arguments, so nothing pickled lives anywhere: the database holds what should happen
and features rebuild their timers from it at start-up (`reconcile` hooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

JobFunction = Callable[..., Awaitable[None]]
# A batched job: the keyword arguments of every timer queued for it, in the order they came
# due; it must deal with each item's failure itself (one bad item never fails the others).
BatchFunction = Callable[[list[dict[str, Any]]], Awaitable[None]]
Reconciler = Callable[["SchedulerService"], Awaitable[None]]


class UnknownJob(KeyError):
    """A timer names a job function nobody registered."""


class _Batch:
    """The timers of one batched job waiting for its worker, and the worker, if running."""

    __slots__ = ("function", "most", "queue", "worker")

    def __init__(self, function: BatchFunction, most: int) -> None:
        self.function = function
        self.most = most
        self.queue: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self.worker: asyncio.Task[None] | None = None


class SchedulerService:
    """Start, stop and keyed add/replace/remove of timers; jobs never crash the loop."""

    def __init__(self, *, misfire_grace_seconds: int = 300, max_concurrent_jobs: int = 8) -> None:
        self._functions: dict[str, JobFunction] = {}
        self._batches: dict[str, _Batch] = {}
        self._reconcilers: list[Reconciler] = []
        self._running: set[asyncio.Task[object]] = set()
        # Jobs running at once. Below the database pool (5 + 10 overflow by default): a burst
        # of due timers waits here in order instead of each job holding, or timing out
        # waiting 30 s for, a pooled connection (measured by `python -m bench --only scheduler`).
        self._slots = asyncio.Semaphore(max_concurrent_jobs)
        self._stopping = False
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": misfire_grace_seconds,
            },
        )

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def register(self, name: str, function: JobFunction) -> None:
        """Make `function` schedulable under `name` (done once, in `bot/app.py`)."""
        if name in self._functions:
            raise ValueError(f"job {name!r} registered twice")
        self._functions[name] = function

    def register_batch(self, name: str, function: BatchFunction, *, most: int = 200) -> None:
        """Make `name` schedulable as a batched job: a timer that comes due queues its
        keyword arguments, and one worker per job hands everything queued to `function` at
        once, holding one job slot. A batch is whatever came due while the previous one ran,
        so batches grow exactly when a backlog starts (one transaction for all of them), up
        to `most` items (a batch's transaction may hold SQLite's write gate throughout)."""
        if name in self._functions:
            raise ValueError(f"job {name!r} registered twice")
        batch = _Batch(function, most)
        self._batches[name] = batch

        async def one(**kwargs: Any) -> None:
            await self._queue(batch, kwargs)

        self._functions[name] = one

    def on_start(self, reconciler: Reconciler) -> None:
        """Run `reconciler` at start-up to rebuild timers from the database."""
        self._reconcilers.append(reconciler)

    async def start(self) -> None:
        if not self.running:
            # Paused while the reconcilers add their timers: one wake-up at the end, not one
            # queued per timer (10,000 timers left 0.15-0.6 s of wake-ups blocking the loop).
            self._scheduler.start(paused=True)
            try:
                for reconcile in self._reconcilers:
                    await reconcile(self)
            finally:
                self._scheduler.resume()

    def shutdown(self) -> None:
        if self.running:
            self._scheduler.shutdown(wait=False)

    async def stop(self) -> None:
        """Stop firing, and end jobs still running, before the database they use closes."""
        self._stopping = True
        # Let jobs submitted a moment ago enter `_run`, so their cancellation is a quiet one
        # (APScheduler logs a job cancelled before it began as a failure).
        await asyncio.sleep(0)
        self.shutdown()
        running = [task for task in self._running if not task.done()]
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def schedule(
        self, key: str, job: str, when: BaseTrigger | datetime, **kwargs: Any
    ) -> datetime | None:
        """Add or replace the timer `key`; returns its next run time (UTC)."""
        if job not in self._functions:
            raise UnknownJob(job)
        json.dumps(kwargs)  # refuse anything that could not be rebuilt from the database
        trigger = DateTrigger(run_date=when) if isinstance(when, datetime) else when
        added = self._scheduler.add_job(
            self._run,
            trigger=trigger,
            id=key,
            name=job,
            args=(key, job),
            kwargs=kwargs,
            replace_existing=True,
        )
        return getattr(added, "next_run_time", None)

    def schedule_sweep(
        self, prefix: str, job: str, *, now: datetime, every: timedelta, first_after: timedelta
    ) -> None:
        """Run `job` every `every` (timer `<prefix>:sweep`) and once soon after start
        (`<prefix>:sweep:start`): work missed while the bot was away is picked up soon, not
        at once, because the platforms connect after the scheduler starts."""
        self.schedule(f"{prefix}:sweep", job, IntervalTrigger(seconds=every.total_seconds()))
        self.schedule(f"{prefix}:sweep:start", job, now + first_after)

    def cancel(self, key: str) -> bool:
        """Remove the timer `key`; False when there was none."""
        if self._scheduler.get_job(key) is None:
            return False
        self._scheduler.remove_job(key)
        return True

    def next_run(self, key: str) -> datetime | None:
        job = self._scheduler.get_job(key)
        return getattr(job, "next_run_time", None) if job else None

    def keys(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs())

    async def run_now(self, job: str, **kwargs: Any) -> None:
        """Run a registered job immediately (managers' "now" commands, tests)."""
        await self._run(f"now:{job}", job, **kwargs)

    async def run_due(self, now: datetime) -> list[str]:
        """Run every timer due by `now`, earliest first, as if its time had come; returns
        their keys. Lets a simulated clock drive the timers (tests, demos)."""
        ran: list[str] = []
        while True:
            due = [
                job
                for job in self._scheduler.get_jobs()
                if job.next_run_time is not None and job.next_run_time <= now
            ]
            if not due:
                return ran
            job = min(due, key=lambda j: (j.next_run_time, j.id))
            after = now + timedelta(microseconds=1)
            following = job.trigger.get_next_fire_time(job.next_run_time, after)
            if following is not None and following <= now:
                # Coalesce, as the scheduler does: a repeating timer runs once, then goes on
                # from `now` (not once per interval skipped).
                following = job.trigger.get_next_fire_time(None, after)
            if following is None or following <= now:
                job.remove()
            else:
                job.modify(next_run_time=following)
            ran.append(job.id)
            await self._run(job.id, job.name, **job.kwargs)

    async def _run(self, key: str, job: str, **kwargs: Any) -> None:
        function = self._functions.get(job)
        if function is None:
            log.error("timer %s names unknown job %s", key, job)
            return
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            if job in self._batches:
                await function(**kwargs)  # queued: waits for its batch, holding no slot
                return
            async with self._slots:
                await function(**kwargs)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cancelled by stop(): the job's next run (or the start-up sweep) redoes it.
            log.info("timer %s (job %s) stopped with the bot", key, job)
        except Exception:
            log.exception("timer %s (job %s) failed", key, job)
        finally:
            self._running.discard(task)  # type: ignore[arg-type]

    async def _queue(self, batch: _Batch, kwargs: dict[str, Any]) -> None:
        """Queue one timer's item for its job's worker (started if idle); wait until the
        batch that took it is over."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch.queue.append((kwargs, done))
        if batch.worker is None or batch.worker.done():
            batch.worker = asyncio.create_task(self._work(batch))
            self._running.add(batch.worker)  # stop() ends it even before its first step
        await done

    async def _work(self, batch: _Batch) -> None:
        """Run batches while items are queued: each batch is everything queued so far."""
        task = asyncio.current_task()
        taken: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        try:
            while batch.queue:
                async with self._slots:
                    taken, batch.queue = batch.queue[: batch.most], batch.queue[batch.most :]
                    try:
                        await batch.function([kwargs for kwargs, _ in taken])
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("a batch of %d timers failed", len(taken))
                for _, done in taken:
                    if not done.done():
                        done.set_result(None)
                taken = []
        finally:
            # Stopped (or cancelled) mid-batch: nobody waits forever for a batch not run.
            for _, done in [*taken, *batch.queue]:
                if not done.done():
                    done.cancel()
            batch.queue = []
            self._running.discard(task)  # type: ignore[arg-type]
