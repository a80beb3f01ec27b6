"""Soak: >= 10 000 orders on 3 symbols against the sandbox (its own process) while faults rotate, then the
fault suite's invariants. Prints orders placed, faults injected by kind, lost / duplicated / divergences,
max memory (RSS) and CPU of the engine process. The comparison is the engine's own view against the exchange's
snapshot before any resync (tests/faults/harness.py). Run by hand:

    .venv/bin/python -m bench.soak [--orders 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planar_core.engine import strategy
from tests.faults.harness import check, churn

from .common import sandbox_process

ROTATION = [
    ("none", {}),
    ("latency 0-500 ms", {"latency_jitter_ms": 500}),
    ("10 % 5xx", {"error_rate": 0.1}),
    ("429 storm", {"rate_limit_rate": 0.3}),
    ("request timeouts", {"timeout_rate": 0.03, "hang_s": 1.5}),
    ("lost acks", {"lost_ack_rate": 0.1}),
    ("websocket disconnects", {"ws_drop_every_s": 2}),
    ("partial fills", {"partial_fill_ratio": 0.3}),
    (
        "all together",
        {
            "latency_jitter_ms": 100,
            "error_rate": 0.05,
            "rate_limit_rate": 0.05,
            "lost_ack_rate": 0.05,
            "ws_drop_every_s": 3,
            "partial_fill_ratio": 0.3,
        },
    ),
]


async def run(info: dict, n: int, block: int) -> dict:
    async with aiohttp.ClientSession() as http:

        async def admin(path: str, body: dict | None = None) -> dict:
            async with (
                http.post(f"{info['url']}/admin/{path}", json=body) if body is not None else http.get(f"{info['url']}/admin/{path}")
            ) as r:
                return await r.json()

        s = strategy(
            "soak",
            env={"EXCHANGE_API_KEY": info["api_key"], "EXCHANGE_API_SECRET": info["api_secret"]},
            universe=["BTC/USDT", "ETH/USDT", "LTC/USDT"],
            store_root=tempfile.mkdtemp(),
            sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
            rate_limits={"weight_per_minute": 10_000_000, "orders_per_second": 100_000, "burst_allowance": 100_000},
            connection={"health_interval": 3600},
            order_monitoring={"interval": 0.5, "retries": 4},
            timeouts={"order_placement": 2, "order_cancellation": 2, "market_data": 2, "balance_sync": 2},
        )
        await s.start()
        injected: Counter[str] = Counter()
        c0, w0 = time.process_time(), time.perf_counter()
        done = 0
        i = 0
        while done < n:
            name, faults = ROTATION[i % len(ROTATION)]
            await admin("faults", faults)
            counts = await churn(s, min(block, n - done), seed=i)
            injected[name] += counts.placed + counts.refused
            done += counts.placed + counts.refused
            i += 1
            print(json.dumps({"progress": done, "scenario": name}), flush=True)
        await admin("faults", {})
        cpu = (time.process_time() - c0) / (time.perf_counter() - w0) * 100

        async def pause() -> None:
            await admin("matching", {"paused": True})

        async def snapshot() -> dict:
            return (await admin("snapshot"))["accounts"][info["api_key"]]

        # the engine's own view, before any resync: nothing here repairs local state
        divergences, result = await check(s, pause, snapshot, timeout=60)
        snap = await snapshot()
        await s.stop()
    out = {
        "orders_requested": n,
        "orders_on_exchange": len(snap["orders"]),
        "fills": len(snap["fills"]),
        "faults_by_kind": dict(injected),
        **divergences.counts(),
        "examples": str(divergences)[:2000],
        "trace_events": result["events"],
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "engine_cpu_pct_of_one_core": round(cpu, 1),
        "wall_s": round(time.perf_counter() - w0, 1),
    }
    print(json.dumps(out), flush=True)
    return out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--block", type=int, default=250, help="orders per fault scenario before rotating")
    args = parser.parse_args()
    with sandbox_process(
        "--balance", "USDT=100000000,BTC=1000,ETH=10000,LTC=100000", "--weight-per-minute", "100000000", "--orders-per-10s", "100000000"
    ) as info:
        return asyncio.run(run(info, args.orders, args.block))


if __name__ == "__main__":
    main()
