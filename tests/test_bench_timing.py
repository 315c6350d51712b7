"""The scheduler and command-latency benchmarks run end to end on tiny workloads.

They check that the harness runs, verifies and reports, never how fast anything is.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from bench import Target, latency, scheduler
from bench import __main__ as bench_main
from handlers.core.context import Services
from handlers.core.render import Renderer
from handlers.posts import delivery
from scheduler.service import SchedulerService
from storage.activity import ActivityWriter
from tests.fakes import FakeClock

TINY_SCHEDULE = scheduler.Workload(
    events=24, baseline_events=24, seconds=0.3, margin=0.3, communities=3, drain=5.0
)
TINY_LATENCY = latency.Workload(
    events=300, baseline_events=0, seconds=0.3, members=40, chats=3, warmup_events=60
)


def test_both_are_registered_with_their_tables() -> None:
    for module in (scheduler, latency):
        assert module.NAME in bench_main.BENCHMARKS
        assert bench_main.FORMATTERS[module.NAME] is module.format_table
        assert module.NAME not in bench_main.DATABASE_FREE


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert scheduler.percentiles(values) == {"p50": 50.5, "p99": 99.0, "max": 100.0}
    assert scheduler.percentiles([0.25]) == {"p50": 0.25, "p99": 0.25, "max": 0.25}


def test_items_are_deterministic_and_spread_over_the_window() -> None:
    first, second = scheduler.make_items(TINY_SCHEDULE), scheduler.make_items(TINY_SCHEDULE)
    assert first == second
    assert {i.kind for i in first} == set(scheduler.KINDS)
    assert len({i.chat_id for i in first}) == len(first)  # each send names its item
    assert all(0 <= i.offset < TINY_SCHEDULE.seconds for i in first)


async def test_scheduler_sends_every_item_once_and_reports(tmp_path) -> None:
    result = await scheduler.run(Target("sqlite", workdir=tmp_path), TINY_SCHEDULE, "quick", 3)

    rows = {v.name: v for v in result.variants}
    assert set(rows) == {scheduler.COMMOPS, scheduler.APS, *scheduler.KIND_ROWS.values()}
    for row in rows.values():
        assert row.verified, row.error
        assert len(row.seconds) == 3
        assert len(row.extra["p50_seconds"]) == len(row.extra["max_seconds"]) == 3
    assert rows[scheduler.APS].baseline
    assert len(rows[scheduler.COMMOPS].extra["startup_seconds"]) == 3
    assert sum(rows[name].events for name in scheduler.KIND_ROWS.values()) == 24
    table = scheduler.format_table(result)
    assert "scheduler · sqlite · quick" in table and "p99 vs baseline" in table
    json.dumps(result.to_json())
    json.dumps(asdict(TINY_SCHEDULE))
    assert not list(tmp_path.iterdir()), "databases are removed after each run"


async def test_latency_answers_every_command_once_and_reports(tmp_path) -> None:
    result = await latency.run(Target("sqlite", workdir=tmp_path), TINY_LATENCY, "quick", 3)

    assert [v.name for v in result.variants] == [
        latency.ROWS[(variant, command)]
        for command in latency.COMMANDS
        for variant in (latency.QUIET, latency.LOADED)
    ]
    for row in result.variants:
        assert row.verified, row.error
        assert len(row.seconds) == 3 and row.events == 7 + (row.name.startswith("/stats"))
        assert row.baseline == row.name.endswith(latency.QUIET)
    loaded = [v for v in result.variants if not v.baseline]
    assert all(len(v.extra["background_events"]) == 3 for v in loaded)
    assert all(n > 0 for v in loaded for n in v.extra["background_events"])
    table = latency.format_table(result)
    assert "latency · sqlite · quick" in table and "p99 vs no load" in table
    json.dumps(result.to_json())
    assert not list(tmp_path.iterdir())


async def test_a_post_due_soon_after_start_up_keeps_its_time(db) -> None:
    """The start-up rebuild holds back only overdue runs (the scheduler benchmark found
    every post due in the first five seconds after a restart going out five seconds late)."""
    # A day ahead of real time, so the real scheduler fires nothing while the test looks.
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) + timedelta(days=1))
    anchor = clock.now() - timedelta(minutes=1)
    items = [
        scheduler.Item("post", "post-0", 0.0),  # a minute overdue: fires soon after start
        scheduler.Item("post", "post-1", 62.0),  # due 2 s after start: keeps its time
    ]
    load = scheduler.Workload(events=2, baseline_events=0, seconds=1.0, communities=1)
    await scheduler.seed(db, load, items, anchor)
    service = SchedulerService()
    services = Services(
        db=db, activity=ActivityWriter(db), renderer=Renderer(), clock=clock, scheduler=service
    )
    delivery.install(services, service)
    await service.start()
    try:
        assert service.next_run("post:1") == clock.now() + delivery.START_SWEEP_DELAY
        assert service.next_run("post:2") == clock.now() + timedelta(seconds=2)
    finally:
        await service.stop()
