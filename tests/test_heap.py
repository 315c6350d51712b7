"""The heap once the bot has started: start-up frozen, young collections spaced out."""

from __future__ import annotations

import gc
import weakref

from bot.heap import YOUNG_EVERY, release_heap, settle_heap, settled


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_start_up_garbage_is_collected_and_the_rest_frozen() -> None:
    kept = _Node()
    garbage = weakref.ref(_Node())  # a cycle nobody holds
    frozen = settle_heap()
    assert frozen == gc.get_freeze_count() > 0
    assert garbage() is None
    assert all(o is not kept for o in gc.get_objects())  # frozen: no collection walks it
    release_heap()
    assert any(o is kept for o in gc.get_objects())


def test_young_collections_are_spaced_out_and_given_back() -> None:
    before = gc.get_threshold()
    settle_heap()
    assert gc.get_threshold() == (YOUNG_EVERY, *before[1:])
    cycle = weakref.ref(_Node())
    gc.collect()  # a cycle still goes at the next collection
    assert cycle() is None
    release_heap()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_settled_gives_the_heap_back_after_the_block() -> None:
    before = gc.get_threshold()
    with settled() as frozen:
        assert frozen > 0 and gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_EVERY
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
