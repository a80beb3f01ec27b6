"""One process of the shared-budget load: a real ExchangeClient (the engine's, with its pacing) on one sandbox account,
a few concurrent loops of reads (balance, open orders) and orders (a resting limit order, then its cancel).

An order is placed the way the engine places one (``engine/submit.py``): a refusal before handling (429, 418, or not
sent for want of budget) is retried with the same client id after a pause until the placement budget
(``timeouts.order_placement``) is spent; then it counts as refused. Prints ``ready`` once its markets are loaded,
waits for a line on stdin, runs, prints one JSON line of counts.

    python tests/faults/budget_worker.py '{"url": ..., "ws_url": ..., "api_key": ..., "api_secret": ..., "tag": "p0",
                                           "loops": 2, "iterations": 5, "shared": true}'
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

from planar_core.config import StrategyConfig
from planar_core.exchange.client import ExchangeClient
from planar_core.exchange.errors import ExchangeOpError, RateLimited

SYMBOL = "BTC/USDT"


def kind_of(err: BaseException) -> str:
    text = str(err)
    if "not sent" in text:
        return "not_sent"
    if " 418 " in text:
        return "418"
    return "429" if isinstance(err, RateLimited) else type(err).__name__


async def place(c: ExchangeClient, cid: str, price: float, counts: Counter[str], budget_s: float) -> dict[str, Any] | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    pause = 0.2
    while (remaining := deadline - loop.time()) > 0:
        try:
            return await c.call(
                "create_order",
                lambda: c.ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"newClientOrderId": cid}),
                remaining,
                idempotent=False,
                retries=0,
            )
        except RateLimited as err:  # refused before handling: nothing booked; the same id again after a pause
            counts[f"order_{kind_of(err)}"] += 1
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(5.0, pause * 2)
    return None


async def work(c: ExchangeClient, tag: str, n: int, price: float, counts: Counter[str], budget_s: float) -> None:
    for i in range(n):
        for op, fn in (("fetch_balance", lambda: c.ex.fetch_balance()), ("fetch_open_orders", lambda: c.ex.fetch_open_orders(SYMBOL))):
            try:
                await c.call(op, fn, 20)
                counts["reads_ok"] += 1
            except ExchangeOpError as err:
                counts["reads_failed"] += 1
                counts[f"read_{kind_of(err)}"] += 1
        order = await place(c, f"{tag}-{i}", price, counts, budget_s)
        if order is None:
            counts["orders_refused"] += 1
            continue
        counts["orders_placed"] += 1
        try:
            await c.call("cancel_order", lambda o=order: c.ex.cancel_order(o["id"], SYMBOL), 20)
        except ExchangeOpError as err:
            counts[f"cancel_{kind_of(err)}"] += 1


async def main(spec: dict[str, Any]) -> None:
    cfg = StrategyConfig.model_validate(
        {
            "name": spec["tag"],
            "exchange": "binance",
            "sandbox": True,
            "universe": [SYMBOL],
            "sandbox_endpoint": {"url": spec["url"], "ws_url": spec["ws_url"]},
            "credentials": {"api_key": spec["api_key"], "api_secret": spec["api_secret"]},
            "rate_limits": {
                "weight_per_minute": spec.get("weight_per_minute", 1_000_000),
                "requests_per_minute": 1_000_000,
                "orders_per_second": 1000,
                "burst_allowance": 1000,
                **({"shared_budget": spec["shared"]} if spec.get("shared") is not None else {}),  # None: code without it
            },
        }
    )
    c = ExchangeClient(cfg)
    try:
        await c.call("load_markets", lambda: c.ex.load_markets(), 60)
        price = round((await c.call("fetch_order_book", lambda: c.ex.fetch_order_book(SYMBOL), 20))["bids"][0][0] * 0.9, 2)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        counts: Counter[str] = Counter()
        started = time.perf_counter()
        budget_s = cfg.timeouts.order_placement
        loops = (work(c, f"{spec['tag']}-{k}", spec.get("iterations", 5), price, counts, budget_s) for k in range(spec.get("loops", 2)))
        try:  # a bench of code without the budget may meet 418 bans of minutes: it stops at a deadline, counted
            await asyncio.wait_for(asyncio.gather(*loops), spec.get("deadline_s", 600))
        except TimeoutError:
            counts["timed_out"] += 1
        out = {"tag": spec["tag"], "seconds": round(time.perf_counter() - started, 2), **counts}
        pacer = getattr(c, "pacer", None)
        if pacer is not None:
            out["waited_s"] = round(pacer.waited, 2)
        print(json.dumps(out), flush=True)
    finally:
        await c.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))


async def run_load(
    url: str, ws_url: str, api_key: str, api_secret: str, shared: bool | None, processes: int = 5, code: str | None = None, **spec: Any
) -> list[dict]:
    """Start ``processes`` workers on one account, let them go together, return their JSON lines. ``code``: the tree
    whose planar_core the workers import (default this one), e.g. an earlier commit's for a before/after figure."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": code or str(root)}
    procs = []
    for i in range(processes):
        arg = {"url": url, "ws_url": ws_url, "api_key": api_key, "api_secret": api_secret, "tag": f"p{i}", "shared": shared, **spec}
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(Path(__file__).resolve()),
                json.dumps(arg),
                cwd=str(root),
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        )
    try:
        for p in procs:
            line = await asyncio.wait_for(p.stdout.readline(), 120)  # type: ignore[union-attr]
            if line.strip() != b"ready":
                raise RuntimeError(f"worker did not start: {line!r}")
        for p in procs:
            p.stdin.write(b"go\n")  # type: ignore[union-attr]
            await p.stdin.drain()  # type: ignore[union-attr]
        return [json.loads(await asyncio.wait_for(p.stdout.readline(), spec.get("deadline_s", 600) + 60)) for p in procs]  # type: ignore[union-attr]
    finally:
        for p in procs:
            if p.returncode is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
            await p.wait()
