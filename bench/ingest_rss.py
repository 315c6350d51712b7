"""`python -m bench.ingest_rss --url URL --payloads FILE --expected JSON`: one telegram e2e run.

Started by `bench.ingest` in a child process for issue 10's memory bar. Runs the whole payload
file through the adapter, router and writer on a fresh migrated database (a new SQLite file, or
a throwaway PostgreSQL schema), verifies the rows, and prints one JSON line: events, seconds,
verified, error, the child's peak resident set size (`VmHWM`) and its `ru_maxrss`, in MB.

`ru_maxrss` is not the child's own peak: Python starts children with vfork, and Linux keeps the
high-water mark of the memory the child shared with its parent until exec, so a child of a
430 MB benchmark process reports at least 430 MB. `VmHWM` belongs to the memory the child
got at exec.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench import VerificationError
from bench.ingest import Expected, run_telegram_e2e, verify
from handlers.core.render import Renderer
from storage.db import Database, schema_database


async def measure(url: str, payloads: Path, expected: Expected) -> dict[str, Any]:
    """The e2e run on a fresh database at `url`; what the parent reports."""
    stats: dict[str, Any] = {}
    if make_url(url).get_backend_name() == "sqlite":
        db = Database(url)
        try:
            await db.migrate()
            seconds = await run_telegram_e2e(db, payloads, Renderer(), stats=stats)
            error = await _check(db, expected, stats)
        finally:
            await db.dispose()
    else:
        async with schema_database(url, prefix="bench") as db:
            seconds = await run_telegram_e2e(db, payloads, Renderer(), stats=stats)
            error = await _check(db, expected, stats)
    return {
        "events": expected.events,
        "seconds": round(seconds, 3),
        "verified": error is None,
        "error": error,
        "peak_rss_mb": _peak_rss_mb(),
        "self_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _peak_rss_mb() -> float | None:
    """This process's own peak resident set size (`VmHWM`), or None where /proc lacks it."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)  # kB
    return None


async def _check(db: Database, expected: Expected, stats: dict[str, Any]) -> str | None:
    try:
        await verify(db, expected)
    except VerificationError as exc:
        return str(exc)
    return f"the bot tried to reply {stats['replies']} times" if stats.get("replies") else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_rss", description=__doc__)
    parser.add_argument("--url", required=True, help="sqlite:///file.db or postgresql://...")
    parser.add_argument("--payloads", type=Path, required=True, help="telegram payload file")
    parser.add_argument("--expected", required=True, help="the expected counts as JSON")
    args = parser.parse_args(argv)
    expected = Expected(**json.loads(args.expected))
    result = asyncio.run(measure(args.url, args.payloads, expected))
    print(json.dumps(result), flush=True)
    return 0 if result["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
