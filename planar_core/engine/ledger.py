"""What the engine remembers about fills and orders beyond the orders themselves: the fills already applied (a
fill reported twice, by the stream and by REST, counts once), the fills that arrived before their order's id was
known (they attach when it is), and what an earlier run of this strategy knew (trades already in the trace, the
order types, triggers and exits it asked for) until the start-up sync adopts those orders again.

One component owns this bookkeeping; the order and fill handling (engine/updates.py) and the start-up sync
(engine/sync.py) change it only through these methods.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..model import Trade
from ..model.types import Json
from ..model.venue import FillReport


class FillLedger:
    def __init__(self) -> None:
        self._seen: set[str] = set()  # "<symbol>:<trade id>" of every fill applied
        self._orphans: dict[str, list[FillReport]] = {}  # order id -> fills that came before the order
        self._restored_trades: dict[str, list[Trade]] = {}  # client order id -> trades already in the trace
        self._restored_orders: dict[str, Json] = {}  # client order id -> what an earlier run placed

    # ------------------------------------------------------------------ fills applied
    def seen(self, symbol: str, trade_id: str) -> bool:
        return f"{symbol}:{trade_id}" in self._seen

    def mark_seen(self, symbol: str, trade_id: str) -> None:
        self._seen.add(f"{symbol}:{trade_id}")

    # ------------------------------------------------------------------ fills before their order
    def park(self, order_id: str, fill: FillReport) -> None:
        """Keep a fill whose order is not known yet under its order id."""
        self._orphans.setdefault(order_id, []).append(fill)

    def waiting_for(self, order_id: str) -> bool:
        return order_id in self._orphans

    def claim(self, order_id: str) -> list[FillReport]:
        """The fills that waited for ``order_id`` (and forget them)."""
        return self._orphans.pop(order_id, [])

    # ------------------------------------------------------------------ an earlier run's knowledge
    def restore_trade(self, client_order_id: str, trade: Trade) -> None:
        self._restored_trades.setdefault(client_order_id, []).append(trade)

    def restore_orders(self, meta: Mapping[str, Json]) -> None:
        self._restored_orders.update(meta)

    def restored_trades(self, client_order_id: str) -> list[Trade]:
        """The trades an earlier run recorded for this order (and forget them)."""
        return self._restored_trades.pop(client_order_id, [])

    def restored_order(self, client_order_id: str) -> Json:
        """What an earlier run placed under this client id ({} if nothing; forgotten once read)."""
        return self._restored_orders.pop(client_order_id, None) or {}
