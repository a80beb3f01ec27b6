"""Idle CPU of an engine with 50 assets and all watchers on (balance, OHLCV per asset, health).

Baseline in the same process: plain ccxt.pro loops watching the same 50 kline streams and the
balance, i.e. the least any client must do to receive that data. The sandbox runs in its own
process and streams every subscribed kline once a second. Goal: engine <= 5 % of one core.

    .venv/bin/python -m bench.engine_idle_cpu [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time

import ccxt.pro as ccxtpro

from planar_core.engine import strategy
from planar_core.exchange.endpoints import point_at_sandbox

from .common import figure, sandbox_process

SPOT = ["BTC/USDT", "ETH/USDT", "LTC/USDT", "XRP/USDT", "ETH/BTC"]


def universe() -> list[str]:
    return SPOT + [f"SYN{i}/USDT" for i in range(45)]


async def cpu_share(seconds: float) -> float:
    c0, w0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    return (time.process_time() - c0) / (time.perf_counter() - w0) * 100


async def baseline(info: dict, seconds: float, warmup: float) -> float:
    ex = point_at_sandbox(ccxtpro.binance({"apiKey": info["api_key"], "secret": info["api_secret"]}), info["url"], info["ws_url"])
    await ex.load_markets()

    async def loop(fn, *args) -> None:  # type: ignore[no-untyped-def]
        while True:
            await fn(*args)

    tasks = [asyncio.create_task(loop(ex.watch_ohlcv, s, "1m")) for s in universe()]
    tasks.append(asyncio.create_task(loop(ex.watch_balance)))
    await asyncio.sleep(warmup)
    share = await cpu_share(seconds)
    for t in tasks:
        t.cancel()
        with contextlib.suppress(BaseException):
            await t
    await ex.close()
    return share


async def engine(info: dict, seconds: float, warmup: float) -> float:
    s = strategy(
        "idle",
        env={"EXCHANGE_API_KEY": info["api_key"], "EXCHANGE_API_SECRET": info["api_secret"]},
        universe=universe(),
        store_root=tempfile.mkdtemp(),
        sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
        rate_limits={"weight_per_minute": 1_000_000},
    )
    await s.start()
    await asyncio.sleep(warmup)
    share = await cpu_share(seconds)
    health = s.watcher_health()
    await s.stop()
    modes = {h["mode"] for h in health.values()}
    print(f"# engine watchers: {len(health)}, modes {sorted(modes)}", flush=True)
    return share


def main() -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    with sandbox_process("--synthetic-markets", "45", "--weight-per-minute", "1000000") as info:
        eng = asyncio.run(engine(info, args.seconds, args.warmup))
        base = asyncio.run(baseline(info, args.seconds, args.warmup))
    return [
        figure(
            "engine idle CPU, 50 assets, all watchers (% of one core)",
            eng,
            base,
            "raw ccxt.pro watching the same streams (% of one core)",
            goal="<= 5 %",
        )
    ]


if __name__ == "__main__":
    main()
