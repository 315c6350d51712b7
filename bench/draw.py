"""Benchmark `draw`: ranking a frozen giveaway entrant list and picking the winners, no database.

Variants, each on a pre-built list of pseudonymous entrants, timed from the call to the winners:
  draw()                `handlers.giveaways.draw.draw`: one pass, `heapq.nsmallest`, weight 1
  draw(), 10% weight 3  the same call on the same entrants, every tenth holding three tickets
  naive sort            `ticket_score` for every entrant, `sorted()` the lot, take the first W
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench import BenchResult, Target, VariantResult, clock, interleave, progress
from handlers.giveaways.draw import Entrant, draw, pseudonym, ticket_score

NAME = "draw"
DRAW = "draw()"
WEIGHTED = "draw(), 10% weight 3"
NAIVE = "naive sort"
VARIANTS = (DRAW, WEIGHTED, NAIVE)
DB = "none"  # the database column of the table and the JSON: this benchmark uses none
WARMUP_ENTRANTS = 2_000
PSEUDONYM_KEY = b"commops-bench-draw"

Draw = Callable[[str, Sequence[Entrant], int], list[str]]


@dataclass(frozen=True)
class Workload:
    """N entrants (called `events`, so `--events` scales it as for every benchmark), W winners."""

    events: int
    baseline_events: int
    winners: int = 10
    heavy_every: int = 10
    heavy_weight: int = 3
    seed: str = hashlib.sha256(b"commops bench draw").hexdigest()


QUICK = Workload(events=20_000, baseline_events=20_000)
FULL = Workload(events=1_000_000, baseline_events=1_000_000)


def make_entrants(load: Workload) -> list[Entrant]:
    """N members' pseudonyms in one giveaway, as the feature makes them; each has one ticket."""
    return [
        Entrant(pseudonym(PSEUDONYM_KEY, 1, "telegram", str(5_000_000 + i)))
        for i in range(load.events)
    ]


def with_bonus(entrants: Sequence[Entrant], load: Workload) -> list[Entrant]:
    """The same entrants, every `heavy_every`-th holding `heavy_weight` tickets."""
    return [
        replace(e, weight=load.heavy_weight) if i % load.heavy_every == 0 else e
        for i, e in enumerate(entrants)
    ]


def naive(seed: str, entrants: Sequence[Entrant], count: int) -> list[str]:
    """The straightforward way: score every entrant, sort them all, take the first `count`."""
    ranked = sorted((ticket_score(seed, e), e.entrant_id) for e in entrants)
    return [entrant_id for _, entrant_id in ranked[:count]]


@dataclass
class _Plan:
    """Built before timing starts: each variant's function, entrant list and correct winners."""

    work: dict[str, tuple[Draw, list[Entrant], list[str]]]
    tickets: dict[str, int]


def plan(load: Workload) -> _Plan:
    """The lists and, computed by the naive definition, the winners every run must return."""
    plain = make_entrants(load)
    heavy = with_bonus(plain, load)
    baseline = plain[: min(load.baseline_events, len(plain))]
    expected = naive(load.seed, plain, load.winners)
    expected_baseline = (
        expected if len(baseline) == len(plain) else naive(load.seed, baseline, load.winners)
    )
    work: dict[str, tuple[Draw, list[Entrant], list[str]]] = {
        DRAW: (draw, plain, expected),
        WEIGHTED: (draw, heavy, naive(load.seed, heavy, load.winners)),
        NAIVE: (naive, baseline, expected_baseline),
    }
    tickets = {name: sum(e.weight for e in entrants) for name, (_, entrants, _) in work.items()}
    return _Plan(work, tickets)


def _timed(
    fn: Draw, load: Workload, entrants: list[Entrant], want: list[str], r: VariantResult
) -> float:
    """One draw, timed; the winners must be the reference winners, else the row says WRONG."""
    started = clock()
    winners = fn(load.seed, entrants, load.winners)
    took = clock() - started
    if winners != want:
        r.verified = False
        r.error = f"winners {', '.join(winners[:3])}… differ from {', '.join(want[:3])}…"
    return took


async def run(target: Target, load: Workload, mode: str, reps: int) -> BenchResult:
    """Measure the three variants, interleaved, checking every run's winners; `target` unused."""
    progress(f"[{NAME}] building {load.events:,} entrants and the reference winners (untimed)")
    p = plan(load)
    results: dict[str, VariantResult] = {}
    for name, (_, entrants, _) in p.work.items():
        note = f"{p.tickets[name]:,} tickets" if name == WEIGHTED else ""
        if name == NAIVE:
            note = "ticket_score + sorted()"
            if len(entrants) < load.events:
                note += f", first {len(entrants):,} entrants only"
        results[name] = VariantResult(
            name,
            len(entrants),
            baseline=name == NAIVE,
            note=note,
            extra={"tickets": p.tickets[name], "winners": load.winners},
        )

    def variant(name: str) -> Callable[[], Awaitable[float]]:
        fn, entrants, want = p.work[name]

        async def timed() -> float:
            return _timed(fn, load, entrants, want, results[name])

        return timed

    def report(name: str, rep: int, seconds: float) -> None:
        r = results[name]
        state = "verified" if r.verified else f"WRONG: {r.error}"
        progress(
            f"[{NAME}] rep {rep}/{reps} {name:<20} {r.events:>9,} entrants "
            f"in {seconds:7.3f} s ({r.events / seconds:>11,.0f}/s) {state}"
        )

    small = min(WARMUP_ENTRANTS, load.events)
    warm = plan(replace(load, events=small, baseline_events=small))
    progress(f"[{NAME}] warm-up ({small:,} entrants per variant, untimed)")
    for fn, entrants, _ in warm.work.values():
        fn(load.seed, entrants, load.winners)
    seconds = await interleave([(n, variant(n)) for n in VARIANTS], reps, report)
    for name, runs in seconds.items():
        results[name].seconds = runs
    return BenchResult(
        NAME,
        DB,
        mode,
        reps,
        _summary(load),
        list(results.values()),
        where="pure Python in this process; no database, whatever --db says",
    )


def _summary(load: Workload) -> dict[str, Any]:
    """The workload as the table title and the JSON show it."""
    return {
        "N": load.events,
        "winners": load.winners,
        "bonus": f"1 in {load.heavy_every} with weight {load.heavy_weight}",
        "seed": f"{load.seed[:12]}…",
    }
