"""Rebuild a strategy's orders, trades, balances and positions from its trace alone.

Balances and positions are last-value-wins per currency / symbol; orders are
folded from their events in order; trades are the ``trade_executed`` events (with
their ``realized_pnl``); each position's cost basis (spot lots, futures average
entry) is the one the last fill of it recorded (``basis``), and the round trips
are the ``round_trip`` events, less those whose closing fill a real trade replaced.
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
    basis: dict[str, Json] = field(default_factory=dict)  # "<symbol>" / "<symbol>#long|short" -> the basis after its last fill
    round_trips: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per round_trip event


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
    trades["fee_currency"] = [text(p.get("fee_currency")) for p in trade_payloads]
    trades["realized_pnl"] = [opt_num(p.get("realized_pnl")) for p in trade_payloads]
    trades["realized_pnl"] = trades["realized_pnl"].astype("float64")
    # emulated trades that a real trade replaced later (named in its ``replaces``) are not fills of their own
    replaced = {r for p in trade_payloads for r in (p.get("replaces") or [])}
    if replaced:
        trades = trades[~trades["trade_id"].isin(replaced)]
    basis: dict[str, Json] = {}
    for p in trade_payloads:  # in trace order: the last fill of each position says its basis
        b = p.get("basis")
        if isinstance(b, dict):
            side = text(b.get("position_side")) or "both"
            basis[f"{b.get('symbol')}" + ("" if side == "both" else f"#{side}")] = b
    return ReplayedState(orders, trades.reset_index(drop=True), balances, positions, len(df), basis, replayed_round_trips(df, replaced))


ROUND_TRIP_COLUMNS = (
    "symbol",
    "side",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "amount",
    "realized_pnl",
    "fees",
    "duration_s",
    "fills",
    "position_side",
    "trade_id",
)


def replayed_round_trips(df: pd.DataFrame, replaced: set[str] | None = None) -> pd.DataFrame:
    """The ``round_trip`` events of a trace's DataFrame (with payloads), one row each; a round trip whose closing
    fill was emulated and replaced by a real trade is left out (the real trade recorded it again)."""
    rows = df[(df["kind"].astype(object) == "round_trip").to_numpy()]
    out: list[dict[str, object]] = []
    for sym, side, amount, price, fee, tid, p in zip(
        rows["symbol"].astype(object),
        rows["side"].astype(object),
        rows["amount"],
        rows["price"],
        rows["fee"],
        rows["trade_id"].astype(object),
        rows["payload"],
        strict=True,
    ):
        payload = p or {}
        if replaced and tid in replaced:
            continue
        out.append(
            {
                "symbol": sym,
                "side": side,
                "entry_time": pd.Timestamp(integer(payload.get("entry_time")), unit="ms", tz="UTC"),
                "entry_price": opt_num(payload.get("entry_price")),
                "exit_time": pd.Timestamp(integer(payload.get("exit_time")), unit="ms", tz="UTC"),
                "exit_price": float(price),
                "amount": float(amount),
                "realized_pnl": num(payload.get("realized_pnl")),
                "fees": float(fee) if fee == fee else 0.0,
                "duration_s": num(payload.get("duration_s")),
                "fills": integer(payload.get("fills")),
                "position_side": text(payload.get("position_side")) or "both",
                "trade_id": tid,
            }
        )
    return pd.DataFrame(out, columns=list(ROUND_TRIP_COLUMNS))


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
    s.ledger.forget_basis()
    for b in state.basis.values():  # the cost basis each position's last fill left
        asset = s.universe.get(text(b.get("symbol")) or "")
        if asset is not None:
            s.ledger.restore_basis(asset, b)


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
        fee_currency=text(r.get("fee_currency")),
        trade_id=None if tid is None else str(tid),
        emulated=bool(r.get("emulated")),
        realized_pnl=opt_num(r.get("realized_pnl")),
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
