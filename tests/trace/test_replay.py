"""A live session against the sandbox, replayed from its trace into a fresh strategy, equals the exchange."""

from __future__ import annotations

import pandas as pd
import pytest

from planar_core.model import OrderType, Side
from planar_core.trace.replay import replay_from_trace

from ..conftest import wait_for
from ..engine.test_order_call import bid_ask, snapshot


async def test_replay_rebuilds_the_session_field_by_field(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(balance_watcher={"interval": 0.2})
    bid, _ = bid_ask(sandbox)
    await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.03, waitfor=1)
    await s.call("ETH/USDT", OrderType.MARKET, Side.SELL, amount=1.0, waitfor=1)
    await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.95, waitfor=0)
    resting = await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.02, price=bid * 0.9, waitfor=0)
    await s.call("ETH/USDT", OrderType.IOC, Side.BUY, amount=0.5, price=bid_ask(sandbox, "ETHUSDT")[0] * 0.9, waitfor=0)
    ai = s.universe["BTC/USDT"]
    await s.cancel(ai, ai.open_orders()[0])
    snap = snapshot(sandbox, account)
    await wait_for(lambda: all(s.cash(a).free == pytest.approx(float(snap["spot_balances"][a]["free"])) for a in ("BTC", "ETH", "USDT")))
    await s.stop()

    fresh = await strategy_factory(name="fresh", start=False)
    await fresh.load()
    state = replay_from_trace(
        type(
            "Src", (), {"sink": s.sink, "universe": fresh.universe, "holdings": fresh.holdings, "book": fresh.book, "ledger": fresh.ledger}
        )()
    )
    # the cost basis (FIFO lots) of each symbol, as the live engine left it: ETH was held before, its sell realised nothing
    assert {k: b.snapshot() for k, b in fresh.ledger.bases().items()} == {k: b.snapshot() for k, b in s.ledger.bases().items()}
    assert [len(b.lots) for b in fresh.ledger.bases().values()] == [1, 0]
    assert state.trades["realized_pnl"].tolist()[:1] == [0.0] and pd.isna(state.trades["realized_pnl"].tolist()[1])
    assert resting is not None
    ex_orders = {o["client_order_id"]: o for o in snap["orders"]}
    got = {row.client_order_id: row for row in state.orders.itertuples()}
    assert set(got) == set(ex_orders)
    status_map = {"FILLED": "closed", "NEW": "open", "CANCELED": "canceled", "EXPIRED": "expired"}
    for cid, o in ex_orders.items():
        row = got[cid]
        assert row.status == status_map[o["status"]], cid
        assert row.filled == pytest.approx(float(o["filled"])), cid
        assert row.order_id == str(o["order_id"]) and row.amount == pytest.approx(float(o["qty"]))
        assert row.side == o["side"].lower()
    fills = {str(f["trade_id"]): f for f in snap["fills"]}
    assert set(state.trades["trade_id"]) == set(fills)
    for row in state.trades.itertuples():
        f = fills[row.trade_id]
        assert row.price == pytest.approx(float(f["price"])) and row.amount == pytest.approx(float(f["qty"]))
        assert row.fee == pytest.approx(float(f["commission"])) and row.client_order_id == f["client_order_id"]
    for asset, b in snap["spot_balances"].items():
        if asset in state.balances:
            assert state.balances[asset]["free"] == pytest.approx(float(b["free"])), asset
            assert state.balances[asset]["used"] == pytest.approx(float(b["locked"])), asset
    assert {"BTC", "ETH", "USDT"} <= set(state.balances)


async def test_replay_drives_strategy_logic_and_loads_state(strategy_factory) -> None:
    s = await strategy_factory()
    await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=1)
    seen = []
    state = replay_from_trace(s, on_event=lambda strat, e: seen.append(e["kind"]))
    assert "order_placed" in seen and "trade_executed" in seen and len(seen) == state.events
    assert len(s.universe["BTC/USDT"].trades) == 1 and s.universe["BTC/USDT"].trades[0].amount == 0.01
