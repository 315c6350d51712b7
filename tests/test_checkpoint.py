"""WAL checkpoints run on their own thread, and every SQLite connection gets the pragmas."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from storage.checkpoint import CheckpointPace, WalCheckpointer, checkpoint, give_back
from storage.db import Database
from storage.models import Community


async def test_a_file_database_checkpoints_on_its_own_thread(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = Database(f"sqlite:///{path}")
    assert db.checkpointer is not None and not db.checkpointer.running
    try:
        await db.migrate()
        assert db.checkpointer.running  # started by the first connection
        async with db.engine.connect() as conn:
            pragmas = {
                name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
                for name in ("cache_size", "wal_autocheckpoint", "synchronous", "busy_timeout")
            }
        assert pragmas == {
            "cache_size": -16384,
            "wal_autocheckpoint": 40000,
            "synchronous": 1,
            "busy_timeout": 10000,
        }
    finally:
        await db.dispose()
    assert not db.checkpointer.running


async def test_a_passive_checkpoint_copies_every_committed_frame(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = Database(f"sqlite:///{path}")
    try:
        await db.migrate()
        async with db.session() as session:
            for i in range(50):
                await session.execute(
                    insert(Community).values(
                        platform="telegram",
                        external_id=str(i),
                        timezone="UTC",
                        locale="en",
                        created_at=datetime(2030, 1, 1, tzinfo=UTC),
                    )
                )
        assert db.checkpointer is not None
        db.checkpointer.stop()  # its own pass would make this one report busy
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            busy, frames, done = checkpoint(reader)
            assert busy == 0 and frames == done
            count = reader.execute("SELECT count(*) FROM communities").fetchone()[0]
            assert count == 50
        finally:
            reader.close()
    finally:
        await db.dispose()


def test_stop_then_start_runs_a_new_thread(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    sqlite3.connect(path).close()
    worker = WalCheckpointer(str(path), pace=CheckpointPace(busy=0.01, idle=0.01, quiet=0.05))
    worker.start()
    worker.start()  # idempotent
    assert worker.running
    worker.stop()
    assert not worker.running
    worker.start()
    assert worker.running
    worker.stop()
    assert not worker.running


async def test_memory_databases_have_no_checkpointer() -> None:
    db = Database("sqlite:///:memory:")
    try:
        assert db.checkpointer is None
    finally:
        await db.dispose()


def test_the_pace_is_quick_while_frames_arrive_and_slow_once_quiet() -> None:
    pace = CheckpointPace(busy=0.1, idle=1.0, quiet=0.5)
    assert pace.after(10) == 0.1
    assert pace.after(25) == 0.1  # still growing
    waits, truncations = [], []
    for _ in range(8):  # no new frame from here on
        waits.append(pace.after(25))
        truncations.append(pace.quiet_now())
    assert waits == [0.1, 0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 1.0]
    assert truncations == [False, False, False, False, True, False, False, False]
    assert pace.after(30) == 0.1 and not pace.quiet_now()  # busy again


def test_a_restarted_wal_counts_as_activity() -> None:
    pace = CheckpointPace(busy=0.1, idle=1.0, quiet=0.2)
    pace.after(500)
    pace.after(500)
    assert pace.after(500) == 1.0
    assert pace.after(3) == 0.1  # SQLite restarted the WAL: frames were written


def _big_wal(path: Path) -> sqlite3.Connection:
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (x BLOB)")
    for _ in range(1_500):
        writer.execute("INSERT INTO t VALUES (randomblob(4000))")
    return writer


def test_give_back_truncates_a_big_wal_nobody_uses(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _big_wal(path)
    quick = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        wal = Path(f"{path}-wal")
        assert wal.stat().st_size > 4 * 1024 * 1024
        assert give_back(quick, str(path))
        assert wal.stat().st_size == 0
        assert writer.execute("SELECT count(*) FROM t").fetchone() == (1_500,)
        assert not give_back(quick, str(path))  # nothing left to give back
    finally:
        quick.close()
        writer.close()


def test_give_back_never_waits_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _big_wal(path)
    quick = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO t VALUES (1)")
        assert not give_back(quick, str(path))  # the write lock is taken: gives up at once
        writer.execute("COMMIT")
        assert Path(f"{path}-wal").stat().st_size > 4 * 1024 * 1024
        assert writer.execute("SELECT count(*) FROM t").fetchone() == (1_501,)
    finally:
        quick.close()
        writer.close()
