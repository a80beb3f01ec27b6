"""The process's heap held out of the garbage collector's full passes while a strategy trades or a backtest runs.

Why: CPython's cyclic collector walks every tracked object of the oldest generation on a full pass, on the event
loop's thread, with everything stopped. A trading process holds several hundred thousand long-lived objects after its
start (the exchange's markets as ccxt's dicts, the config, the imported modules):

* live, a full pass over them took 105-130 ms on the benchmark machine: an order, a fill or an emergency stop waiting
  that long behind a collection of objects that live as long as the process. Frozen, the longest collection pause
  of 1 000 orders was 1.3 ms (``bench/engine_hot_path.py``, its "slowest order" row);
* in a backtest a full pass ran about every 70 000 new objects, and cost a tenth of a long run.

``gc.freeze()`` moves every object alive at the start into a generation the collector never walks; the passes then
cover only what the session creates. What it costs: a frozen object that later becomes unreachable *inside a
reference cycle* is not reclaimed until the heap is thawed (objects freed by their reference count, most of them, are
freed as always). So garbage is collected first (nothing unreachable is frozen), and the heap is thawed when the block
ends: a process running many sessions or backtests leaks nothing. Process-wide: the live flow uses it around one
strategy's session (a process of its own), the backtest around its candle loop.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator

log = logging.getLogger("planar.runner.heap")


@contextlib.contextmanager
def frozen_heap() -> Iterator[int]:
    """Collect, then freeze everything alive, for the block; thawed when it ends. Yields how many objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("heap settled: %d objects held out of the collector's passes", frozen)
    try:
        yield frozen
    finally:
        gc.unfreeze()
