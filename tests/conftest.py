"""Shared fixtures: databases (SQLite file, real PostgreSQL in a throwaway schema), services."""

from __future__ import annotations

import logging
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.app import build_dispatcher
from bot.heap import release_heap
from handlers.alerts.state import REGISTRY as WATCH_REGISTRY
from handlers.core.context import Services
from handlers.core.render import Renderer
from handlers.core.router import Dispatcher
from handlers.faq.cache import CACHE as FAQ_CACHE
from storage.activity import ActivityWriter, CommunityDefaults
from storage.db import Database, schema_database
from tests.fakes import FakeClock, RecordingGateway

POSTGRES_URL = os.environ.get(
    "COMMOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# CI sets this when the server answers, so a broken PostgreSQL path fails instead of skipping.
POSTGRES_REQUIRED = os.environ.get("COMMOPS_TEST_POSTGRES") == "required"


def _postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


POSTGRES_UP = _postgres_answers()


def require_postgres() -> None:
    """Skip the test when PostgreSQL is away, or fail it when CI said it must be there."""
    if not POSTGRES_UP:
        if POSTGRES_REQUIRED:
            pytest.fail("PostgreSQL is required (COMMOPS_TEST_POSTGRES=required) but not answering")
        pytest.skip("PostgreSQL is not answering on 127.0.0.1:5432")


_MIGRATED_SQLITE: Path | None = None


async def _migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head per test process; each test gets a copy of it, because
    running every migration again for each of a thousand tests costs minutes."""
    global _MIGRATED_SQLITE
    if _MIGRATED_SQLITE is None:
        path = tmp_path_factory.mktemp("migrated") / "template.db"
        template = Database(f"sqlite:///{path}")
        await template.migrate()
        await template.dispose()  # the last connection closing folds the WAL into the file
        _MIGRATED_SQLITE = path
    return _MIGRATED_SQLITE


async def _sqlite_db(tmp_path, tmp_path_factory) -> AsyncIterator[Database]:
    target = tmp_path / "commops-test.db"
    shutil.copyfile(await _migrated_sqlite_file(tmp_path_factory), target)
    db = Database(f"sqlite:///{target}")
    try:
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def postgres_schema_database(*, migrate: bool = True) -> AsyncIterator[Database]:
    """A `Database` on the real PostgreSQL, confined to a new schema that is dropped after."""
    require_postgres()
    async with schema_database(POSTGRES_URL, migrate=migrate) as db:
        yield db


async def _postgres_db() -> AsyncIterator[Database]:
    async with postgres_schema_database() as db:
        yield db


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def any_db(request, tmp_path, tmp_path_factory) -> AsyncIterator[Database]:
    """The migrated database on each backend: the storage contract runs on both."""
    source = _sqlite_db(tmp_path, tmp_path_factory) if request.param == "sqlite" else _postgres_db()
    async for db in source:
        yield db


@pytest.fixture
async def db(tmp_path, tmp_path_factory) -> AsyncIterator[Database]:
    """A migrated SQLite database in a temporary file (the embedded default)."""
    async for database in _sqlite_db(tmp_path, tmp_path_factory):
        yield database


@pytest.fixture
async def pg_db() -> AsyncIterator[Database]:
    async for database in _postgres_db():
        yield database


@pytest.fixture(autouse=True)
def _heap_unfrozen() -> Iterator[None]:
    """`commops run` in-process settles the heap (`bot.heap`): give the next test a live one,
    collected as usual."""
    yield
    release_heap()


@pytest.fixture
def cli_sandbox(tmp_path, monkeypatch):
    """For tests that run `commops` in-process: an empty working directory, no database URL
    from the environment, and the root logger given back as it was."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COMMOPS_DATABASE_URL", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield tmp_path
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _fresh_faq_cache() -> None:
    """The FAQ index and the watch-word registry live per process: no test may see
    another's communities."""
    FAQ_CACHE.clear()
    WATCH_REGISTRY.clear()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway() -> RecordingGateway:
    return RecordingGateway()


@pytest.fixture
async def services(db: Database, clock: FakeClock) -> AsyncIterator[Services]:
    writer = ActivityWriter(db, batch_size=100, flush_interval=0.05)
    await writer.start()
    yield Services(
        db=db,
        activity=writer,
        renderer=Renderer(),
        clock=clock,
        defaults=CommunityDefaults("UTC", "en"),
    )
    await writer.stop()


@pytest.fixture
def flushes(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One entry per `services.activity.flush()` call from here on (each still flushes)."""
    calls: list[None] = []
    real_flush = services.activity.flush

    async def counting_flush() -> None:
        calls.append(None)
        await real_flush()

    monkeypatch.setattr(services.activity, "flush", counting_flush)
    return calls


@pytest.fixture
def dispatcher(services: Services) -> Dispatcher:
    return build_dispatcher(services)
