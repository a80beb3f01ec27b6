"""ccxt.pro's order cache, with an updated order found from the newest end.

ccxt keeps the orders the user stream reported in an ``ArrayCacheBySymbolById`` (``ordersLimit``, 1 000 by
default) and, when an order it holds is reported again (every order is: NEW, then its fills, its cancel or its
expiry), finds the order's place with ``deque.index`` on a deque of ``(symbol, id)`` tokens, from the oldest. Once a
thousand orders have passed, every update of a fresh order compared about a thousand tokens before finding it at
the end: about 50 us of the engine's CPU per order on the benchmark machine, on the event loop's thread, growing
with the cache. The tokens are distinct (one per cached order), so the search from the newest end finds the same
place, usually at once.
"""

from __future__ import annotations

import collections
import sys

from ccxt.async_support.base.ws.cache import ArrayCacheBySymbolById


class NewestFirstIndex(collections.deque[object]):
    """The cache's token deque, whose ``index`` looks from the newest end (the same answer: tokens are distinct)."""

    def index(self, value: object, start: int = 0, stop: int = sys.maxsize) -> int:
        if start or stop != sys.maxsize:
            return super().index(value, start, stop)
        last = len(self) - 1
        for back, token in enumerate(reversed(self)):
            if token == value:
                return last - back
        raise ValueError(f"{value!r} is not in the order cache")


def order_cache(limit: int | None) -> ArrayCacheBySymbolById:
    """ccxt's order cache of ``limit`` orders, its token index searched from the newest end. The index is ccxt's
    private attribute: a ccxt whose cache keeps none (or keeps it otherwise) gets its own cache back unchanged."""
    cache = ArrayCacheBySymbolById(limit)
    tokens = getattr(cache, "_index", None)
    if isinstance(tokens, collections.deque):
        cache._index = NewestFirstIndex(tokens, tokens.maxlen)
    return cache
