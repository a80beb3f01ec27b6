"""Bar close -> order on the wire: the strategy interface's ``on_bar`` vs the tick-driven path it replaces, with
raw ccxt.pro as the baseline, all in one run on the same sandbox and the same candles.

Three traders run at once on three accounts, each sending one order (an IOC buy 10 % under the market: it
expires at once, nothing accumulates) for every 1 s BTC/USDT candle that closes:
* ``raw``: ccxt.pro ``watch_ohlcv`` in a loop; a candle is closed when a later one appears; ``create_order``;
* ``on_bar``: the engine and a ``Logic.on_bar`` calling ``s.call`` (the new interface);
* ``tick``: the engine and a ``Logic.on_tick`` every ``tick_interval`` (1 s, the example config's value before)
  that looks for a newly closed candle (the old runner's only way in).
Latency = the exchange's own acceptance time of the order (``created`` in its admin snapshot, ms) minus the
candle's end (open + 1 s). It includes the sandbox's push of the closing kline, the same for all three.

    .venv/bin/python -m bench.bar_latency [--bars 30]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile

import aiohttp
import ccxt.pro as ccxtpro

from planar_core.engine import strategy
from planar_core.engine.strategy import Strategy
from planar_core.exchange.ccxt_types import CcxtExchange
from planar_core.exchange.endpoints import point_at_sandbox
from planar_core.logic import Logic
from planar_core.model import Candle, OrderType, Side
from planar_core.model.context import StrategyContext
from planar_core.model.views import AssetView
from planar_core.runner import run

from .common import figure, median, pct, sandbox_process

SYMBOL, TF = "BTC/USDT", "1s"


class OnBar(Logic):
    def __init__(self) -> None:
        super().__init__()
        self.bars: list[int] = []

    async def on_bar(self, s: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        self.bars.append(bar.timestamp)
        await s.call(ai, OrderType.IOC, Side.BUY, amount=0.001, price=round(bar.close * 0.9, 2), waitfor=0)


class OnTick(Logic):
    def __init__(self) -> None:
        super().__init__()
        self.bars: list[int] = []
        self.seen: int | None = None

    async def on_tick(self, s: StrategyContext) -> None:
        ai = s.universe[SYMBOL]
        closed = ai.candles(TF).closed_through
        if closed is None or closed == self.seen:
            return
        first, self.seen = self.seen is None, closed
        if first:
            return
        self.bars.append(closed)
        await s.call(ai, OrderType.IOC, Side.BUY, amount=0.001, price=round(ai.candles(TF).closed[-1, 4] * 0.9, 2), waitfor=0)


async def raw_trader(ex: CcxtExchange, bars: list[int], n: int) -> None:
    newest: int | None = None
    while len(bars) < n:
        candles = await ex.watch_ohlcv(SYMBOL, TF)
        top = int(candles[-1][0])
        if newest is not None and top > newest:
            bars.append(newest)
            close = float(candles[-2][4]) if len(candles) >= 2 else float(candles[-1][4])
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, round(close * 0.9, 2), {"timeInForce": "IOC"})
        newest = top


async def main(n: int) -> None:
    with sandbox_process("--balance", "USDT=1000000,BTC=10") as info:
        async with aiohttp.ClientSession() as http:
            keys = []
            for _ in range(2):
                async with http.post(f"{info['url']}/admin/accounts", json={"balances": {"USDT": 1_000_000}}) as r:
                    keys.append(await r.json())

        def build(name: str, key: str, secret: str, tick: float) -> Strategy:
            return strategy(
                name,
                env={"EXCHANGE_API_KEY": key, "EXCHANGE_API_SECRET": secret},
                universe=[SYMBOL],
                timeframes=[TF],
                store_root=tempfile.mkdtemp(),
                sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
                rate_limits={"weight_per_minute": 10_000_000, "orders_per_second": 100_000, "burst_allowance": 100_000},
                connection={"health_interval": 3600},
                tick_interval=tick,
                risk={"position_limit": None},
            )

        on_bar_s = build("bench_onbar", keys[0]["api_key"], keys[0]["api_secret"], 1.0)
        tick_s = build("bench_tick", keys[1]["api_key"], keys[1]["api_secret"], 1.0)
        raw = point_at_sandbox(
            ccxtpro.binance({"apiKey": info["api_key"], "secret": info["api_secret"], "enableRateLimit": False}),
            info["url"],
            info["ws_url"],
        )
        await raw.load_markets()
        await on_bar_s.start()
        await tick_s.start()
        on_bar, on_tick, raw_bars = OnBar(), OnTick(), []
        stop = asyncio.Event()
        runs = [
            asyncio.create_task(run(on_bar_s, on_bar, stop=stop)),
            asyncio.create_task(run(tick_s, on_tick, tick_interval=1.0, stop=stop)),
        ]
        try:
            await raw_trader(raw, raw_bars, n)
            while len(on_bar.bars) < n or len(on_tick.bars) < n:
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await asyncio.gather(*runs)
            await on_bar_s.stop()
            await tick_s.stop()
            await raw.close()
        async with aiohttp.ClientSession() as http, http.get(f"{info['url']}/admin/snapshot") as r:
            snap = await r.json()

    def latencies(api_key: str, bars: list[int]) -> list[float]:
        created = sorted(int(o["created"]) for o in snap["accounts"][api_key]["orders"])
        return [float(c - (b + 1000)) for b, c in zip(bars, created)]

    raw_ms = latencies(info["api_key"], raw_bars)
    bar_ms = latencies(keys[0]["api_key"], on_bar.bars)
    tick_ms = latencies(keys[1]["api_key"], on_tick.bars)
    figure(
        "bar_close_to_order_on_bar_p50_ms",
        median(bar_ms),
        median(raw_ms),
        "raw ccxt.pro watch_ohlcv + create_order p50 ms",
        p95=pct(bar_ms, 0.95),
        baseline_p95=pct(raw_ms, 0.95),
        bars=len(bar_ms),
    )
    figure(
        "bar_close_to_order_tick_driven_p50_ms",
        median(tick_ms),
        median(raw_ms),
        "raw ccxt.pro watch_ohlcv + create_order p50 ms",
        p95=pct(tick_ms, 0.95),
        baseline_p95=pct(raw_ms, 0.95),
        bars=len(tick_ms),
        tick_interval_s=1.0,
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=30, help="closed candles per trader")
    asyncio.run(main(ap.parse_args().bars))
