"""What start-up leaves on the heap, kept out of the garbage collector's full collections."""

from __future__ import annotations

import gc


def freeze_start_up() -> int:
    """Collect start-up's garbage, then freeze what is left; returns how many objects that is.

    Imports, templates and wiring leave some 140,000 objects that live as long as the process.
    A full collection walks every one of them with the event loop stopped (about 90 ms on a
    small machine), each time enough new objects have survived; frozen, they are never walked
    again, and a command waiting behind a collection waits for the new objects only.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
