"""Several strategies on one account: five engine processes, two strategies each, one sandbox account, faults on.

Each process runs two strategies whose names share a prefix with others' (``mm0`` and ``mm0-eth``, ``mm1`` ...):
they place, cancel and ``cancel_all`` orders on the same symbols for ``--seconds``, under ``--error-rate`` 503s
and ``--latency-ms`` of exchange latency, with Binance's published weight and order limits in the sandbox. Then
matching is paused, each engine lets its in-flight work land, and each strategy's own view is compared with the
exchange's admin snapshot **before any resync** (tests/faults/harness.py, restricted to the strategy's own ids).

Prints one JSON line per strategy and a total: orders placed, lost, duplicated, divergences (statuses, fills,
balances), cross-strategy cancels (an order cancelled on the exchange that its owner never asked to cancel),
"PENDING but never existed" (``call()`` answered PENDING for an order the exchange never booked), 418 bans and
429s the engines met. Run by hand:

    .venv/bin/python -m bench.shared_account [--processes 5] [--seconds 180] [--error-rate 0.1] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from planar_core.engine.strategy import Strategy
from planar_core.model.types import Json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from .common import sandbox_process

UNIVERSE = ["BTC/USDT", "ETH/USDT", "LTC/USDT"]


# ----------------------------------------------------------------------------------------------- worker side
async def _admin(http: aiohttp.ClientSession, url: str, path: str, body: Json | None = None) -> Json:
    req = http.post(f"{url}/admin/{path}", json=body) if body is not None else http.get(f"{url}/admin/{path}")
    async with req as r:
        return await r.json()


async def _churn_one(s: Strategy, seconds: float, seed: int, book: Json) -> None:
    """Place orders (resting, marketable, market), cancel some one by one and sometimes all of an asset's."""
    from planar_core.model import PENDING, OrderType, Side

    rng = random.Random(seed)
    amounts = {"BTC/USDT": 0.001, "ETH/USDT": 0.01, "LTC/USDT": 0.1}
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        ai = s.universe[rng.choice(UNIVERSE)]
        price = ai.last_price or 0.0
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        before = set(ai.orders)
        kind = rng.random()
        if kind < 0.6 and price:
            off = rng.uniform(0.002, 0.02) * (-1 if side is Side.BUY else 1)
            r = await s.call(ai, OrderType.GTC, side, amount=amounts[ai.symbol], price=price * (1 + off), waitfor=0)
        elif kind < 0.8 and price:
            r = await s.call(
                ai, OrderType.IOC, side, amount=amounts[ai.symbol], price=price * (1.01 if side is Side.BUY else 0.99), waitfor=0.2
            )
        else:
            r = await s.call(ai, OrderType.MARKET, side, amount=amounts[ai.symbol], waitfor=0.2)
        new = [cid for cid in set(ai.orders) - before if s.ids.issued_here(cid)]  # this call's order (not another's update)
        book["calls"] += 1
        for cid in new:
            book["answers"][cid] = "refused" if r is None else "pending" if r is PENDING else type(r).__name__.lower()
        opened = ai.open_orders()
        roll = rng.random()
        if opened and roll < 0.3:
            o = rng.choice(opened)
            book["cancel_asked"].add(o.client_order_id)
            await s.cancel(ai, o)
        elif opened and roll < 0.35:
            book["cancel_all"].append((ai.symbol, int(time.time() * 1000)))
            book["cancel_asked"].update(o.client_order_id for o in opened)
            await s.cancel_all(ai)


