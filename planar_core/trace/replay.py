"""Rebuild a strategy's orders, trades, balances and positions from its trace alone.

Balances and positions are last-value-wins per currency / symbol; orders are
folded from their events in order; trades are the ``trade_executed`` events.
The fold is vectorised with pandas, so replay runs at hundreds of thousands of
events per second. ``on_event`` drives strategy logic event by event in a local
simulation when given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np
import pandas as pd

from ..model import Side, Trade
from ..model.json import integer, num, opt_num, text
from ..model.types import Json
from .files import TraceFiles
from .reading import read_trace, to_records
from .store import EventTrace

if TYPE_CHECKING:
    from ..engine.strategy import Strategy


ORDER_STATUS = {
    "order_placed": "open",
    "order_adopted": "open",
    "order_updated": None,
    "order_filled": "closed",
    "order_cancelled": "canceled",
    "order_failed": "failed",
}


@dataclass
class ReplayedState:
    orders: pd.DataFrame  # one row per client order id: symbol, side, amount, price, status, filled, order_id
    trades: pd.DataFrame  # one row per trade_executed event
    balances: dict[str, dict[str, float]] = field(default_factory=dict)
    positions: dict[str, dict[str, float]] = field(default_factory=dict)
    events: int = 0


def replay_events(df: pd.DataFrame) -> ReplayedState:
    """Fold events (a trace's DataFrame with payloads) into orders, trades, balances and positions."""
    kinds = df["kind"].astype(object)
    # balances / positions: the payload of each update holds the new values of what changed
    balances: dict[str, dict[str, float]] = {}
    for payload in df.loc[kinds == "balance_updated", "payload"]:
        balances.update(payload.get("payload", {}))
    positions: dict[str, dict[str, float]] = {}
    for payload in df.loc[kinds == "position_updated", "payload"]:
        positions.update(payload.get("payload", {}))
    positions = {s: p for s, p in positions.items() if p.get("contracts")}

    order_rows = df[kinds.isin(list(ORDER_STATUS)) & df["client_order_id"].notna()]
    if len(order_rows):
        # the event's own status (expired vs canceled) wins over the one its kind implies
        implied = order_rows["kind"].astype(object).map(ORDER_STATUS)
        frame = pd.DataFrame(
            {
                "client_order_id": order_rows["client_order_id"].astype(object).to_numpy(),
                "symbol": order_rows["symbol"].astype(object).to_numpy(),
                "side": order_rows["side"].astype(object).to_numpy(),
                "amount": order_rows["amount"].to_numpy(),
                "price": order_rows["price"].to_numpy(),
                "order_id": order_rows["order_id"].astype(object).to_numpy(),
                "status": order_rows["status"].astype(object).where(order_rows["status"].notna(), implied).to_numpy(),
                "filled": order_rows["filled"].to_numpy(),
            }
        )
        placed = frame.groupby("client_order_id", sort=False).first()  # the intent carries side, amount, price
        last = frame.groupby("client_order_id", sort=False).last()  # later events carry status, fill, exchange id
        orders = placed[["symbol", "side", "amount", "price"]].join(last[["status", "filled", "order_id"]])
        orders["filled"] = pd.to_numeric(orders["filled"], errors="coerce").fillna(0.0)
        orders = orders.reset_index()
    else:
        orders = pd.DataFrame(columns=["client_order_id", "symbol", "side", "amount", "price", "status", "filled", "order_id"])
    is_trade = (kinds == "trade_executed").to_numpy()
    trades = df.loc[is_trade, ["timestamp", "symbol", "client_order_id", "order_id", "side", "amount", "price", "fee", "trade_id"]].copy()
    for name in ("symbol", "client_order_id", "order_id", "side", "trade_id"):
        trades[name] = trades[name].astype(object)
    trade_payloads = [p or {} for p in df.loc[is_trade, "payload"]]
    trades["emulated"] = [bool(p.get("emulated")) for p in trade_payloads]
    # emulated trades that a real trade replaced later (named in its ``replaces``) are not fills of their own
    replaced = {r for p in trade_payloads for r in (p.get("replaces") or [])}
    if replaced:
        trades = trades[~trades["trade_id"].isin(replaced)]
    return ReplayedState(orders, trades.reset_index(drop=True), balances, positions, len(df))


S = TypeVar("S")


def replay_from_trace(s: S, on_event: Callable[[S, Json], None] | None = None) -> ReplayedState:
    """Rebuild state from ``s``'s trace (a Strategy with an EventTrace sink, an EventTrace, or a trace root).

    When ``s`` is a Strategy, its local state (orders per asset, trades, balances, positions) is replaced by the
    rebuilt one. ``on_event(s, event)`` is called for every event in order, to drive strategy logic offline.
    """
    source = getattr(s, "sink", s)
    while not isinstance(source, (EventTrace, TraceFiles, str)) and hasattr(source, "inner"):  # a wrapper's trace
        source = source.inner
    if not isinstance(source, (EventTrace, TraceFiles, str)):
        raise TypeError(
            f"replay_from_trace needs a strategy with an EventTrace, an EventTrace or a trace root, not {type(source).__name__}"
        )
    if isinstance(source, EventTrace):
        source.sync()
    df = read_trace(source)
    state = replay_events(df)
    if hasattr(s, "universe"):  # a strategy: its local state becomes the rebuilt one
        _load_into_strategy(cast("Strategy", s), state)
    if on_event is not None:
        for event in to_records(df):
            on_event(s, event)
    return state


def _records(df: pd.DataFrame) -> list[Json]:
    """Rows as mappings, missing values (NaN, NaT, None) left out: the reader's defaults apply to them."""
    return [
        {str(k): v for k, v in row.items() if not (v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT)}
        for row in df.to_dict("records")
    ]


def _load_into_strategy(s: "Strategy", state: ReplayedState) -> None:
    from ..model import Balance, Order, OrderStatus, OrderType, Position, PositionSide

    s.book.forget(s.universe.values())
    s.holdings.restore(
        {cur: Balance(**vals) for cur, vals in state.balances.items()},
        [
            (
                key.partition("#")[0],
                PositionSide(key.partition("#")[2] or "both"),
                Position(float(p["contracts"]), float(p.get("entry_price") or 0.0)),
            )
            for key, p in state.positions.items()
        ],
    )  # positions: "<symbol>" (one-way) or "<symbol>#long" / "#short" (hedge mode)
    for r in _records(state.orders):
        asset = s.universe.get(text(r.get("symbol")) or "")
        cid = text(r.get("client_order_id"))
        if asset is None or cid is None:
            continue
        order = Order(
            cid,
            asset.symbol,
            Side(text(r.get("side")) or "buy"),
            OrderType.GTC,
            num(r.get("amount")),
            opt_num(r.get("price")),
            id=text(r.get("order_id")),
            status=OrderStatus(str(r.get("status"))),
            filled=num(r.get("filled")),
        )
        s.book.add(asset, order)
    for r in _records(state.trades):
        asset = s.universe.get(text(r.get("symbol")) or "")
        if asset is None:
            continue
        trade = traced_trade(asset.symbol, r)
        s.book.add_fill(asset, asset.orders.get(trade.client_order_id) if trade.client_order_id is not None else None, trade)


def traced_trade(symbol: str, r: Json) -> Trade:
    """A ``trade_executed`` event of the trace as the engine's Trade (replay, and a restart's start-up sync)."""
    ts = r.get("timestamp")
    tid = r.get("trade_id")
    return Trade(
        symbol,
        Side(text(r.get("side")) or "buy"),
        num(r.get("amount")),
        num(r.get("price")),
        text(r.get("order_id")),
        text(r.get("client_order_id")),
        (ts.value if isinstance(ts, pd.Timestamp) else integer(ts)) // 1_000_000,
        fee=num(r.get("fee")),
        trade_id=None if tid is None else str(tid),
        emulated=bool(r.get("emulated")),
    )


def divergences(
    state: ReplayedState, open_on_exchange: dict[str, list[str]], balances: dict[str, float], tolerance: float = 1e-8
) -> list[str]:
    """Where the exchange (open client order ids per symbol, total balance per currency) and the state the trace
    replays to disagree, one line each; empty when they agree."""
    traced_open: dict[str, list[str]] = {}
    for r in _records(state.orders):
        if r.get("status") == "open":
            traced_open.setdefault(str(r.get("symbol")), []).append(str(r.get("client_order_id")))
    out = [
        f"{sym}: exchange open {sorted(ids)} vs trace {sorted(traced_open.get(sym, []))}"
        for sym, ids in open_on_exchange.items()
        if sorted(ids) != sorted(traced_open.get(sym, []))
    ]
    for cur, total in balances.items():
        traced = state.balances.get(cur)
        if traced is not None and abs(float(traced.get("total", 0.0)) - total) > tolerance * max(1.0, abs(total)):
            out.append(f"{cur}: exchange total {total} vs trace {traced.get('total')}")
    return out
