"""NautilusTrader's side of bench/backtest.py: the same MA crossover on the same candles in its BacktestEngine.

Run as a file (nothing imports it) by bench/backtest.py, with the Python of a separate environment where
``nautilus_trader`` is installed: it is never a dependency of this project, and this script imports nothing of
``planar_core``::

    python bench/nautilus_backtest.py --fast 10 --slow 40 --order-value 1000 --warmup 100 --cash 1000000 \\
        --market BTCUSDT BTC 0.01 0.00001 0.00001 9000 5 BTCUSDT.parquet  [--market ...]

A ``--market`` is the exchange id, the base coin (the quote is USDT), the price tick, the amount step, the minimum
and maximum amount, the minimum notional, and the Parquet file of its 1m candles (columns ``timestamp`` in ms at
the candle's open, ``open``, ``high``, ``low``, ``close``, ``volume``). Prints one JSON line: the seconds
``engine.run()`` took (loading excluded, as on our side), the candles it processed (warm-up included), the orders
submitted and filled, the fill events (Nautilus fills a market order in parts when it exceeds the bar's top-of-book size), and
the version.

The logic is MACross's (planar_core/strategies/ma_cross.py): on each closed candle after the warm-up, the simple
mean of the last ``fast`` closes against that of the last ``slow``; on a change of sign (after a first one), a
market buy of ``order_value / close``, or a market sell of up to that much of what is held. The first ``warmup``
candles of each symbol are history only, as in planar_core/backtest/run.py ``_warm_up``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from decimal import Decimal

import nautilus_trader
import numpy as np
import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Currency, Money, Price, Quantity
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.trading.strategy import Strategy

BINANCE = Venue("BINANCE")
FEE = Decimal("0.001")  # maker and taker, as the simulated exchange's spot fee


class MACrossConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    fast: int
    slow: int
    order_value: float
    warmup: int


class MACross(Strategy):
    def __init__(self, config: MACrossConfig) -> None:
        super().__init__(config)
        self.closes: deque[float] = deque(maxlen=config.slow)
        self.seen = 0
        self.last: int | None = None

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        c = self.config
        close = float(bar.close)
        self.closes.append(close)
        self.seen += 1
        if self.seen <= c.warmup or len(self.closes) < c.slow:  # warm-up candles are history: no callback on ours
            return
        closes = np.array(self.closes)  # numpy's means as MACross makes them (sum / count): at a tie the summation order decides
        signal = 1 if closes[-c.fast :].sum() / c.fast > closes.sum() / c.slow else -1
        previous, self.last = self.last, signal
        if previous is None or previous == signal:
            return
        if signal > 0:
            qty = self.instrument.make_qty(c.order_value / close)
            side = OrderSide.BUY
        else:
            held = float(self.portfolio.net_position(c.instrument_id))
            if held <= 0:
                return
            qty = self.instrument.make_qty(min(held, c.order_value / close))
            side = OrderSide.SELL
        if qty > 0:
            self.submit_order(self.order_factory.market(c.instrument_id, side, qty))


def decimals(step: str) -> int:
    return max(0, -Decimal(step).as_tuple().exponent)  # type: ignore[operator]


def pair(symbol: str, base: str, tick: str, step: str, min_qty: str, max_qty: str, min_notional: str) -> CurrencyPair:
    return CurrencyPair(
        instrument_id=InstrumentId(Symbol(symbol), BINANCE),
        raw_symbol=Symbol(symbol),
        base_currency=Currency.from_str(base),
        quote_currency=USDT,
        price_precision=decimals(tick),
        size_precision=decimals(step),
        price_increment=Price.from_str(tick),
        size_increment=Quantity.from_str(step),
        lot_size=None,
        max_quantity=Quantity.from_str(max_qty),
        min_quantity=Quantity.from_str(min_qty),
        max_notional=None,
        min_notional=Money(Decimal(min_notional), USDT),
        max_price=Price.from_str("10000000"),
        min_price=Price.from_str(tick),
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=FEE,
        taker_fee=FEE,
        ts_event=0,
        ts_init=0,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fast", type=int, required=True)
    ap.add_argument("--slow", type=int, required=True)
    ap.add_argument("--order-value", type=float, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--cash", type=float, required=True)
    ap.add_argument(
        "--market",
        nargs=8,
        action="append",
        required=True,
        metavar=("ID", "BASE", "TICK", "STEP", "MIN_QTY", "MAX_QTY", "MIN_NOTIONAL", "PARQUET"),
    )
    args = ap.parse_args()
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    engine.add_venue(
        BINANCE, oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=None, starting_balances=[Money(args.cash, USDT)]
    )
    bars = 0
    for symbol, base, tick, step, min_qty, max_qty, min_notional, path in args.market:
        inst = pair(symbol, base, tick, step, min_qty, max_qty, min_notional)
        engine.add_instrument(inst)
        bar_type = BarType.from_str(f"{inst.id}-1-MINUTE-LAST-EXTERNAL")
        df = pd.read_parquet(path)
        df.index = pd.to_datetime(df.pop("timestamp") + 60_000, unit="ms", utc=True)  # a bar is stamped at its close
        data = BarDataWrangler(bar_type, inst).process(df[["open", "high", "low", "close", "volume"]])
        bars += len(data)
        engine.add_data(data)
        engine.add_strategy(
            MACross(
                MACrossConfig(
                    strategy_id=f"MACross-{symbol}",
                    instrument_id=inst.id,
                    bar_type=bar_type,
                    fast=args.fast,
                    slow=args.slow,
                    order_value=args.order_value,
                    warmup=args.warmup,
                )
            )
        )
    started = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - started
    fills = len(engine.trader.generate_order_fills_report())  # filled orders, one row each
    fill_events = len(engine.trader.generate_fills_report())  # one row per fill (part)
    orders = len(engine.cache.orders())  # submitted, denied or rejected included
    print(
        json.dumps(
            {
                "seconds": seconds,
                "bars": bars,
                "fills": fills,
                "fill_events": fill_events,
                "orders": orders,
                "nautilus_version": nautilus_trader.__version__,
            }
        ),
        flush=True,
    )
    engine.dispose()


if __name__ == "__main__":
    main()
