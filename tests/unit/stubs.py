"""Stub builders for the unit tier: a Strategy with a memory sink and a fake exchange, never started.

No socket is opened: the fake ccxt object answers nothing (a test that reaches it fails loudly), markets are
hand-made ccxt market dicts, and the store lives in a temporary directory."""

from __future__ import annotations

import tempfile
from typing import Any

from planar_core.config import StrategyConfig
from planar_core.engine.parts import build_parts
from planar_core.engine.strategy import Strategy
from planar_core.exchange.ccxt_venue import CcxtVenue
from planar_core.model import AssetInstance, Balance
from planar_core.model.sink import MemorySink


class NoExchange:
    """Stands where ccxt would: every attribute a test did not set is an error, never a network call."""

    markets: dict[str, Any] = {}
    last_response_headers: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unit test reached the exchange: {name}")

    async def close(self) -> None:
        return None


def market(symbol: str, price_step: float = 0.01, amount_step: float = 0.00001, contract: bool = False) -> dict[str, Any]:
    base, _, rest = symbol.partition("/")
    quote = rest.split(":")[0]
    return {
        "id": (base + quote),
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "contract": contract,
        "linear": contract or None,
        "spot": not contract,
        "precision": {"price": price_step, "amount": amount_step},
        "limits": {"amount": {"min": amount_step, "max": 9000.0}, "cost": {"min": 5.0}, "price": {"min": price_step}},
    }


def stub_strategy(
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"),
    prices: dict[str, float] | None = None,
    cash: dict[str, float] | None = None,
    **config: Any,
) -> Strategy:
    """A Strategy over ``symbols`` with ``prices`` and spot ``cash``; ``config`` overrides StrategyConfig fields."""
    cfg = StrategyConfig.model_validate(
        {
            "name": "unit",
            "universe": list(symbols),
            "store_root": tempfile.mkdtemp(prefix="planar-unit-"),
            "event_tracing": {"enabled": False},
            **config,
        }
    )
    sink = MemorySink()
    s = Strategy(cfg, build_parts(cfg, sink=sink, venue=CcxtVenue(cfg, sink, exchange=NoExchange())))
    prices = prices or {"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0}
    for a in cfg.universe:
        ai = AssetInstance(a.symbol, market(a.symbol, contract=cfg.margin), a.max_position, a.risk_per_trade)
        ai.last_price = prices.get(a.symbol)
        s.universe[a.symbol] = ai
    for cur, amount in (cash or {"USDT": 10_000.0}).items():
        s.holdings.set_balances({cur: Balance(amount, 0.0, amount)})
    return s


def sink_of(s: Strategy) -> MemorySink:
    sink = getattr(s.sink, "inner", s.sink)  # the strategy guards its sink (engine/store_guard.py)
    assert isinstance(sink, MemorySink)
    return sink
