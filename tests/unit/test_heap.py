"""runner/heap.py: the start's objects are held out of the collector's passes while trading, garbage is not."""

from __future__ import annotations

import gc
import weakref

from planar_core.runner.heap import frozen_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_the_heap_is_frozen_for_the_session_and_thawed_after_it() -> None:
    kept = Node()  # alive at the start: frozen
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage  # unreachable cycle left by the start: collected first, never frozen
    with frozen_heap() as frozen:
        assert gone() is None
        assert frozen > 0 and gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects(generation=2))  # no full pass walks it
    assert gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects(generation=2))  # thawed: collectable again
