"""What the engine remembers about fills and orders beyond the orders themselves: the fills already applied (a
fill reported twice, by the stream and by REST, counts once), the fills that arrived before their order's id was
known (they attach when it is), what an earlier run of this strategy knew (trades already in the trace, the
order types, triggers and exits it asked for) until the start-up sync adopts those orders again, and the cost basis
of each position the fills built (``model/pnl.py``: spot FIFO lots, futures average entry, the round trip under way),
from which each fill's realised PnL comes. The basis after each fill is in its ``trade_executed`` event, so a
restart (``engine/sync.restore_basis``) or a replay rebuilds it from the trace.

One component owns this bookkeeping; the order and fill handling (engine/updates.py) and the start-up sync
(engine/sync.py) change it only through these methods.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from ..model import AssetInstance, Order, PositionSide, Side, Trade
from ..model.json import num, obj
from ..model.pnl import Basis, Realized, fee_quote
from ..model.types import Json
from ..model.venue import FillReport

log = logging.getLogger("planar.engine.ledger")
UNDO_KEPT = 256  # emulated fills whose effect on the basis can still be undone when the real trade arrives
UNDO_FILLS = 1000  # fills applied after one emulated fill, kept to re-apply them when it is undone
PENDING_KEPT = 50  # up to so many fills after an emulated one, its undo goes in the basis snapshot (a restart keeps it)


@dataclass(frozen=True)
class _Fill:
    trade_id: str | None
    side: Side
    amount: float
    price: float
    timestamp: int
    fee: float | None
    base_fee: float
    reported: float | None

    def as_json(self) -> Json:
        return {
            "trade_id": self.trade_id,
            "side": self.side.value,
            "amount": self.amount,
            "price": self.price,
            "timestamp": self.timestamp,
            "fee": self.fee,
            "base_fee": self.base_fee,
            "reported": self.reported,
        }

    @classmethod
    def of(cls, d: Json) -> _Fill:
        fee, reported = d.get("fee"), d.get("reported")
        return cls(
            None if d.get("trade_id") is None else str(d.get("trade_id")),
            Side(str(d.get("side"))),
            num(d.get("amount")),
            num(d.get("price")),
            int(num(d.get("timestamp"))),
            None if fee is None else num(fee),
            num(d.get("base_fee")),
            None if reported is None else num(reported),
        )


@dataclass
class _Undo:
    key: str
    before: Json  # the basis before the emulated fill
    fill: _Fill  # the emulated fill itself
    later: list[_Fill] = field(default_factory=list)


def basis_key(ai: AssetInstance, position_side: PositionSide | str = PositionSide.BOTH) -> str:
    """The position a fill belongs to: the symbol (spot, one-way futures); ``<symbol>#long`` / ``#short`` in hedge
    mode (the keys the trace's positions use)."""
    side = PositionSide(position_side)
    return f"{ai.symbol}#{side.value}" if ai.is_margin and ai.hedged and side is not PositionSide.BOTH else ai.symbol


def amount_step(market: Mapping[str, object]) -> float:
    """The market's amount step (ccxt's precision in tick-size mode), 0 when it does not say."""
    return num(obj(market.get("precision")).get("amount"))


class FillLedger:
    def __init__(self) -> None:
        self._seen: set[str] = set()  # "<symbol>:<trade id>" of every fill applied
        self._orphans: dict[str, list[FillReport]] = {}  # order id -> fills that came before the order
        self._restored_trades: dict[str, list[Trade]] = {}  # client order id -> trades already in the trace
        self._restored_orders: dict[str, Json] = {}  # client order id -> what an earlier run placed
        self._booked_before: set[str] = set()  # client order ids whose fills an earlier run booked (booked_before)
        self._basis: dict[str, Basis] = {}  # basis_key -> the position's cost basis
        self._undo: dict[str, _Undo] = {}  # emulated trade id -> the basis before it, the fills since

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

    def note_booked_before(self, client_order_ids: Iterable[str]) -> None:
        """Orders whose fills the trace holds from an earlier run (its lookback): a listing that brings one back later
        (a reconnect's re-sync, a position change explained from the recent orders) must not book them again. An
        outside audit: after a restart, realised PnL, fees and fills doubled, and the futures basis held a phantom
        short that made ``close_position`` answer "nothing to close"."""
        self._booked_before.update(client_order_ids)

    def booked_before(self, client_order_id: str) -> bool:
        return client_order_id in self._booked_before

    def restored_trades(self, client_order_id: str) -> list[Trade]:
        """The trades an earlier run recorded for this order (and forget them)."""
        return self._restored_trades.pop(client_order_id, [])

    def restored_order(self, client_order_id: str) -> Json:
        """What an earlier run placed under this client id ({} if nothing; forgotten once read)."""
        return self._restored_orders.pop(client_order_id, None) or {}

    # ------------------------------------------------------------------ cost basis and realised PnL
    def basis(self, ai: AssetInstance, position_side: PositionSide | str = PositionSide.BOTH) -> Basis:
        key = basis_key(ai, position_side)
        b = self._basis.get(key)
        if b is None:
            b = self._basis[key] = Basis(
                ai.symbol,
                not ai.is_margin,
                PositionSide(position_side).value if key != ai.symbol else "both",
                amount_step(ai.market),
                num(ai.market.get("contractSize"), 1.0) or 1.0,
            )
        return b

    def bases(self) -> Mapping[str, Basis]:
        """Every position's basis by key (read-only use: the status, tests)."""
        return self._basis

    def forget_basis(self) -> None:
        """Every basis dropped (a replay loads the trace's instead)."""
        self._basis.clear()
        self._undo.clear()

    def restore_basis(self, ai: AssetInstance, snapshot: Json) -> None:
        """The basis an earlier run (or a replayed trace) left after its last fill of this position, and the undo of
        its emulated fills still waiting for their real trades (``_pending``), rebuilt by applying again the fills
        since the first of them."""
        side = PositionSide(str(snapshot.get("position_side") or "both"))
        fresh = self.basis(ai, side)
        key = basis_key(ai, side)
        self._basis[key] = Basis.from_snapshot(snapshot, fresh.spot, fresh.step, fresh.contract_size)
        for tid in [t for t, u in self._undo.items() if u.key == key]:
            del self._undo[tid]
        pending = snapshot.get("pending")
        if not isinstance(pending, dict):
            return
        emulated = {str(t) for t in pending.get("emulated") or []}
        again = Basis.from_snapshot(obj(pending.get("before")), fresh.spot, fresh.step, fresh.contract_size)
        self._reapply(key, again, [_Fill.of(obj(row)) for row in pending.get("fills") or []], emulated)

    def _reapply(self, key: str, basis: Basis, fills: list[_Fill], waiting: set[str]) -> None:
        """Apply ``fills`` to ``basis`` again, in order, recording an undo for each emulated one still ``waiting`` for
        its real trade (and each fill as a later one of those recorded before it)."""
        for f in fills:
            for u in self._undo.values():
                if u.key == key:
                    u.later.append(f)
            if f.trade_id in waiting:
                self._undo[f.trade_id] = _Undo(key, basis.snapshot(), f)
            self._apply(basis, f)

    def realize(self, ai: AssetInstance, order: Order, trade: Trade, replaces: list[str] | None = None) -> Realized:
        """Apply ``trade`` to its position's basis: what it realised, the round trip it ended, the basis after it.
        ``replaces``: emulated fills this real trade stands for, whose effect is undone first."""
        if replaces:
            self._undo_emulated(replaces)
        b = self.basis(ai, order.position_side)
        key = basis_key(ai, order.position_side)
        base_fee = trade.fee if trade.fee and trade.fee_currency == ai.base and b.spot else 0.0
        f = _Fill(
            trade.trade_id,
            trade.side,
            trade.amount,
            trade.price,
            trade.timestamp,
            fee_quote(trade.fee, trade.fee_currency, trade.price, ai.base, ai.quote),
            base_fee,
            trade.realized_pnl,  # the venue's figure, when it reported one
        )
        for u in self._undo.values():
            if u.key == key:
                u.later.append(f)
        for tid in [t for t, u in self._undo.items() if len(u.later) > UNDO_FILLS]:
            del self._undo[tid]
        if trade.emulated and trade.trade_id is not None:
            self._undo[trade.trade_id] = _Undo(key, b.snapshot(), f)
            while len(self._undo) > UNDO_KEPT:
                del self._undo[next(iter(self._undo))]
        realized = self._apply(b, f)
        pending = self._pending(key)
        return replace(realized, basis={**realized.basis, "pending": pending}) if pending else realized

    def _pending(self, key: str) -> Json | None:
        """The emulated fills of ``key`` still waiting for their real trades, as the basis snapshot carries them: the
        basis before the first, and every fill applied since. A restart rebuilt the basis with their effect but not
        the means to undo it, so the real trade counted on top (an outside crash trial: realised PnL doubled, the
        strategy's own position 1.0 against 0.5 on the exchange)."""
        waiting = [(tid, u) for tid, u in self._undo.items() if u.key == key]
        if not waiting or len(waiting[0][1].later) > PENDING_KEPT:
            return None
        first = waiting[0][1]
        return {"before": first.before, "fills": [f.as_json() for f in [first.fill, *first.later]], "emulated": [tid for tid, _ in waiting]}

    @staticmethod
    def _apply(b: Basis, f: _Fill) -> Realized:
        return b.apply(f.side, f.amount, f.price, f.timestamp, f.fee, f.base_fee, f.reported)

    def _undo_emulated(self, trade_ids: list[str]) -> None:
        """Put a basis back as it was before the emulated fills ``trade_ids``, and apply again the fills that came
        after them (their own events keep the figures they were recorded with)."""
        gone = set(trade_ids)
        undos = [(tid, u) for tid, u in self._undo.items() if tid in gone]
        if not undos:
            if any(t.startswith("emu-") for t in trade_ids):
                log.warning("emulated fills %s are no longer undoable: the basis keeps their effect", trade_ids)
            return
        key = undos[0][1].key
        same = [(tid, u) for tid, u in self._undo.items() if u.key == key]  # oldest first
        _, oldest = same[0]  # undone from the oldest still waiting, not the first replaced: an older one waits too
        b = self._basis[key]
        restored = Basis.from_snapshot(oldest.before, b.spot, b.step, b.contract_size)
        # the emulated fills of this position still waiting for their trades: their snapshots predate the undo, so
        # each is recorded again as it is re-applied (else its real trade would count on top of it)
        waiting = {t for t, _ in same if t not in gone}
        for tid, _ in same:
            del self._undo[tid]
        self._reapply(key, restored, [f for f in [oldest.fill, *oldest.later] if f.trade_id not in gone], waiting)
        self._basis[key] = restored
