"""NautilusTrader's side of bench/engine_hot_path.py: submit -> accepted through its Binance spot adapter, on our sandbox.

Run as a file (nothing imports it) by bench/engine_hot_path.py ``--nautilus``, with the Python of a separate
environment where ``nautilus_trader`` is installed: it is never a dependency of this project, and this script
imports nothing of ``planar_core``::

    python bench/nautilus_order_path.py --url http://127.0.0.1:PORT --ws-url ws://127.0.0.1:PORT \\
        --api-key KEY --api-secret SECRET [--orders 200] [--warmup 5]

It starts a live ``TradingNode`` with NautilusTrader's own Binance spot data and execution clients, unchanged but
for their endpoints (``base_url_http`` / ``base_url_ws`` set to the sandbox) and the sandbox account's key. A
strategy sends, one after another, ``--warmup`` + ``--orders`` IOC limit buys of 0.001 BTCUSDT 10 % under the
last price (the order bench/engine_hot_path.py sends: nothing fills), each as soon as the previous one is
accepted, and times each from ``submit_order`` to its ``OrderAccepted`` event (which Nautilus's Binance adapter
raises on the user stream's ``executionReport`` NEW, not on the REST reply). Its risk engine's order-rate
throttle (100 orders/s by default) is raised so it never holds an order back; our engine's rate limits are raised
the same way in the bench. Prints one JSON line (the last line of stdout): ``{"figure": "nautilus
submit->accepted", "median_ms", "p99_ms", "n", "version", ...}`` (``cpu_ms_per_order``: this process's CPU
time from the first timed order to the last one's acceptance, over the timed orders, Nautilus's Rust threads
included), or exits non-zero with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from decimal import Decimal

import nautilus_trader
from nautilus_trader.adapters.binance import (
    BINANCE,
    BinanceAccountType,
    BinanceDataClientConfig,
    BinanceExecClientConfig,
    BinanceLiveDataClientFactory,
    BinanceLiveExecClientFactory,
)
from nautilus_trader.config import (
    InstrumentProviderConfig,
    LiveExecEngineConfig,
    LiveRiskEngineConfig,
    LoggingConfig,
    StrategyConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.events import OrderAccepted, OrderDenied, OrderRejected
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId
from nautilus_trader.trading.strategy import Strategy

INSTRUMENT = "BTCUSDT.BINANCE"


class OrderPathConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    price: float
    amount: float
    orders: int
    warmup: int


class OrderPath(Strategy):
    """Sends the orders one after another and keeps each one's submit -> accepted time in ms."""

    def __init__(self, config: OrderPathConfig) -> None:
        super().__init__(config)
        self.ms: list[float] = []
        self.sent = 0
        self.t0 = 0
        self.pending: ClientOrderId | None = None
        self.failure = ""
        self.done = False
        self.on_done = lambda: None
        self.cpu0 = self.cpu_s = 0.0

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        if self.instrument is None:
            self.finish(f"instrument {self.config.instrument_id} not loaded from the sandbox's exchangeInfo")
            return
        self.price = self.instrument.make_price(Decimal(str(self.config.price)))
        self.quantity = self.instrument.make_qty(Decimal(str(self.config.amount)))
        self.send()

    def send(self) -> None:
        order = self.order_factory.limit(
            instrument_id=self.config.instrument_id,
            order_side=OrderSide.BUY,
            quantity=self.quantity,
            price=self.price,
            time_in_force=TimeInForce.IOC,
        )
        self.pending = order.client_order_id
        self.sent += 1
        if self.sent == self.config.warmup + 1:
            self.cpu0 = time.process_time()
        self.t0 = time.perf_counter_ns()
        self.submit_order(order)

    def on_order_accepted(self, event: OrderAccepted) -> None:
        if event.client_order_id != self.pending:
            return
        elapsed = (time.perf_counter_ns() - self.t0) / 1e6
        if self.sent > self.config.warmup:
            self.ms.append(elapsed)
        if self.sent < self.config.warmup + self.config.orders:
            self.send()
        else:
            self.cpu_s = time.process_time() - self.cpu0
            self.finish("")

    def on_stop(self) -> None:
        pass  # nothing to unsubscribe; Nautilus warns when this is not overridden

    def on_order_rejected(self, event: OrderRejected) -> None:
        self.finish(f"order rejected: {event.reason}")

    def on_order_denied(self, event: OrderDenied) -> None:
        self.finish(f"order denied: {event.reason}")

    def finish(self, failure: str) -> None:
        if not self.done:
            self.done, self.failure = True, failure
            self.on_done()


