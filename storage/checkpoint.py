"""SQLite WAL checkpoints on a background thread, off the writers' commit path.

With SQLite's automatic checkpoints, the connection whose commit crosses the threshold
copies the WAL back into the database and fsyncs it, inside that commit: on the ingest
benchmark half of the activity writer's time went into such commits. Here one thread with
its own connection runs a PASSIVE checkpoint (it never blocks readers or writers) every
`every` seconds, and the writers' own threshold is only a backstop (see `storage/db.py`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 0.5


class WalCheckpointer:
    """Checkpoint one SQLite file's WAL periodically on a daemon thread."""

    def __init__(self, path: str, *, every: float = CHECKPOINT_EVERY) -> None:
        self.path = path
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=_run, args=(self.path, self.every, self._stop), daemon=True,
                name=f"wal-checkpoint:{self.path}",
            )  # fmt: skip
            self._thread.start()
        # An owner dropped without stop() (a test, a script) must not leave the thread behind.
        weakref.finalize(self, self._stop.set)

    def stop(self) -> None:
        """Stop the thread and wait for it; the last connection to close checkpoints the rest.

        A later `start()` (the engine reconnecting after `dispose()`) starts a new thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()


def checkpoint(connection: sqlite3.Connection) -> tuple[int, int, int]:
    """One PASSIVE checkpoint: (busy, frames in the WAL, frames checkpointed)."""
    busy, frames, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(busy), int(frames), int(done)


def _run(path: str, every: float, stop: threading.Event) -> None:
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        log.exception("WAL checkpoints for %s could not start", path)
        return
    try:
        while not stop.wait(every):
            try:
                checkpoint(connection)
            except sqlite3.Error:
                # Locked by a schema change or a file being replaced: try again next time.
                log.debug("WAL checkpoint of %s skipped", path, exc_info=True)
    finally:
        connection.close()
