"""Round-trip time of ``create_order`` against the sandbox, 0 injected latency.

Baseline measured in the same run: ``fetch_time`` (GET /api/v3/time, the
cheapest request ccxt can make) on the same connection, so the ratio shows
what order validation, matching and signing cost on top of bare HTTP.
Prints one JSON line per figure.

    .venv/bin/python -m bench.sandbox_rtt [--orders 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from decimal import Decimal

import ccxt.async_support as ccxt_async

from planar_core.exchange.endpoints import point_at_sandbox
from planar_core.sandbox import Limits, SandboxExchange, SandboxServer


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(n: int) -> list[dict]:
    ex = SandboxExchange()
    ex.limiter.limits = Limits(weight_per_minute=10_000_000, orders_per_10s=10_000_000)
    acct = ex.add_account({"USDT": Decimal(10_000_000), "BTC": Decimal(100)})
    async with SandboxServer(ex) as server:
        c = point_at_sandbox(
            ccxt_async.binance({"apiKey": acct.api_key, "secret": acct.api_secret, "enableRateLimit": False}), server.url, server.ws_url
        )
        try:
            await c.load_markets()
            bid = (await c.fetch_order_book("BTC/USDT"))["bids"][0][0]
            orders, pings = [], []
            for i in range(n):  # interleaved so both see the same machine state
                t0 = time.perf_counter()
                if i % 2:
                    await c.create_order("BTC/USDT", "market", "buy" if i % 4 == 1 else "sell", 0.001)
                else:
                    # IOC: it expires at once, so no more than Binance's 200 open orders a symbol (MAX_NUM_ORDERS) pile up
                    await c.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.8, 2), {"timeInForce": "IOC"})
                orders.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                await c.fetch_time()
                pings.append((time.perf_counter() - t0) * 1000)
        finally:
            await c.close()
    rows = [
        {
            "figure": "create_order RTT median (ms)",
            "value": round(statistics.median(orders), 3),
            "baseline": round(statistics.median(pings), 3),
            "baseline_name": "fetch_time RTT median (ms)",
            "ratio": round(statistics.median(orders) / statistics.median(pings), 2),
            "n": n,
        },
        {
            "figure": "create_order RTT p99 (ms)",
            "value": round(pct(orders, 0.99), 3),
            "baseline": round(pct(pings, 0.99), 3),
            "baseline_name": "fetch_time RTT p99 (ms)",
            "ratio": round(pct(orders, 0.99) / pct(pings, 0.99), 2),
            "n": n,
        },
    ]
    for row in rows:
        print(json.dumps(row))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    asyncio.run(main(parser.parse_args().orders))