def last_price(url: str, symbol: str) -> float:
    with urllib.request.urlopen(f"{url}/api/v3/ticker/price?symbol={symbol}", timeout=10) as r:  # the sandbox, on loopback
        return float(json.load(r)["price"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the sandbox's REST base (http://127.0.0.1:PORT)")
    parser.add_argument("--ws-url", required=True, help="the sandbox's websocket base (ws://127.0.0.1:PORT)")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--api-secret", required=True)
    parser.add_argument("--orders", type=int, default=200, help="orders timed")
    parser.add_argument("--warmup", type=int, default=5, help="orders sent first and not timed")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before giving up")
    parser.add_argument("--log-level", default="ERROR", help="Nautilus's log level (its log goes to stdout/stderr)")
    args = parser.parse_args()

    price = round(last_price(args.url, "BTCUSDT") * 0.9, 2)
    endpoints = {
        "api_key": args.api_key,
        "api_secret": args.api_secret,
        "account_type": BinanceAccountType.SPOT,
        "base_url_http": args.url,
        "base_url_ws": args.ws_url,
        "instrument_provider": InstrumentProviderConfig(load_ids=frozenset({INSTRUMENT})),
    }
    config = TradingNodeConfig(
        trader_id="BENCH-001",
        logging=LoggingConfig(log_level=args.log_level, log_colors=False),
        risk_engine=LiveRiskEngineConfig(max_order_submit_rate="1000000/00:00:01"),  # never hold an order back
        exec_engine=LiveExecEngineConfig(reconciliation=True),
        data_clients={BINANCE: BinanceDataClientConfig(**endpoints)},
        exec_clients={BINANCE: BinanceExecClientConfig(**endpoints)},
        timeout_connection=30.0,
        timeout_reconciliation=10.0,
        timeout_portfolio=10.0,
        timeout_disconnection=5.0,
        timeout_post_stop=1.0,
    )
    node = TradingNode(config=config)
    strategy = OrderPath(
        OrderPathConfig(instrument_id=InstrumentId.from_str(INSTRUMENT), price=price, amount=0.001, orders=args.orders, warmup=args.warmup)
    )
    node.trader.add_strategy(strategy)
    node.add_data_client_factory(BINANCE, BinanceLiveDataClientFactory)
    node.add_exec_client_factory(BINANCE, BinanceLiveExecClientFactory)
    node.build()
    loop = node.get_event_loop()
    assert loop is not None
    strategy.on_done = lambda: loop.call_soon(node.stop)
    watchdog = loop.call_later(
        args.timeout, lambda: strategy.finish(f"timed out after {args.timeout:g} s ({len(strategy.ms)} orders accepted)")
    )
    try:
        node.run()
    finally:
        watchdog.cancel()
        node.dispose()
    if strategy.failure or not strategy.ms:
        print(strategy.failure or "no order was accepted (did the node start?)", file=sys.stderr, flush=True)
        return 1
    ms = sorted(strategy.ms)
    row = {
        "figure": "nautilus submit->accepted",
        "median_ms": round(statistics.median(ms), 4),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "cpu_ms_per_order": round(strategy.cpu_s / len(ms) * 1000, 4),
        "n": len(ms),
        "warmup": args.warmup,
        "version": nautilus_trader.__version__,
    }
    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
