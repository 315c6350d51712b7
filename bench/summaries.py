"""Benchmark `summaries`: daily summaries for a server hosting 100 communities at once.

The stored state: N raw activity events from M members in C communities over the last 30
days, with the rollups that match them, generated with numpy and bulk-loaded once per
database (untimed) by the loaders of `bench.summary`. Community sizes follow a Zipf-like
curve, as real ones do: the largest holds about a tenth of all members and events, the
smallest a few hundred members. Each member belongs to one community.

Variants, each reading that same database, each verified against the generated state:
  one summary          `summary.gather` + `summary.render` without the chart, for the
                       largest community (the slowest single summary)
  one summary + chart  the same with the chart drawn (what `/summary` posts)
  all summaries        the summary without the chart for each of the C communities in turn
  naive one / naive all  the headline numbers from raw `activity_events` (GROUP BY over the
                       windows they need), for the largest community / for all C
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bench import (
    BenchResult,
    Target,
    VariantResult,
    VerificationError,
    aligned,
    clock,
    describe,
    fresh_database,
    progress,
    time_checked,
)
from bench.summary import (
    Headline,
    State,
    Workload,
    _differences,
    check_metrics,
    expected,
    generate,
    load_postgres,
    load_sqlite,
    run_naive,
    run_reply,
)
from handlers.core.clock import SystemClock
from handlers.core.context import Services
from handlers.core.render import Renderer
from storage.activity import ActivityWriter

NAME = "summaries"
ONE = "one summary"
ONE_CHART = "one summary + chart"
ALL = "all summaries"
NAIVE_ONE = "naive one"
NAIVE_ALL = "naive all"
VARIANTS = (ONE, ONE_CHART, ALL, NAIVE_ONE, NAIVE_ALL)
# Which baseline each variant is compared with.
AGAINST = {ONE: NAIVE_ONE, ONE_CHART: NAIVE_ONE, ALL: NAIVE_ALL}
# The bars, in seconds.
BARS = {ONE: 0.200, ALL: 10.0}


@dataclass(frozen=True)
class Server:
    """C communities sharing N events and M members; `zipf` shapes their sizes."""

    events: int
    members: int
    communities: int
    days: int = 30
    chats_per_community: int = 3
    zipf: float = 0.8
    seed: int = 20261124


QUICK = Server(events=60_000, members=3_000, communities=10)
FULL = Server(events=10_000_000, members=200_000, communities=100)


def workloads(server: Server) -> list[Workload]:
    """One `Workload` per community, ids laid out one after another, largest first."""
    c = server.communities
    weights = 1.0 / np.arange(1, c + 1) ** server.zipf
    weights /= weights.sum()
    events = _split(server.events, weights)
    members = _split(server.members, weights)
    loads: list[Workload] = []
    first_member = first_chat = first_event = 0
    for i in range(c):
        load = Workload(
            events=events[i],
            members=members[i],
            baseline_events=events[i],
            days=server.days,
            chats=server.chats_per_community,
            seed=server.seed + i,
            community=i + 1,
            first_member=first_member,
            first_chat=first_chat,
            first_event=first_event,
        )
        loads.append(load)
        first_member += load.members
        first_chat += load.chats
        first_event += load.events
    return loads


def _split(total: int, weights: np.ndarray) -> list[int]:
    """`total` split by `weights` into integers that add up to it exactly (at least 1 each)."""
    parts = [max(1, math.floor(total * w)) for w in weights]
    parts[0] += total - sum(parts)
    return parts


@dataclass
class Loaded:
    states: list[State]
    wanted: list[Headline]


async def run(target: Target, server: Any, mode: str, reps: int) -> BenchResult:
    """Generate, load once (untimed), then time the five variants interleaved."""
    if not isinstance(server, Server):  # `--events N` scales the whole server down
        raise TypeError(f"unexpected workload {server!r}")
    loads = workloads(server)
    progress(
        f"[{NAME} {target.name}] generating {server.events:,} events, {server.members:,} "
        f"members in {server.communities} communities"
    )
    started = clock()
    states = [generate(load) for load in loads]
    loaded = Loaded(states, [expected(s) for s in states])
    member_days = sum(int(s.md_key.size) for s in states if s.md_key is not None)
    progress(f"[{NAME} {target.name}] generated in {clock() - started:.1f} s")
    async with fresh_database(target, NAME) as db:
        started = clock()
        if target.name == "sqlite":
            await db.dispose()  # the loader needs the file to itself
            path = db.engine.url.database
            assert path is not None
            counts = load_sqlite(path, states)
        else:
            counts = await load_postgres(db, states)
        load_seconds = clock() - started
        progress(f"[{NAME} {target.name}] loaded in {load_seconds:.1f} s: {counts}")
        services = Services(
            db=db, activity=ActivityWriter(db), renderer=Renderer(), clock=SystemClock()
        )
        largest = loads[0].community
        results = {
            ONE: VariantResult(ONE, 1, note=f"community #{largest}: {loads[0].members:,} members"),
            ONE_CHART: VariantResult(ONE_CHART, 1, note="PNG drawn with matplotlib"),
            ALL: VariantResult(ALL, len(loads), note=f"{len(loads)} communities, one by one"),
            NAIVE_ONE: VariantResult(NAIVE_ONE, 1, baseline=True, note="scans activity_events"),
            NAIVE_ALL: VariantResult(NAIVE_ALL, len(loads), baseline=True),
        }
        results[ONE].extra["load_seconds"] = round(load_seconds, 1)
        results[ONE].extra["rows"] = counts

        async def one(images: bool) -> float:
            t0 = clock()
            data, reply = await run_reply(services, largest, images=images)
            took = clock() - t0
            check_metrics(data.metrics, loaded.wanted[0])
            if images and reply.image is None:
                raise VerificationError("the reply has no chart")
            return took

        async def every() -> float:
            got = []
            t0 = clock()
            for load in loads:
                got.append(await run_reply(services, load.community, images=False))
            took = clock() - t0
            for (data, _), want in zip(got, loaded.wanted, strict=True):
                check_metrics(data.metrics, want)
            return took

        async def naive(communities: Sequence[Workload]) -> float:
            got = []
            t0 = clock()
            for load in communities:
                got.append(await run_naive(db, load.community))
            took = clock() - t0
            for headline, want in zip(got, loaded.wanted, strict=False):
                problems = _differences(headline, want)
                if problems:
                    raise VerificationError(", ".join(problems))
            return took

        checked: dict[str, Callable[[], Awaitable[float]]] = {
            ONE: lambda: one(False),
            ONE_CHART: lambda: one(True),
            ALL: every,
            NAIVE_ONE: lambda: naive(loads[:1]),
            NAIVE_ALL: lambda: naive(loads),
        }

        await time_checked(f"[{NAME} {target.name}]", results, checked, reps)
    return BenchResult(
        NAME,
        target.name,
        mode,
        reps,
        {
            "N": server.events,
            "M": server.members,
            "communities": server.communities,
            "days": server.days,
            "largest": f"{loads[0].events:,} events / {loads[0].members:,} members",
            "smallest": f"{loads[-1].events:,} events / {loads[-1].members:,} members",
            "member_days": member_days,
            "seed": server.seed,
        },
        list(results.values()),
        where=target.describe(),
    )


def scaled(server: Server, events: int) -> Server:
    """`--events N`: the same server with N events and members scaled alike."""
    members = max(server.communities * 20, round(server.members * events / server.events))
    return replace(server, events=events, members=members)


def format_table(result: BenchResult) -> str:
    """variant, median ms, range, speed-up against its own baseline, bar, note."""
    if result.skipped:
        return f"{result.db}: SKIPPED ({result.skipped})"
    load = describe(result.workload)
    medians = {v.name: v.median for v in result.variants}
    head = ("variant", "median ms", "range (ms)", "speed-up vs naive", "bar", "note")
    rows = [head]
    for v in result.variants:
        base = AGAINST.get(v.name)
        ratio = f"{medians[base] / v.median:,.1f}×" if base else "baseline"
        bar = ""
        if v.name in BARS:
            verdict = "PASS" if v.median < BARS[v.name] else "MISS"
            bar = f"< {BARS[v.name] * 1e3:,.0f} ms {verdict}"
        spread = f"{min(v.seconds) * 1e3:,.1f}–{max(v.seconds) * 1e3:,.1f}" if v.seconds else "-"
        note = v.note if v.verified else f"WRONG: {v.error}"
        rows.append((v.name, f"{v.median * 1e3:,.1f}", spread, ratio, bar, note))
    lines = aligned(rows, {0, 4, 5})
    title = f"{result.benchmark} · {result.db} · {result.mode} ({load})"
    return "\n".join([f"{title} · median of {result.reps} interleaved reps", *lines])