async def worker(spec: Json) -> None:
    """One engine process: two strategies, churn, report 'done', wait for 'go' (matching paused), compare."""
    from planar_core.engine import strategy
    from tests.faults.harness import compare, wait_settled

    common = {
        "universe": UNIVERSE,
        "store_root": spec["store_root"],
        "sandbox_endpoint": {"url": spec["url"], "ws_url": spec["ws_url"]},
        "connection": {"health_interval": 3600},
        "order_monitoring": {"interval": 0.5},
        "timeouts": {"order_placement": 2, "order_cancellation": 2, "market_data": 2, "balance_sync": 2},
    }
    env = {"EXCHANGE_API_KEY": spec["api_key"], "EXCHANGE_API_SECRET": spec["api_secret"]}
    strategies = []
    for name in spec["names"]:
        for attempt in range(12):  # a start can fail as a whole (503s, the host's weight spent): Prefect retries the run later
            s = strategy(name, env=env, **common)
            try:
                await s.start()
                break
            except Exception as exc:
                print(f"start of {name} failed ({type(exc).__name__}: {exc}); attempt {attempt + 1}", file=sys.stderr, flush=True)
                await asyncio.sleep(10)
        else:
            raise RuntimeError(f"{name} did not start")
        strategies.append(s)
    books = {s.name: {"calls": 0, "answers": {}, "cancel_asked": set(), "cancel_all": []} for s in strategies}
    await asyncio.gather(*(_churn_one(s, spec["seconds"], i + 7 * spec["index"], books[s.name]) for i, s in enumerate(strategies)))
    for s in strategies:
        await wait_settled(s, timeout=120)
    print(json.dumps({"done": spec["index"]}), flush=True)
    sys.stdin.readline()  # 'go': the coordinator paused matching once every process was done
    async with aiohttp.ClientSession() as http:
        for s in strategies:
            await wait_settled(s, timeout=120)
        deadline = asyncio.get_running_loop().time() + 60
        while True:  # the engine's own view, never repaired: let in-flight updates land, compare until equal or deadline
            snap = (await _admin(http, spec["url"], "snapshot"))["accounts"][spec["api_key"]]
            mine = {s.name: {**snap, "orders": [o for o in snap["orders"] if s.ids.owns(o["client_order_id"])]} for s in strategies}
            results = {s.name: compare(s, mine[s.name], with_trace=False) for s in strategies}
            if all(d.empty() for d in results.values()) or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
    for s in strategies:
        d = results[s.name]
        b = books[s.name]
        ex = {o["client_order_id"]: o for o in mine[s.name]["orders"]}
        cross = [
            cid
            for cid, o in ex.items()
            if o["status"] == "CANCELED"
            and cid not in b["cancel_asked"]
            and not any(sym.replace("/", "") == o.get("symbol") and t >= int(o.get("time", 0)) for sym, t in b["cancel_all"])
        ]
        foreign_touched = [
            o["client_order_id"]
            for o in snap["orders"]
            if not s.ids.owns(o["client_order_id"]) and o["client_order_id"] in b["cancel_asked"]
        ]
        never = [cid for cid, a in b["answers"].items() if a == "pending" and cid not in ex]
        errors = Counter(str(e) for e in getattr(s.venue, "error_counts", {}).keys())
        print(
            json.dumps(
                {
                    "strategy": s.name,
                    "calls": b["calls"],
                    "answers": dict(Counter(b["answers"].values())),
                    "orders_on_exchange": len(ex),
                    **d.counts(),
                    "cross_strategy_cancels": len(cross) + len(foreign_touched),
                    "pending_never_existed": len(never),
                    "examples": str(d)[:600],
                    "client_errors": dict(errors),
                }
            ),
            flush=True,
        )
        await s.stop()


# ------------------------------------------------------------------------------------------ coordinator side
def coordinate(args: argparse.Namespace) -> Json:
    with sandbox_process("--balance", "USDT=100000000,BTC=1000,ETH=10000,LTC=100000") as info:

        async def setup() -> None:
            async with aiohttp.ClientSession() as http:
                await _admin(http, info["url"], "faults", {"error_rate": args.error_rate, "latency_ms": args.latency_ms})

        asyncio.run(setup())
        root = tempfile.mkdtemp(prefix="planar-shared-")
        procs = []
        for i in range(args.processes):
            spec = {
                **{k: info[k] for k in ("url", "ws_url", "api_key", "api_secret")},
                "index": i,
                "names": [f"mm{i}", f"mm{i}-eth"] if i % 2 == 0 else [f"mm{i - 1}-e", f"grid{i}"],
                "store_root": f"{root}/p{i}",
                "seconds": args.seconds,
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.shared_account", "--worker", json.dumps(spec)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=Path(__file__).resolve().parents[1],
                )
            )
        t0 = time.perf_counter()
        for p in procs:  # every process has stopped placing orders
            while True:
                line = p.stdout.readline()  # type: ignore[union-attr]
                if not line or '"done"' in line:
                    break

        async def pause() -> Json:
            async with aiohttp.ClientSession() as http:
                await _admin(http, info["url"], "faults", {})
                await _admin(http, info["url"], "matching", {"paused": True})
                return await _admin(http, info["url"], "snapshot"), await _admin(http, info["url"], "rate_limits")

        snap, limits = asyncio.run(pause())
        rows = []
        for p in procs:
            p.stdin.write("go\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        for p in procs:
            out, _ = p.communicate(timeout=600)
            for line in out.splitlines():
                if line.startswith("{") and '"strategy"' in line:
                    rows.append(json.loads(line))
                    print(line, flush=True)
        keys = ("lost", "duplicated", "divergences", "unresolved", "cross_strategy_cancels", "pending_never_existed")
        total = {k: sum(r.get(k, 0) for r in rows) for k in keys}
        total.update(
            figure="shared_account_load",
            processes=args.processes,
            strategies=len(rows),
            calls=sum(r["calls"] for r in rows),
            orders_on_exchange=len(snap["accounts"][info["api_key"]]["orders"]),
            bans_418=sum(limits.get("bans", {}).values()),
            refused_by_exchange=limits.get("refused", {}),
            error_rate=args.error_rate,
            latency_ms=args.latency_ms,
            wall_s=round(time.perf_counter() - t0, 1),
        )
        print(json.dumps(total), flush=True)
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--error-rate", type=float, default=0.1)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(json.loads(args.worker)))
    else:
        coordinate(args)


if __name__ == "__main__":
    main()
