"""Benchmark harness: fresh databases, interleaved repetitions, result tables and JSON.

Every benchmark compares its variants against a naive baseline measured in the same run;
timed tests are not allowed anywhere else in the project.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import Database, async_url, schema_database

POSTGRES_URL_ENV = "COMMOPS_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
MIN_REPS = 3


class VerificationError(AssertionError):
    """A variant finished but the database does not hold what the workload put in."""


def postgres_url() -> str:
    """The PostgreSQL server to benchmark on (env `COMMOPS_BENCH_POSTGRES_URL` overrides)."""
    return os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)


@dataclass(frozen=True)
class Target:
    """A database backend to run on: SQLite files in `workdir`, or a PostgreSQL server."""

    name: str
    workdir: Path | None = None
    url: str | None = None

    def describe(self) -> str:
        """Where the databases live, without any password."""
        if self.name == "sqlite":
            return f"SQLite files in {self.workdir}"
        assert self.url is not None
        return async_url(self.url).render_as_string(hide_password=True)


async def postgres_problem(url: str, connect_timeout: float = 5.0) -> str | None:
    """None when the PostgreSQL server answers, else why it does not."""
    engine = create_async_engine(async_url(url), connect_args={"timeout": connect_timeout})
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
    finally:
        await engine.dispose()
    return None


@asynccontextmanager
async def fresh_database(target: Target, label: str) -> AsyncIterator[Database]:
    """A new, migrated, empty database; removed again afterwards."""
    if target.name == "sqlite":
        async with _fresh_sqlite(target, label) as db:
            yield db
    else:
        async with _fresh_postgres(target) as db:
            yield db


@asynccontextmanager
async def _fresh_sqlite(target: Target, label: str) -> AsyncIterator[Database]:
    """A new SQLite file in the target's work directory."""
    assert target.workdir is not None
    path = target.workdir / f"{label}-{uuid.uuid4().hex[:8]}.db"
    db = Database(f"sqlite:///{path}")
    try:
        await db.migrate()
        yield db
    finally:
        await db.dispose()
        _remove_sqlite_files(path)


def _remove_sqlite_files(path: Path) -> None:
    """Delete a SQLite database and its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        with suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def _fresh_postgres(target: Target) -> AbstractAsyncContextManager[Database]:
    """A throwaway schema on the PostgreSQL server, migrated, dropped afterwards."""
    assert target.url is not None
    return schema_database(target.url, prefix="bench")


@dataclass
class VariantResult:
    """One variant's repetitions: seconds per run, events per run, and what was checked."""

    name: str
    events: int
    seconds: list[float] = field(default_factory=list)
    baseline: bool = False
    note: str = ""
    verified: bool = True
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def rate(self) -> float:
        """Events per second at the median run time."""
        return self.events / self.median if self.seconds and self.median > 0 else float("nan")

    def to_json(self, baseline_rate: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "events": self.events,
            "seconds": [round(s, 6) for s in self.seconds],
            "median_seconds": round(self.median, 6),
            "events_per_second": round(self.rate, 1),
            "ratio_vs_baseline": round(self.rate / baseline_rate, 3) if baseline_rate else None,
            "baseline": self.baseline,
            "note": self.note,
            "verified": self.verified,
            "error": self.error,
            "extra": self.extra,
        }


@dataclass
class BenchResult:
    """One benchmark on one database: its variants, or why it was skipped."""

    benchmark: str
    db: str
    mode: str
    reps: int
    workload: dict[str, Any] = field(default_factory=dict)
    variants: list[VariantResult] = field(default_factory=list)
    skipped: str | None = None
    where: str = ""

    @property
    def ok(self) -> bool:
        return self.skipped is not None or all(v.verified for v in self.variants)

    @property
    def baseline_rate(self) -> float:
        base = [v for v in self.variants if v.baseline]
        return base[0].rate if base else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "db": self.db,
            "where": self.where,
            "mode": self.mode,
            "reps": self.reps,
            "workload": self.workload,
            "skipped": self.skipped,
            "variants": [v.to_json(self.baseline_rate) for v in self.variants],
        }


