"""The heap once the bot has started: start-up frozen, young collections spaced out."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# The youngest generation is collected once this many container objects more were made than
# freed (CPython's default is 700). Handling a message makes and frees a few hundred, so at
# full ingest speed the default collected ~180 times a second and promoted enough short-lived
# objects to set off a full collection about every second (119 ms each; 13 % of the run, see
# "The garbage collector" in `bench/README.md`). Reference counting frees nearly all of them
# anyway; the collector is for cycles, and they wait a little longer now.
YOUNG_EVERY = 10_000
_THRESHOLDS_BEFORE = gc.get_threshold()


def settle_heap() -> int:
    """Collect start-up's garbage, freeze what is left, and space the youngest generation's
    collections out (`YOUNG_EVERY`); returns how many objects were frozen.

    Imports, templates and wiring leave some 140,000 objects that live as long as the process.
    A full collection walks every one of them with the event loop stopped (about 90 ms on a
    small machine), each time enough new objects have survived; frozen, they are never walked
    again, and a command waiting behind a collection waits for the new objects only.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_EVERY, middle, old)
    return gc.get_freeze_count()


def release_heap() -> None:
    """Undo `settle_heap` (benchmarks and tests that run the bot in-process): the frozen
    objects collectable again, the thresholds as they were when this module was imported."""
    gc.unfreeze()
    gc.set_threshold(*_THRESHOLDS_BEFORE)


@contextmanager
def settled() -> Iterator[int]:
    """`settle_heap` for the block (benchmarks running the bot in-process, timed as
    `commops run` runs), `release_heap` after it; gives how many objects were frozen."""
    try:
        yield settle_heap()
    finally:
        release_heap()
