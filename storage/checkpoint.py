"""SQLite WAL checkpoints on a background thread, off the writers' commit path.

With SQLite's automatic checkpoints, the connection whose commit crosses the threshold
copies the WAL back into the database and fsyncs it, inside that commit: on the ingest
benchmark half of the activity writer's time went into such commits. Here one thread with
its own connection runs a PASSIVE checkpoint (it never blocks readers or writers) every
`busy` seconds while frames arrive, and every `idle` seconds when none do; the writers'
own threshold is only a backstop (see `storage/db.py`).

Small, frequent checkpoints keep each fsync short: at 5,000 events a second, checkpoints
every 0.5 s took 40 ms each and the writer's commits stalled behind them. The WAL file
keeps its size when SQLite restarts it (no `journal_size_limit`: truncating a 150 MB WAL
inside a writer's commit took 60 ms); this thread gives the space back with a TRUNCATE
checkpoint once the database has been quiet for `quiet` seconds, and only if nobody is
reading or writing at that moment.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

BUSY_EVERY = 0.1
IDLE_EVERY = 1.0
QUIET_FOR = 2.0
# A WAL file up to this size is left as it is (SQLite's own default threshold is ~4 MB).
KEEP_BYTES = 4 * 1024 * 1024


@dataclass
class CheckpointPace:
    """When to checkpoint next, and when to give the WAL's space back: fed each pass's
    frame count (the WAL's last frame), it answers in seconds and yes/no."""

    busy: float = BUSY_EVERY
    idle: float = IDLE_EVERY
    quiet: float = QUIET_FOR
    _frames: int = field(default=-1, init=False)
    # Seconds without a new frame, as far as the passes can tell.
    _unchanged: float = field(default=0.0, init=False)
    _waited: float = field(default=0.0, init=False)

    def after(self, frames: int) -> float:
        """Seconds until the next pass, given the WAL's frame count seen by this one."""
        if frames != self._frames:
            self._frames, self._unchanged = frames, 0.0
            self._waited = self.busy
        else:
            self._unchanged += self._waited
            self._waited = self.busy if self._unchanged < self.quiet else self.idle
        return self._waited

    def quiet_now(self) -> bool:
        """No frame for `quiet` seconds: a good moment to truncate the WAL (once)."""
        return self.quiet <= self._unchanged < self.quiet + self._waited


class WalCheckpointer:
    """Checkpoint one SQLite file's WAL on a daemon thread, paced by `CheckpointPace`."""

    def __init__(self, path: str, *, pace: CheckpointPace | None = None) -> None:
        self.path = path
        self.pace = pace or CheckpointPace()
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
                target=_run, args=(self.path, self.pace, self._stop), daemon=True,
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


def checkpoint(connection: sqlite3.Connection, mode: str = "PASSIVE") -> tuple[int, int, int]:
    """One checkpoint: (busy, frames in the WAL, frames checkpointed)."""
    busy, frames, done = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return int(busy), int(frames), int(done)


def give_back(connection: sqlite3.Connection, path: str, keep: int = KEEP_BYTES) -> bool:
    """Truncate the WAL file if it is over `keep` bytes and nobody is using it right now.

    The connection must not wait for locks (`timeout=0`): a TRUNCATE checkpoint holds the
    write lock while it waits for readers, so here it gives up at once instead."""
    try:
        size = os.path.getsize(f"{path}-wal")
    except OSError:
        return False
    if size <= keep:
        return False
    busy, _, _ = checkpoint(connection, "TRUNCATE")
    return busy == 0


def _run(path: str, pace: CheckpointPace, stop: threading.Event) -> None:
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
    except sqlite3.Error:
        log.exception("WAL checkpoints for %s could not start", path)
        return
    every = pace.busy
    try:
        while not stop.wait(every):
            try:
                _, frames, _ = checkpoint(connection)
                every = pace.after(frames)
                if pace.quiet_now():
                    give_back(connection, path)
            except sqlite3.Error:
                # Locked by a schema change or a file being replaced: try again next time.
                log.debug("WAL checkpoint of %s skipped", path, exc_info=True)
    finally:
        connection.close()
