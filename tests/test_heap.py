"""Start-up's heap is frozen: full collections no longer walk it."""

from __future__ import annotations

import gc
import weakref

from bot.heap import freeze_start_up


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_start_up_garbage_is_collected_and_the_rest_frozen() -> None:
    kept = _Node()
    garbage = weakref.ref(_Node())  # a cycle nobody holds
    frozen = freeze_start_up()
    assert frozen == gc.get_freeze_count() > 0
    assert garbage() is None
    assert all(o is not kept for o in gc.get_objects())  # frozen: no collection walks it
    gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())
