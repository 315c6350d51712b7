"""`python -m bench [--quick] [--db sqlite|postgresql|all] [--only NAME] [--json PATH]`."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import sqlite3
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy

import handlers.analytics.metrics
import handlers.analytics.summary
import handlers.core.recording
import handlers.core.router
import handlers.giveaways.draw
import storage.activity
import storage.analytics
from bench import (
    MIN_REPS,
    BenchResult,
    Target,
    draw,
    format_table,
    ingest,
    latency,
    postgres_problem,
    postgres_url,
    progress,
    scheduler,
    summaries,
    summary,
)

DEFAULT_JSON = Path(__file__).parent / "results" / "latest.json"

Benchmark = Callable[[Target, Any, str, int], Awaitable[BenchResult]]
# name -> (run, quick workload, full workload)
BENCHMARKS: dict[str, tuple[Benchmark, Any, Any]] = {
    ingest.NAME: (ingest.run, ingest.QUICK, ingest.FULL),
    draw.NAME: (draw.run, draw.QUICK, draw.FULL),
    summary.NAME: (summary.run, summary.QUICK, summary.FULL),
    summaries.NAME: (summaries.run, summaries.QUICK, summaries.FULL),
    scheduler.NAME: (scheduler.run, scheduler.QUICK, scheduler.FULL),
    latency.NAME: (latency.run, latency.QUICK, latency.FULL),
}
# Benchmarks whose table is not events per second (the summary reports milliseconds).
FORMATTERS: dict[str, Callable[[BenchResult], str]] = {
    ingest.NAME: ingest.format_table,
    summary.NAME: summary.format_table,
    summaries.NAME: summaries.format_table,
    scheduler.NAME: scheduler.format_table,
    latency.NAME: latency.format_table,
}
# Benchmarks that touch no database run once per invocation, whatever `--db` says.
DATABASE_FREE = frozenset({draw.NAME})


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; `--events` and `--reps` only scale a run, they never go below 3 reps."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small workload (3 reps still)")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "all"), default="sqlite")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), help="run one benchmark")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where results go")
    parser.add_argument("--reps", type=int, default=MIN_REPS, help=f"repetitions (>= {MIN_REPS})")
    parser.add_argument("--events", type=int, help="override N, the number of events")
    parser.add_argument("--workdir", type=Path, help="where SQLite files go (default: temp dir)")
    args = parser.parse_args(argv)
    if args.reps < MIN_REPS:
        parser.error(f"--reps must be at least {MIN_REPS}: results are medians")
    if args.events is not None and args.events < 10:
        parser.error("--events must be at least 10")
    return args


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "code_sha256": code_fingerprint(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def code_fingerprint() -> dict[str, str]:
    """Short hashes of the modules under test, to tell which version a result measured."""
    modules = (
        storage.activity,
        handlers.core.router,
        handlers.core.recording,
        handlers.giveaways.draw,
        storage.analytics,
        handlers.analytics.metrics,
        handlers.analytics.summary,
    )
    return {
        m.__name__: hashlib.sha256(Path(str(m.__file__)).read_bytes()).hexdigest()[:12]
        for m in modules
    }


def workload_for(args: argparse.Namespace, quick: Any, full: Any) -> Any:
    """The quick or full workload, with N (and the baseline subset) capped by `--events`."""
    load = quick if args.quick else full
    if args.events is not None and isinstance(load, summaries.Server):
        return summaries.scaled(load, args.events)
    if args.events is not None:
        load = replace(
            load, events=args.events, baseline_events=min(load.baseline_events, args.events)
        )
    return load


async def targets(args: argparse.Namespace, workdir: Path) -> list[Target | BenchResult]:
    """The databases to run on; an unreachable PostgreSQL becomes a skip note."""
    names = ["sqlite", "postgresql"] if args.db == "all" else [args.db]
    found: list[Target | BenchResult] = []
    for name in names:
        if name == "sqlite":
            found.append(Target("sqlite", workdir=workdir))
            continue
        url = postgres_url()
        target = Target("postgresql", url=url)
        problem = await postgres_problem(url)
        if problem is None:
            found.append(target)
        else:
            why = f"PostgreSQL at {target.describe()} does not answer: {problem}"
            progress(f"[bench] {why}; skipping postgresql")
            found.append(BenchResult("all", "postgresql", "", 0, skipped=why))
    return found


async def run_all(args: argparse.Namespace, workdir: Path) -> list[BenchResult]:
    """Every selected benchmark on every selected database (the database-free ones once)."""
    mode = "quick" if args.quick else "full"
    results: list[BenchResult] = []
    chosen = [args.only] if args.only else list(BENCHMARKS)
    on_databases = [name for name in chosen if name not in DATABASE_FREE]
    # `--only draw --db postgresql` has no reason to wait for, or skip on, an absent server.
    found = await targets(args, workdir) if on_databases else []
    for target in found:
        if isinstance(target, BenchResult):
            print(format_table(target), flush=True)
            results.append(target)
            continue
        for name in on_databases:
            results.append(await _run_one(args, name, target, mode))
    no_database = Target("none")
    for name in chosen:
        if name in DATABASE_FREE:
            results.append(await _run_one(args, name, no_database, mode))
    return results


async def _run_one(args: argparse.Namespace, name: str, target: Target, mode: str) -> BenchResult:
    """One benchmark on one target, its table printed as soon as it is done."""
    run, quick, full = BENCHMARKS[name]
    result = await run(target, workload_for(args, quick, full), mode, args.reps)
    print(f"\n{FORMATTERS.get(name, format_table)(result)}\n", flush=True)
    return result


def write_json(
    path: Path, args: argparse.Namespace, results: list[BenchResult], before: dict[str, Any]
) -> None:
    """Save the run: machine (before and after), arguments and every variant's repetitions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "mode": "quick" if args.quick else "full",
        "machine": before,
        "load_average_after": machine()["load_average"],
        "workloads": {
            name: asdict(quick if args.quick else full)
            for name, (_, quick, full) in BENCHMARKS.items()
        },
        "results": [r.to_json() for r in results],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the tables, write the JSON; exit 1 if any variant wrote wrong counts."""
    args = parse_args(argv)
    before = machine()
    with tempfile.TemporaryDirectory(prefix="commops-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run_all(args, workdir))
    write_json(args.json, args, results, before)
    progress(f"[bench] results written to {args.json}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
