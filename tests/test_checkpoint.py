"""WAL checkpoints run on their own thread, and every SQLite connection gets the pragmas."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from storage.checkpoint import WalCheckpointer, checkpoint
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
    worker = WalCheckpointer(str(path), every=0.01)
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
