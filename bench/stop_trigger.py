"""A stop-loss's trigger as the trader sees it: from the price move that triggers it to its fill observed, for the
engine (``s.call(..., OrderType.STOP_MARKET, ...)``, fill seen through its watchers) and for raw ccxt.pro
(``create_order`` with ``stopLossPrice``, fill seen by ``watch_orders``), in one run on the same sandbox.

Each side trades the sandbox's first account in half the rounds (it triggers accounts in order). Each round both
traders hold a 0.01 BTC USDⓈ-M long with a reduce-only stop 0.5 % under the price; the admin
API then moves the price 1 % down (both stops trigger on the same tick) and each side's clock stops when it
sees its stop filled. The price is moved back and the next round starts.

    .venv/bin/python -m bench.stop_trigger [--rounds 20] [--no-fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import aiohttp
import ccxt.pro as ccxtpro

from planar_core.engine import strategy
from planar_core.engine.notices import EngineEvent, Filled
from planar_core.exchange.endpoints import point_at_sandbox
from planar_core.model import OrderType, Side

from .common import figure, median, pct, sandbox_process

PERP = "BTC/USDT:USDT"


async def measure(rounds: int, fsync: bool, engine_first: bool) -> tuple[list[float], list[float]]:
    """One sandbox, ``rounds`` triggers; ``engine_first``: the engine trades the sandbox's first account (the
    sandbox triggers accounts in order, so each side goes first in half the rounds of ``main``)."""
    with sandbox_process("--balance", "USDT=1000000") as info:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{info['url']}/admin/accounts", json={"balances": {"USDT": 1_000_000}}) as r:
                key = await r.json()
            mine, theirs = (info, key) if engine_first else (key, info)

            async def move(factor: float) -> float:
                async with http.post(f"{info['url']}/admin/price", json={"symbol": "BTCUSDT", "factor": factor, "kind": "linear"}) as r:
                    return float((await r.json())["price"])

            s = strategy(
                "bench_stop",
                env={"EXCHANGE_API_KEY": mine["api_key"], "EXCHANGE_API_SECRET": mine["api_secret"]},
                margin=True,
                universe=[PERP],
                store_root=tempfile.mkdtemp(),
                sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
                rate_limits={"weight_per_minute": 10_000_000, "orders_per_second": 100_000, "burst_allowance": 100_000},
                connection={"health_interval": 3600},
                risk={"position_limit": None},
                event_tracing={"fsync": fsync},
            )
            raw = point_at_sandbox(
                ccxtpro.binance(
                    {
                        "apiKey": theirs["api_key"],
                        "secret": theirs["api_secret"],
                        "enableRateLimit": False,
                        "options": {"defaultType": "swap"},
                    }
                ),
                info["url"],
                info["ws_url"],
            )
            await raw.load_markets()
            await s.start()
            ai = s.universe[PERP]
            engine_seen: dict[str, float] = {}
            raw_seen: dict[str, float] = {}

            def on_event(ev: EngineEvent) -> None:
                if isinstance(ev, Filled) and ev.order.type is OrderType.STOP_MARKET:
                    engine_seen.setdefault(ev.order.client_order_id, time.perf_counter())

            s.hooks.listen(on_event)

            async def raw_watch() -> None:
                while True:
                    for o in await raw.watch_orders(PERP):
                        if o.get("clientOrderId", "").startswith("rawstop") and (o.get("filled") or 0) > 0:
                            raw_seen.setdefault(o["clientOrderId"], time.perf_counter())

            watcher = asyncio.create_task(raw_watch())
            engine_ms: list[float] = []
            raw_ms: list[float] = []
            try:
                await raw.fetch_positions([PERP])
                for i in range(rounds):
                    price = await move(1.0)
                    await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=5)
                    await raw.create_order(PERP, "market", "buy", 0.01)
                    while abs(ai.position.contracts - 0.01) > 1e-9:
                        await asyncio.sleep(0.01)
                    trigger = round(price * 0.995, 1)
                    for _ in range(100):  # the engine refuses a stop its own (stale) price view says would trigger at once
                        await s.call(ai, OrderType.STOP_MARKET, Side.SELL, amount=0.01, trigger_price=trigger, reduce_only=True, waitfor=0)
                        stops = [o.client_order_id for o in ai.open_orders() if o.type is OrderType.STOP_MARKET]
                        if stops:
                            break
                        await asyncio.sleep(0.05)
                    cid = stops[0]
                    rid = f"rawstop{i}"
                    await raw.create_order(
                        PERP, "market", "sell", 0.01, None, {"stopLossPrice": trigger, "reduceOnly": True, "clientOrderId": rid}
                    )
                    t0 = time.perf_counter()
                    await move(0.99)
                    deadline = t0 + 15
                    while (cid not in engine_seen or rid not in raw_seen) and time.perf_counter() < deadline:
                        await asyncio.sleep(0.002)
                    if cid in engine_seen and rid in raw_seen:
                        engine_ms.append((engine_seen[cid] - t0) * 1000)
                        raw_ms.append((raw_seen[rid] - t0) * 1000)
            finally:
                watcher.cancel()
                await s.stop()
                await raw.close()
    return engine_ms, raw_ms


async def main(rounds: int, fsync: bool = True) -> None:
    engine_ms, raw_ms = await measure(rounds // 2, fsync, engine_first=True)
    more = await measure(rounds - rounds // 2, fsync, engine_first=False)
    engine_ms, raw_ms = engine_ms + more[0], raw_ms + more[1]
    figure(
        "stop_loss_trigger_to_fill_seen_p50_ms" + ("" if fsync else "_fsync_off"),
        median(engine_ms),
        median(raw_ms),
        "raw ccxt.pro stopLossPrice order + watch_orders p50 ms",
        p95=pct(engine_ms, 0.95),
        baseline_p95=pct(raw_ms, 0.95),
        rounds=len(engine_ms),
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20, help="trigger rounds")
    ap.add_argument("--no-fsync", action="store_true", help="trace without fsync (what durability costs)")
    args = ap.parse_args()
    asyncio.run(main(args.rounds, fsync=not args.no_fsync))
