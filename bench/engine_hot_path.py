"""Order hot path: ``s.call(..., waitfor=0)`` vs raw ``ccxt.binance.create_order`` on the same sandbox.

Both send the same order (an IOC buy 10 % under the market, so nothing fills and
no state accumulates), on their own accounts, 0 injected latency, each side in blocks of BLOCK orders with a pause
between blocks: interleaved one-for-one, the engine's stream handling of its last order fell into the raw side's
timing.
The sandbox runs in its own process. Goal: median ratio <= 1.10.

    .venv/bin/python -m bench.engine_hot_path [--orders 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import aiohttp
import ccxt.async_support as ccxt_async

from planar_core.engine import Strategy, strategy
from planar_core.exchange.endpoints import point_at_sandbox
from planar_core.model import PENDING, AssetInstance, OrderType, Side

from .common import figure, median, pct, sandbox_process

BLOCK = 50
SETTLE_S = 0.3


async def run(n: int, info: dict) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{info['url']}/admin/accounts", json={"balances": {"USDT": 10_000_000, "BTC": 100}}) as r:
            second = await r.json()
        async with http.post(f"{info['url']}/admin/accounts", json={"balances": {"USDT": 10_000_000, "BTC": 100}}) as r:
            third = await r.json()
    raw = point_at_sandbox(
        ccxt_async.binance({"apiKey": second["api_key"], "secret": second["api_secret"], "enableRateLimit": False}),
        info["url"],
        info["ws_url"],
    )

    def build(name: str, key: str, secret: str, fsync: bool):  # type: ignore[no-untyped-def]
        return strategy(
            name,
            env={"EXCHANGE_API_KEY": key, "EXCHANGE_API_SECRET": secret},
            universe=["BTC/USDT"],
            store_root=tempfile.mkdtemp(),
            sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
            rate_limits={"weight_per_minute": 10_000_000, "orders_per_second": 100_000, "burst_allowance": 100_000},
            connection={"health_interval": 3600},
            event_tracing={"fsync": fsync},
        )

    s = build("bench", info["api_key"], info["api_secret"], True)  # the default: durable across a power loss
    quick = build("benchnosync", third["api_key"], third["api_secret"], False)  # durable across a process crash only
    await s.start()
    await quick.start()
    await raw.load_markets()
    try:
        ai = s.universe["BTC/USDT"]
        for _ in range(50):  # let the watchers settle
            if ai.last_price:
                break
            await asyncio.sleep(0.1)
        price = round(ai.last_price * 0.9, 2)
        engine_ms: list[float] = []
        quick_ms: list[float] = []
        raw_ms: list[float] = []
        qai = quick.universe["BTC/USDT"]

        async def engine_order(strat: Strategy, asset: AssetInstance) -> None:
            result = await strat.call(asset, OrderType.IOC, Side.BUY, amount=0.001, price=price, waitfor=0)
            assert result is PENDING, result

        async def raw_order() -> None:
            await raw.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"timeInForce": "IOC"})

        sides = [(engine_ms, lambda: engine_order(s, ai)), (quick_ms, lambda: engine_order(quick, qai)), (raw_ms, raw_order)]
        for block in range(0, n, BLOCK):  # each side in blocks, so no side absorbs another's deferred work
            for times, send in sides:
                for _ in range(min(BLOCK, n - block)):
                    t0 = time.perf_counter()
                    await send()
                    times.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(SETTLE_S)  # the stream updates of this block are handled before the next side
        return [
            figure(
                "s.call(waitfor=0) median latency (ms)",
                median(engine_ms),
                median(raw_ms),
                "raw ccxt create_order median (ms)",
                goal="ratio <= 1.10",
                n=n,
            ),
            figure("s.call(waitfor=0) p99 latency (ms)", pct(engine_ms, 0.99), pct(raw_ms, 0.99), "raw ccxt create_order p99 (ms)", n=n),
            figure(
                "s.call(waitfor=0) median latency, fsync off (ms)",
                median(quick_ms),
                median(raw_ms),
                "raw ccxt create_order median (ms)",
                n=n,
                note="event_tracing.fsync=false: intents durable across a process crash, not a power loss",
            ),
        ]
    finally:
        await s.stop()
        await quick.stop()
        await raw.close()


def main() -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    args = parser.parse_args()
    with sandbox_process("--balance", "USDT=10000000,BTC=100", "--weight-per-minute", "10000000", "--orders-per-10s", "10000000") as info:
        return asyncio.run(run(args.orders, info))


if __name__ == "__main__":
    main()
