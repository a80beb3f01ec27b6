"""NautilusTrader's side of bench/backtest.py: the same MA crossover on the same candles in its BacktestEngine.

Run by bench/backtest.py with the Python of a separate environment where ``nautilus_trader`` is installed (it is
never a dependency of this project, and this file imports nothing of it): ``python bench/nautilus_backtest.py
SPEC.json``, where SPEC names the Parquet file of each symbol's candles and the strategy's parameters. Prints one
JSON line: the seconds ``engine.run()`` took (loading excluded, as on our side), the candles and the fills.

The logic is MACross's (planar_core/strategies/ma_cross.py): on each closed candle after the warm-up, the mean of
the last ``fast`` closes against the mean of the last ``slow``; on a change of sign (after a first one), a market buy
of ``order_value / close``, or a market sell of up to that much of what is held.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from decimal import Decimal

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
        if self.seen <= c.warmup or len(self.closes) < c.slow:
            return
        closes = list(self.closes)
        signal = 1 if sum(closes[-c.fast :]) / c.fast > sum(closes) / len(closes) else -1
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


def pair(symbol: str, base: str, size_step: str) -> CurrencyPair:
    size_precision = len(size_step.split(".")[1]) if "." in size_step else 0
    return CurrencyPair(
        instrument_id=InstrumentId(Symbol(symbol), BINANCE),
        raw_symbol=Symbol(symbol),
        base_currency=Currency.from_str(base),
        quote_currency=USDT,
        price_precision=2,
        size_precision=size_precision,
        price_increment=Price.from_str("0.01"),
        size_increment=Quantity.from_str(size_step),
        lot_size=None,
        max_quantity=Quantity.from_str("90000"),
        min_quantity=Quantity.from_str(size_step),
        max_notional=None,
        min_notional=Money(5, USDT),
        max_price=Price.from_str("10000000"),
        min_price=Price.from_str("0.01"),
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=Decimal("0.001"),
        taker_fee=Decimal("0.001"),
        ts_event=0,
        ts_init=0,
    )


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    engine.add_venue(
        BINANCE, oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=None, starting_balances=[Money(spec["cash"], USDT)]
    )
    bars = 0
    for m in spec["markets"]:
        inst = pair(m["id"], m["base"], m["step"])
        engine.add_instrument(inst)
        bar_type = BarType.from_str(f"{inst.id}-1-MINUTE-LAST-EXTERNAL")
        df = pd.read_parquet(m["path"])
        df.index = pd.to_datetime(df.pop("timestamp") + 60_000, unit="ms", utc=True)  # a bar is stamped at its close
        data = BarDataWrangler(bar_type, inst).process(df[["open", "high", "low", "close", "volume"]])
        bars += len(data)
        engine.add_data(data)
        engine.add_strategy(
            MACross(
                MACrossConfig(
                    strategy_id=f"MACross-{m['id']}",
                    instrument_id=inst.id,
                    bar_type=bar_type,
                    fast=spec["fast"],
                    slow=spec["slow"],
                    order_value=spec["order_value"],
                    warmup=spec["warmup"],
                )
            )
        )
    started = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - started
    fills = len(engine.trader.generate_order_fills_report())  # filled orders (a market order may fill in several parts)
    import nautilus_trader

    print(json.dumps({"seconds": seconds, "bars": bars, "fills": fills, "nautilus_version": nautilus_trader.__version__}))
    engine.dispose()


if __name__ == "__main__":
    main()
