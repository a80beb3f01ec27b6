"""``replay_events`` (trace/replay.py) on hand-made event frames, shaped as the trace reader gives them
(``Columns.frame``): orders folded from their events, trades, last-value balances and open positions, and
``divergences`` against what an exchange says."""

from __future__ import annotations

import pandas as pd

from planar_core.trace.columns import Columns
from planar_core.trace.replay import divergences, replay_events, traced_trade

T = 1_700_000_000_000_000_000  # ns
MS = 1_000_000


def frame(*events: dict[str, object]) -> pd.DataFrame:
    return Columns.from_events([{"timestamp": T + i * MS, **e} for i, e in enumerate(events)]).frame()


def placed(cid: str, side: str = "buy", amount: float = 1.0, price: float = 100.0, symbol: str = "BTC/USDT") -> dict[str, object]:
    return {"kind": "order_placed", "client_order_id": cid, "symbol": symbol, "side": side, "amount": amount, "price": price}


def test_an_order_keeps_its_intent_and_takes_its_last_status_fill_and_exchange_id() -> None:
    df = frame(
        placed("u-1", "sell", 2.0, 101.0),
        {"kind": "order_updated", "client_order_id": "u-1", "symbol": "BTC/USDT", "order_id": "77", "status": "open", "filled": 0.5},
        {"kind": "order_filled", "client_order_id": "u-1", "symbol": "BTC/USDT", "order_id": "77", "filled": 2.0},
    )
    [row] = replay_events(df).orders.to_dict("records")
    assert row == {"client_order_id": "u-1", "symbol": "BTC/USDT", "side": "sell", "amount": 2.0, "price": 101.0} | {
        "status": "closed",
        "filled": 2.0,
        "order_id": "77",
    }


def test_the_event_status_wins_over_the_one_its_kind_implies() -> None:
    df = frame(placed("u-1"), {"kind": "order_cancelled", "client_order_id": "u-1", "status": "expired"})
    assert replay_events(df).orders["status"].tolist() == ["expired"]


def test_each_kind_implies_a_status() -> None:
    df = frame(
        placed("a"),
        placed("b"),
        {"kind": "order_cancelled", "client_order_id": "b"},
        placed("c"),
        {"kind": "order_failed", "client_order_id": "c"},
        {"kind": "order_adopted", "client_order_id": "d", "symbol": "BTC/USDT", "side": "buy", "amount": 3.0},
    )
    orders = replay_events(df).orders.set_index("client_order_id")
    assert orders["status"].to_dict() == {"a": "open", "b": "canceled", "c": "failed", "d": "open"}
    assert orders["filled"].tolist() == [0.0, 0.0, 0.0, 0.0]  # no fill reported reads as none, not NaN


def test_order_events_without_a_client_id_and_other_kinds_make_no_order() -> None:
    df = frame({"kind": "order_updated", "order_id": "9"}, {"kind": "api_call", "client_order_id": "x"})
    state = replay_events(df)
    assert state.orders.empty and state.events == 2
    assert list(state.orders.columns) == ["client_order_id", "symbol", "side", "amount", "price", "status", "filled", "order_id"]


def test_balances_and_positions_are_last_value_wins_and_flat_positions_drop() -> None:
    df = frame(
        {
            "kind": "balance_updated",
            "payload": {"USDT": {"free": 1.0, "used": 0.0, "total": 1.0}, "BTC": {"free": 2.0, "used": 0.0, "total": 2.0}},
        },
        {"kind": "balance_updated", "payload": {"USDT": {"free": 5.0, "used": 1.0, "total": 6.0}}},
        {"kind": "position_updated", "payload": {"BTC/USDT:USDT": {"contracts": 0.1, "entry_price": 100.0}}},
        {"kind": "position_updated", "payload": {"ETH/USDT:USDT": {"contracts": -1.0, "entry_price": 10.0}}},
        {"kind": "position_updated", "payload": {"BTC/USDT:USDT": {"contracts": 0.0, "entry_price": 0.0}}},
    )
    state = replay_events(df)
    assert state.balances == {"USDT": {"free": 5.0, "used": 1.0, "total": 6.0}, "BTC": {"free": 2.0, "used": 0.0, "total": 2.0}}
    assert state.positions == {"ETH/USDT:USDT": {"contracts": -1.0, "entry_price": 10.0}}


def test_emulated_trades_a_real_trade_replaced_are_dropped() -> None:
    trade = {"kind": "trade_executed", "client_order_id": "u-1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.5, "price": 100.0}
    df = frame(
        placed("u-1"),
        {**trade, "trade_id": "emu-1", "emulated": True},
        {**trade, "trade_id": "emu-2", "emulated": True},
        {**trade, "trade_id": "555", "replaces": ["emu-1"]},
    )
    trades = replay_events(df).trades
    assert trades["trade_id"].tolist() == ["emu-2", "555"] and trades["emulated"].tolist() == [True, False]


def test_a_traced_trade_becomes_the_engines_trade_in_milliseconds() -> None:
    df = frame(
        {
            "kind": "trade_executed",
            "client_order_id": "u-1",
            "order_id": "9",
            "side": "sell",
            "amount": 2.0,
            "price": 3.0,
            "fee": 0.1,
            "trade_id": "7",
        }
    )
    [r] = replay_events(df).trades.to_dict("records")
    trade = traced_trade("BTC/USDT", {str(k): v for k, v in r.items()})
    assert (trade.side.value, trade.amount, trade.price, trade.fee, trade.timestamp, trade.trade_id) == (
        "sell",
        2.0,
        3.0,
        0.1,
        T // MS,
        "7",
    )


def test_divergences_name_the_open_orders_and_totals_that_disagree() -> None:
    df = frame(
        placed("a"),
        placed("b"),
        {"kind": "order_filled", "client_order_id": "b"},
        {"kind": "balance_updated", "payload": {"USDT": {"total": 100.0}}},
    )
    state = replay_events(df)
    assert divergences(state, {"BTC/USDT": ["a"]}, {"USDT": 100.0 + 1e-7}) == []  # within the tolerance
    assert divergences(state, {"BTC/USDT": ["a", "c"]}, {"USDT": 99.0, "BTC": 1.0}) == [
        "BTC/USDT: exchange open ['a', 'c'] vs trace ['a']",
        "USDT: exchange total 99.0 vs trace 100.0",
    ]
