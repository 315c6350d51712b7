"""The database: engine, sessions, SQLite pragmas and migrations, for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from storage.checkpoint import WalCheckpointer
from storage.sqlite_driver import one_trip_dbapi
from storage.writelock import WriteGate

log = logging.getLogger(__name__)


async def transition(
    session: AsyncSession, table: Any, row_id: int, *conditions: Any, **values: Any
) -> bool:
    """Update row `row_id` of `table` with `values` only while `conditions` hold; True for the
    one caller that did it. Exactly-once state changes (a draw, a close) all claim this way."""
    changed = await session.execute(
        update(table)
        .where(table.c.id == row_id, *conditions)
        .values(**values)
        .returning(table.c.id)
    )
    return changed.scalar_one_or_none() is not None


def dialect_insert(session: AsyncSession) -> Any:
    """The session's dialect `insert`, for `ON CONFLICT` upserts (SQLite and PostgreSQL)."""
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


class DialectInsert:
    """An `INSERT … ON CONFLICT` statement built once per dialect, for paths run per command.

    Building a statement costs more than running it on a warm connection (SQLAlchemy coerces
    every value and comparison); one built once also keeps its cache key. Execute it with
    the row as parameters: `session.execute(stmt.of(session), row)`.
    """

    def __init__(self, build: Callable[[Any], Any]) -> None:
        self._build = build  # takes the dialect's `insert`
        self._built: dict[str, Any] = {}

    def of(self, session: AsyncSession) -> Any:
        name = session.bind.dialect.name
        built = self._built.get(name)
        if built is None:
            built = self._built[name] = self._build(dialect_insert(session))
        return built


MIGRATIONS = Path(__file__).parent / "migrations"

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


class DatabaseURLError(ValueError):
    """The database URL names a backend commops does not support."""


def async_url(url: str | URL) -> URL:
    """Accept plain `sqlite:///file.db` or `postgresql://...` and pick the async driver."""
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise DatabaseURLError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


# Per connection. `cache_size` 16 MB (the default is 2 MB): the activity log's indexes
# outgrow the default within hours of a busy community, and each miss is a read in the
# writer's transaction. Checkpoints run on `WalCheckpointer`'s thread; the writers' own
# threshold (about 160 MB of WAL) is only a backstop should that thread fall behind. No
# `journal_size_limit`: it truncates the WAL inside a writer's commit (60 ms for a 150 MB
# file); the checkpointer gives the space back once the database is quiet.
SQLITE_PRAGMAS = (
    "journal_mode=WAL",  # readers (reports) run while the activity writer commits
    "foreign_keys=ON",
    "synchronous=NORMAL",
    "busy_timeout=10000",
    "cache_size=-16384",
    "wal_autocheckpoint=40000",
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class Database:
    """One engine and its session factory; `session()` is a unit of work that never autocommits."""

    def __init__(self, url: str | URL, *, echo: bool = False, **engine_args: Any) -> None:
        self.url = async_url(url)
        self.dialect = self.url.get_backend_name()
        self.checkpointer: WalCheckpointer | None = None
        args: dict[str, Any] = {"echo": echo, **engine_args}
        if self.dialect == "sqlite":
            # One trip to SQLite's thread per statement instead of four (`sqlite_driver`).
            args.setdefault("module", one_trip_dbapi())
            database = self.url.database or ""
            if database in ("", ":memory:"):
                args.setdefault("poolclass", StaticPool)
            else:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                self.checkpointer = WalCheckpointer(str(Path(database).expanduser()))
                # The connection used last has the warmest page cache (each SQLite connection
                # keeps its own, and drops it once another connection wrote).
                args.setdefault("pool_use_lifo", True)
        else:
            args.setdefault("pool_pre_ping", True)
        self.engine: AsyncEngine = create_async_engine(self.url, **args)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", self._on_sqlite_connect)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite lets one writer in at a time; this process's writers (the activity writer's
        # batches, units of work, scheduler jobs) queue for it in order on the loop.
        self.write_gate = (
            WriteGate.install(self.engine.sync_engine) if self.dialect == "sqlite" else None
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """`session()` for a short transaction that writes, holding SQLite's write gate from
        its start (a burst of scheduler jobs: 67 -> 97 items/s measured, against taking it
        at the first write); on PostgreSQL just `session()`."""
        async with self.session() as session:
            if self.write_gate is not None:
                await self.write_gate.take(await session.connection())
            yield session

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision` with Alembic."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current_revision)

    def _on_sqlite_connect(self, dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        if self.checkpointer is not None:
            self.checkpointer.start()  # the file exists now, in WAL mode

    async def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        await self.engine.dispose()

    def describe(self) -> str:
        """The URL with any password hidden, for logs and messages."""
        return self.url.render_as_string(hide_password=True)


@asynccontextmanager
async def schema_database(
    url: str | URL, *, prefix: str = "t", migrate: bool = True
) -> AsyncIterator[Database]:
    """A `Database` on PostgreSQL in a new schema, dropped afterwards (tests, benchmarks)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(async_url(url))
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        db = Database(url, connect_args={"server_settings": {"search_path": schema}})
        try:
            if migrate:
                await db.migrate()
            yield db
        finally:
            await db.dispose()
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
