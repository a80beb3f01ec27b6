"""Realised PnL end to end on the sandbox over loopback, unmodified ccxt: a futures round trip's PnL as the engine
computes it (average entry) equals the exchange's own ``realizedPnl`` fill by fill; a spot round trip's equals a
hand computation from the exchange's fills (FIFO lots, the fee taken in the coin bought)."""

from __future__ import annotations

from typing import Any

import pytest

from planar_core.model import OrderType, Side, Trade

from ..conftest import user_subscribed, wait_for
from .test_conditional import account_view, shock

PERP = "BTC/USDT:USDT"


def engine_figures(s: Any, symbol: str) -> dict[str, float]:
    """Trade id -> the PnL the engine computed for that fill (``computed_pnl`` when the venue reported its own)."""
    out = {}
    for e in s.sink.events:
        if e["kind"] == "trade_executed" and e["symbol"] == symbol:
            out[str(e["trade_id"])] = e["computed_pnl"] if e.get("computed_pnl") is not None else e["realized_pnl"]
    return out


async def test_a_futures_round_trip_realises_what_the_exchange_says(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    s = await strategy_factory(name="perp", margin=True, universe=[PERP], event_tracing={"enabled": False})
    ai = s.universe[PERP]
    await wait_for(lambda: user_subscribed(sandbox, account, "linear"), timeout=10)
    for factor, side, amount in ((1.0, Side.BUY, 0.02), (1.02, Side.BUY, 0.01), (1.05, Side.SELL, 0.01), (0.97, Side.SELL, 0.02)):
        ai.last_price = await shock(sandbox, "BTCUSDT", factor, "linear")
        assert isinstance(await s.call(ai, OrderType.MARKET, side, amount=amount, waitfor=5), Trade)
    await wait_for(lambda: sum(t.amount for t in ai.trades) == pytest.approx(0.06), timeout=10)
    exchange = {f.id: f for f in await s.venue.my_trades(PERP, 10)}
    mine = engine_figures(s, PERP)
    assert set(mine) == set(exchange) and len(mine) >= 4
    for tid, pnl in mine.items():
        assert pnl == pytest.approx(exchange[tid].realized_pnl or 0.0, abs=1e-6), tid
    (trip,) = [e for e in s.sink.events if e["kind"] == "round_trip"]
    assert trip["side"] == "long" and trip["amount"] == pytest.approx(0.03)
    assert trip["realized_pnl"] == pytest.approx(sum(f.realized_pnl or 0.0 for f in exchange.values()), abs=1e-6)
    assert trip["realized_pnl"] != 0.0  # a price path that realises something
    assert [t.realized_pnl is not None for t in ai.trades] == [True] * len(ai.trades)


async def test_a_spot_round_trip_realises_the_hand_computation_from_the_fills(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    s = await strategy_factory(universe=["BTC/USDT"])
    ai = s.universe["BTC/USDT"]
    ai.last_price = await shock(sandbox, "BTCUSDT", 1.0)
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=5), Trade)
    ai.last_price = await shock(sandbox, "BTCUSDT", 1.03)
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.SELL, amount=0.00999, waitfor=5), Trade)  # what the fee left
    fills = account_view(sandbox, s)["fills"]
    await wait_for(lambda: len(ai.trades) == len(fills), timeout=10)
    bought = [(float(f["qty"]), float(f["price"]), float(f["commission"])) for f in fills if f["side"] == "BUY"]
    sold = [(float(f["qty"]), float(f["price"])) for f in fills if f["side"] == "SELL"]
    assert all(f["commission_asset"] == "BTC" for f in fills if f["side"] == "BUY")  # the fee is taken in the coin bought
    held = sum(q - fee for q, _, fee in bought)
    assert sum(q for q, _ in sold) == pytest.approx(held)  # everything the buy left is sold: every lot is closed
    hand = sum(q * p for q, p in sold) - sum((q - fee) * p for q, p, fee in bought)
    assert sum(t.realized_pnl or 0.0 for t in ai.trades) == pytest.approx(hand, abs=1e-8)
    (trip,) = [e for e in s.sink.of("round_trip")]
    assert trip["realized_pnl"] == pytest.approx(hand, abs=1e-8) and trip["amount"] == pytest.approx(held)
    quote_fees = sum(float(f["commission"]) for f in fills if f["side"] == "SELL")
    assert trip["fee"] == pytest.approx(sum(fee * p for _, p, fee in bought) + quote_fees)
