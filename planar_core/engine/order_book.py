"""The engine's record of its orders: each asset's orders and their fills, and what it knows about them besides.

The one owner of order state. An order enters an asset's map (``add``), changes status (``set_status``: the caller,
``updates.transition``, has checked the transition table and records the event) and gains fills (``add_fill``) here
and nowhere else. The book also keeps what the order path learned on the way: the orders ``call()`` answered
UNKNOWN for (their exchange params, for one re-send if proven absent) and how their verdicts came out; the orders
and exchange ids of other programs (never adopted, their fills never ours); the entries whose exits were placed;
the latest refusal of ``call()``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping, Set
from types import MappingProxyType

from ..model import AssetInstance, Order, OrderStatus, Trade
from ..model.refusals import Refusal
from ..model.types import Json


class OrderBook:
    def __init__(self, keep: int = 5000) -> None:
        """``keep``: closed orders and trades each asset holds in memory (``history_kept``); past twice that, the
        oldest go (the trace keeps them), so a long run's memory follows its open orders, not its history."""
        self.keep = keep
        self._answered_unknown: dict[str, Json] = {}
        self._unknown_outcomes: Counter[str] = Counter()
        self._foreign: set[str] = set()
        self._foreign_ids: set[str] = set()
        self._bracketed: set[str] = set()
        self._checking: set[str] = set()  # exits being looked up, entries' exits being placed again (brackets)
        self._retries: Counter[str] = Counter()  # an entry's exits placed again after proven absent (brackets._absent)
        self._exits_started: set[str] = set()  # entries whose exits this process set out to place (start_exits)
        self._exit_locks: dict[str, asyncio.Lock] = {}  # per symbol: one sizing of its exits at a time (exits_lock)
        self._outside: dict[str, frozenset[str]] = {}  # note_outside_universe
        self.last_refusal: Refusal | None = None  # why call() last answered None (model/refusals.py)

    # ----------------------------------------------------------------- orders
    def add(self, ai: AssetInstance, order: Order) -> None:
        """``order`` enters ``ai``'s map (placed by this engine, adopted, restored from an earlier run)."""
        ai.orders[order.client_order_id] = order

    def set_status(self, ai: AssetInstance, order: Order, new: OrderStatus) -> None:
        """Move ``order`` to ``new``; legality is the caller's check (``updates.transition``), made before."""
        order.status = new
        ai.orders.track(order)
        if not order.is_open and len(ai.orders) > 2 * self.keep:
            ai.orders.forget_closed(self.keep)

    def add_fill(self, ai: AssetInstance, order: Order | None, trade: Trade) -> None:
        """A fill of ``order``: on the order and on the asset's trades (``order`` None: a replayed trace's trade whose
        order it does not hold)."""
        if order is not None:
            order.trades.append(trade)
        ai.trades.append(trade)
        if len(ai.trades) > 2 * self.keep:
            del ai.trades[: -self.keep]

    def drop_fill(self, ai: AssetInstance, order: Order, trade: Trade) -> None:
        """Take back a fill emulated from an order update: the exchange's own trade report replaces it."""
        order.trades.remove(trade)
        if trade in ai.trades:
            ai.trades.remove(trade)

    def forget(self, assets: Iterable[AssetInstance]) -> None:
        """Every order and fill of ``assets`` (a replayed trace rebuilds them)."""
        for ai in assets:
            ai.orders.clear()
            ai.trades.clear()

    def refused(self, refusal: Refusal) -> Refusal:
        """``call()`` answers None for ``refusal``: kept as the latest (the strategy reads it)."""
        self.last_refusal = refusal
        return refusal

    # ----------------------------------------------------------------- unknown outcomes
    def answer_unknown(self, client_order_id: str, params: Mapping[str, object]) -> None:
        """``call()`` answered UNKNOWN for this order, sent with ``params`` (kept for one re-send if proven absent)."""
        self._answered_unknown[client_order_id] = dict(params)
        self._unknown_outcomes["unknown_answered"] += 1

    def take_unknown(self, client_order_id: str) -> Json | None:
        """The params an UNKNOWN answer kept for this order, once (a second re-send can never follow)."""
        return self._answered_unknown.pop(client_order_id, None)

    @property
    def answered_unknown(self) -> Mapping[str, Json]:
        """Client id -> the params of an order ``call()`` answered UNKNOWN for, not decided yet (read-only)."""
        return MappingProxyType(self._answered_unknown)

    def count(self, outcome: str) -> None:
        """One more verdict: ``unknown_resolved_found``, ``unknown_proven_absent`` or ``unknown_resent``."""
        self._unknown_outcomes[outcome] += 1

    @property
    def unknown_outcomes(self) -> Mapping[str, int]:
        """How the run's unknown outcomes came out (``unknown_answered``, ``unknown_resolved_found``,
        ``unknown_proven_absent``, ``unknown_resent``): a copy, where a name never counted reads 0."""
        return Counter(self._unknown_outcomes)

    # ----------------------------------------------------------------- other programs' orders, placed exits
    def mark_foreign(self, key: str, order_id: str | None = None) -> None:
        """An order another program placed (its key: client id or exchange id), ignored or cancelled by policy;
        ``order_id``: its fills are not ours either."""
        self._foreign.add(key)
        if order_id is not None:
            self._foreign_ids.add(order_id)

    def mark_foreign_id(self, order_id: str) -> None:
        """Fills of exchange order ``order_id`` are another engine's (twins.py)."""
        self._foreign_ids.add(order_id)

    def is_foreign(self, key: str) -> bool:
        return key in self._foreign

    def is_foreign_id(self, order_id: str) -> bool:
        return order_id in self._foreign_ids

    @property
    def foreign_orders(self) -> Set[str]:
        return frozenset(self._foreign)

    @property
    def foreign_order_ids(self) -> Set[str]:
        return frozenset(self._foreign_ids)

    @property
    def bracketed(self) -> Set[str]:
        return frozenset(self._bracketed)

    def mark_bracketed(self, client_order_id: str) -> bool:
        """The exits of entry ``client_order_id`` are placed; False if they were already."""
        if client_order_id in self._bracketed:
            return False
        self._bracketed.add(client_order_id)
        return True

    def note_outside_universe(self, orders: Mapping[str, Iterable[str]]) -> None:
        """The strategy's own orders the start-up found resting on symbols outside its universe (symbol -> client
        ids): not managed, but its emergency stop cancels them."""
        self._outside = {sym: frozenset(cids) for sym, cids in orders.items()}

    def outside_universe(self) -> Mapping[str, frozenset[str]]:
        return self._outside

    def start_check(self, client_order_id: str) -> bool:
        """A check of exit ``client_order_id`` against the exchange starts; False while one is under way."""
        if client_order_id in self._checking:
            return False
        self._checking.add(client_order_id)
        return True

    def end_check(self, client_order_id: str) -> None:
        self._checking.discard(client_order_id)

    def count_retry(self, key: str) -> int:
        """How many times ``key`` was retried in this process, this one included."""
        self._retries[key] += 1
        return self._retries[key]

    @property
    def checks_under_way(self) -> int:
        return len(self._checking)

    def exits_lock(self, symbol: str) -> asyncio.Lock:
        """Held while the exits on ``symbol`` are sized and sent (an entry's, a trim's, a resize): each reads the
        others' exits as they are once the others are done. A review: a trim that ran while an entry's exits were
        being sent saw the stop only, and the take-profit came after it at the entry's size."""
        return self._exit_locks.setdefault(symbol, asyncio.Lock())

    def start_exits(self, client_order_id: str) -> bool:
        """This process sets out to place the exits of entry ``client_order_id``; False if it already did. The one
        guard of the two paths that place them at a restart: the start-up sync seeing the entry fill, and the exits
        due from before the crash (``brackets.resume``). An outside trial: both placed a take-profit, 3 of 3."""
        if client_order_id in self._exits_started:
            return False
        self._exits_started.add(client_order_id)
        return True

    def restore_bracketed(self, client_order_ids: Iterable[str]) -> None:
        """Entries whose exits an earlier run placed (restored from the trace)."""
        self._bracketed.update(client_order_ids)
