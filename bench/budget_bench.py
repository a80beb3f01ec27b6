"""The host's shared request budget: what it costs per request, and what it prevents.

1. Cost: the same REST request through ``StrictBinance`` with the host's shared budget (memory-mapped file + flock),
   with the same budget kept in process memory (what every process did alone: no lock, no file) and without any
   budget (ccxt's own throttle off), in alternating blocks against the sandbox on loopback; and the reservation
   alone (acquire + observe of one request, no HTTP), shared vs in-process, in alternating blocks.
2. Load: five processes on one account asking together for about twice the weight and order limits (the
   sandbox at 600 weight per interval of 10 s, then of Binance's minute, 20 orders per 10 s, answers 20 ms late): the
   exchange's 429s and 418s, orders placed, the run's length and throughput, with the shared budget, with each
   process keeping the same budget alone, and with the code before the budget.

Prints one JSON line per figure.

    .venv/bin/python -m bench.budget_bench [--blocks 10] [--per-block 200] [--skip-load] [--intervals 10,60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from planar_core.config import StrategyConfig
from planar_core.exchange.budget import Budgets, Demand, Pacer
from planar_core.exchange.client import ExchangeClient
from planar_core.sandbox import Faults, Limits, SandboxExchange, SandboxServer
from tests.faults.budget_worker import run_load

from .common import figure

DIRECTORY = Path(tempfile.mkdtemp(prefix="planar-budget-bench-"))
os.environ["PLANAR_BUDGET_DIR"] = str(DIRECTORY)


def client(server: SandboxServer, key: str, secret: str, shared: bool | None) -> ExchangeClient:
    cfg = StrategyConfig.model_validate(
        {
            "name": "bench",
            "exchange": "binance",
            "sandbox": True,
            "universe": ["BTC/USDT"],
            "sandbox_endpoint": {"url": server.url, "ws_url": server.ws_url},
            "credentials": {"api_key": key, "api_secret": secret},
            "rate_limits": {"weight_per_minute": 100_000_000, "requests_per_minute": 100_000_000, "shared_budget": bool(shared)},
        }
    )
    c = ExchangeClient(cfg)
    if shared is None:  # no budget at all (and ccxt's throttle off): the bare request
        c.ex.pacer = None
        c.ex.enableRateLimit = False
    return c


async def request_cost(blocks: int, per_block: int) -> None:
    ex = SandboxExchange()
    ex.limiter.limits = Limits(weight_per_minute=100_000_000, orders_per_10s=100_000_000)
    acct = ex.add_account({"USDT": Decimal(1_000_000)})
    async with SandboxServer(ex) as server:
        clients = {
            mode: client(server, acct.api_key, acct.api_secret, shared)
            for mode, shared in (("shared", True), ("local", False), ("none", None))
        }
        times: dict[str, list[float]] = {m: [] for m in clients}
        try:
            for c in clients.values():
                await c.ex.load_markets()
            for b in range(blocks):
                order = list(clients) if b % 2 == 0 else list(reversed(clients))
                for mode in order:
                    c = clients[mode]
                    for _ in range(per_block):
                        t = time.perf_counter()
                        await c.ex.fetch_time()
                        times[mode].append((time.perf_counter() - t) * 1e6)
        finally:
            for c in clients.values():
                await c.close()
    none = statistics.median(times["none"])
    for mode in ("shared", "local"):
        med = statistics.median(times[mode])
        figure(
            f"fetch_time RTT median, budget {mode} (us)",
            med,
            none,
            "fetch_time RTT median, no budget (us)",
            added_us=round(med - none, 1),
            n=len(times[mode]),
        )


async def reservation_cost(blocks: int, per_block: int) -> None:
    shared = Pacer(Budgets(DIRECTORY / "reserve"), headroom=1.0)
    local = Pacer(Budgets(None), headroom=1.0)
    big = {60_000: 10**12}
    d = Demand("bench/api", 1, big, "acct/api", 1, {10_000: 10**12}, trade=True)
    times: dict[str, list[float]] = {"shared": [], "local": []}
    for b in range(blocks):
        for mode in ("shared", "local") if b % 2 == 0 else ("local", "shared"):
            p = shared if mode == "shared" else local
            t = time.perf_counter()
            for _ in range(per_block):
                await p.acquire(d, max_wait=0)
                p.observe("bench/api", big, {60_000: 1})
            times[mode].append((time.perf_counter() - t) / per_block * 1e6)
    figure(
        "one request's reservation + header observation, shared file (us)",
        statistics.median(times["shared"]),
        statistics.median(times["local"]),
        "the same in process memory (us)",
        blocks=blocks,
        per_block=per_block,
    )


def before_tree(commit: str) -> str:
    """``planar_core`` as it was at ``commit`` (per-process pacing only), exported to a temporary directory."""
    import subprocess

    out = tempfile.mkdtemp(prefix="planar-before-")
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", commit, "planar_core"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", out], input=archive, check=True)
    return out


async def load(interval_s: int, before: str | None, deadline_s: float) -> None:
    """Five processes, four loops each, two iterations a loop: 1120 weight and 40 orders against 600 weight and 20
    orders per interval, answers 20 ms late. Modes: the shared budget; each process with its own budget (the same
    code, nothing shared); and, with ``before``, the code before the budget (ccxt's throttle, the weight guard),
    configured with the exchange's weight per minute as a user would."""
    limits = Limits(weight_per_minute=600, orders_per_10s=20, weight_interval_s=interval_s)
    modes: list[tuple[str, bool | None, str | None]] = [("shared", True, None), ("alone", False, None)]
    if before:
        modes.append(("before", None, before))
    for mode, shared, code in modes:
        ex = SandboxExchange(seed=3)
        ex.limiter.limits = limits
        ex.faults = Faults(latency_ms=20)
        acct = ex.add_account({"USDT": Decimal(1_000_000)})
        async with SandboxServer(ex) as server:
            results = await run_load(
                server.url,
                server.ws_url,
                acct.api_key,
                acct.api_secret,
                shared=shared,
                code=code,
                loops=4,
                iterations=2,
                deadline_s=deadline_s,
                weight_per_minute=600 * 60 // interval_s if mode == "before" else 1_000_000,
            )
            report = ex.limiter.report(ex.now_ms())
        refused: dict[str, int] = report["refused"]  # type: ignore[assignment]
        total = {
            k: sum(int(r.get(k, 0)) for r in results) for k in ("orders_placed", "orders_refused", "reads_ok", "reads_failed", "timed_out")
        }
        run_s = max(float(r["seconds"]) for r in results)
        print(
            json.dumps(
                {
                    "figure": f"5 processes on one account at 2x the limits, {interval_s} s intervals, 20 ms latency: {mode}",
                    "exchange_429_weight": refused.get("429 weight", 0),
                    "exchange_429_orders": refused.get("429 orders", 0),
                    "exchange_418": refused.get("418", 0),
                    "ip_bans": sum(report["bans"].values()),  # type: ignore[union-attr]
                    "orders_meant": 40,
                    **total,
                    "run_s": round(run_s, 2),
                    "requests_per_s": round((total["reads_ok"] + 2 * total["orders_placed"]) / run_s, 2),
                }
            ),
            flush=True,
        )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--per-block", type=int, default=200)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--intervals", default="10,60", help="weight intervals (s) of the load runs")
    ap.add_argument("--before", default="76b8421", help="commit of the code before the budget ('' to skip that mode)")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds a load run may last (418 bans last minutes)")
    args = ap.parse_args()
    await reservation_cost(args.blocks, args.per_block * 10)
    await request_cost(args.blocks, args.per_block)
    if not args.skip_load:
        before = before_tree(args.before) if args.before else None
        for interval in (int(x) for x in args.intervals.split(",")):
            await load(interval, before, args.deadline)


if __name__ == "__main__":
    asyncio.run(main())
