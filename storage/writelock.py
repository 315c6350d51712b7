"""SQLite's one write lock, queued for on the event loop instead of in SQLite's busy handler.

SQLite lets one transaction write at a time; a second writer waits in the busy handler, which
sleeps in steps of up to 100 ms, so a short unit of work behind the activity writer's batch
could wait ten times longer than the batch took. `WriteGate.install` makes every transaction
on an engine take an in-process FIFO gate at its first write statement and give it back at
commit or rollback: writers then queue on the loop and start the moment the lock is free.
Statements that only read never take it (WAL readers do not block). The gate only orders
writers of this process; another process still meets the busy handler, as before.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection

# Greenlet bridge helpers: an event listener runs as sync code inside the greenlet of the
# async call that reached it, and may await there.
from sqlalchemy.util.concurrency import await_, in_greenlet

log = logging.getLogger(__name__)

# Connection.info key: this connection's transaction holds the gate.
HOLDS = "commops_write_gate"
# As long as SQLite's own `busy_timeout`: past it, go on and let SQLite decide.
WAIT_SECONDS = 10.0
# Statements that never write (a `WITH` may: it takes the gate).
_READS = ("SELECT", "PRAGMA")

_GATES: weakref.WeakKeyDictionary[Engine, WriteGate] = weakref.WeakKeyDictionary()


class WriteGate:
    """A FIFO lock that a connection's transaction holds from its first write to its end."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    @classmethod
    def install(cls, engine: Engine) -> WriteGate:
        """The gate of `engine` (a sync engine, e.g. `AsyncEngine.sync_engine`), made once."""
        gate = _GATES.get(engine)
        if gate is None:
            gate = _GATES[engine] = cls()
            event.listen(engine, "before_cursor_execute", gate._before_execute)
            event.listen(engine, "commit", gate._end)
            event.listen(engine, "rollback", gate._end)
            # A connection given back without either (closed mid-transaction) frees it too.
            event.listen(engine.pool, "checkin", gate._checkin)
            # An invalidated connection (a lost or broken one) ends its transaction without
            # a readable `conn.info`, and SQLAlchemy clears the record's info afterwards.
            event.listen(engine.pool, "invalidate", gate._invalidated)
        return gate

    @property
    def held(self) -> bool:
        return self._held

    async def acquire(self) -> None:
        """Wait for the gate (FIFO), at most `WAIT_SECONDS`; TimeoutError past that."""
        if not self._held and not self._waiters:
            self._held = True
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed to us just as we gave up: pass it on
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Hand the gate to the next waiter still waiting, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # stays held: ownership passes to the waiter
                return
        self._held = False

    async def take(self, conn: AsyncConnection) -> None:
        """Hold the gate for the rest of `conn`'s transaction (the activity writer's batch,
        whose hot statements bypass the cursor events); its commit or rollback frees it."""
        if conn.info.get(HOLDS):
            return
        try:
            await self.acquire()
        except TimeoutError:
            log.warning("SQLite write gate busy for %.0fs; writing anyway", WAIT_SECONDS)
            return
        conn.info[HOLDS] = True

    def _before_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if conn.info.get(HOLDS) or statement[:32].lstrip()[:6].upper().startswith(_READS):
            return
        if not in_greenlet():
            return  # a sync engine outside the asyncio bridge: SQLite's busy handler decides
        try:
            await_(self.acquire())
        except TimeoutError:
            log.warning("SQLite write gate busy for %.0fs; writing anyway", WAIT_SECONDS)
            return
        conn.info[HOLDS] = True

    def _end(self, conn: Any) -> None:
        try:
            holds = conn is not None and conn.info.pop(HOLDS, False)
        except Exception:
            # Invalidated: `_invalidated` already gave the gate back. Raising here would
            # hide the error that invalidated it.
            return
        if holds:
            self.release()

    def _invalidated(self, dbapi_connection: Any, record: Any, exception: Any) -> None:
        self._checkin(dbapi_connection, record)

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(HOLDS, False):
            self.release()