def describe(workload: dict[str, Any]) -> str:
    """A workload as `k=v, ...`, integers with thousands separators (the seed as it is)."""
    return ", ".join(
        f"{k}={v:,}" if isinstance(v, int) and k != "seed" else f"{k}={v}"
        for k, v in workload.items()
    )


def aligned(rows: Sequence[Sequence[str]], left: Collection[int]) -> list[str]:
    """Rows (the first one the heading) as aligned columns with a rule under the heading;
    the `left` columns are left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_table(result: BenchResult) -> str:
    """The result as an aligned text table, with a title line."""
    if result.skipped:
        return f"{result.db}: SKIPPED ({result.skipped})"
    title = f"{result.benchmark} · {result.db} · {result.mode}"
    head = ("variant", "events", "seconds (median)", "events/s", "vs baseline", "range (s)", "note")
    rows = [head]
    base = result.baseline_rate
    for v in result.variants:
        ratio = "baseline" if v.baseline else f"{v.rate / base:,.1f}×"
        spread = f"{min(v.seconds):.3f}–{max(v.seconds):.3f}" if v.seconds else "-"
        note = v.note if v.verified else f"WRONG: {v.error}"
        rows.append(
            (v.name, f"{v.events:,}", f"{v.median:.3f}", f"{v.rate:,.0f}", ratio, spread, note)
        )
    intro = f"{title} ({describe(result.workload)}) · median of {result.reps} interleaved reps"
    return "\n".join([intro, *aligned(rows, {0, 6})])


def progress(message: str) -> None:
    """One progress line on stderr, so stdout keeps only the tables."""
    print(message, file=sys.stderr, flush=True)


Variant = Callable[[], Awaitable[float]]


async def interleave(
    variants: Sequence[tuple[str, Variant]],
    reps: int,
    report: Callable[[str, int, float], None],
) -> dict[str, list[float]]:
    """Run each variant `reps` times in rotating order (ABC, BCA, CAB, ...); seconds per run."""
    if reps < MIN_REPS:
        raise ValueError(f"at least {MIN_REPS} repetitions are needed for a median")
    seconds: dict[str, list[float]] = {name: [] for name, _ in variants}
    for rep in range(reps):
        shift = rep % len(variants)
        for name, run in [*variants[shift:], *variants[:shift]]:
            gc.collect()
            took = await run()
            seconds[name].append(took)
            report(name, rep + 1, took)
    return seconds


async def time_checked(
    label: str,
    results: dict[str, VariantResult],
    checks: dict[str, Variant],
    reps: int,
) -> None:
    """Warm each check up once (untimed), then time them interleaved into `results`.

    A check returns its own timed seconds and raises `VerificationError` when its answer is
    wrong: that variant is marked WRONG (and its run counts as NaN) instead of stopping the
    benchmark. Progress shows milliseconds per run.
    """

    def variant(name: str) -> Variant:
        async def once() -> float:
            try:
                return await checks[name]()
            except VerificationError as exc:
                results[name].verified, results[name].error = False, str(exc)[:300]
                return float("nan")

        return once

    width = max(len(name) for name in checks)

    def report(name: str, rep: int, seconds: float) -> None:
        r = results[name]
        state = "verified" if r.verified else f"WRONG: {r.error}"
        progress(f"{label} rep {rep}/{reps} {name:<{width}} {seconds * 1000:10.1f} ms {state}")

    progress(f"{label} warm-up (each variant once, untimed)")
    for name in checks:
        await variant(name)()
    seconds = await interleave([(n, variant(n)) for n in checks], reps, report)
    for name, runs in seconds.items():
        results[name].seconds = runs


def clock() -> float:
    """The timer every benchmark uses."""
    return time.perf_counter()
