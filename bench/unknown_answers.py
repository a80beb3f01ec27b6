"""What ``call()`` answers under faults, and what became of the orders it could not confirm (issue 25, item 8).

Two fault settings from the issue: 10 % HTTP 503 with 20 ms latency, and 0-2.5 s latency jitter with a 1 s
placement budget. Each places N resting limit orders with ``waitfor=0``, then clears the faults, waits until the
resolver has decided every ``unknown`` order, and compares the answers with the sandbox's admin snapshot.

The figure that must be 0 is "answered PENDING but never booked". Its baseline, in the same run, is the old rule
(an unconfirmed order answered PENDING): the UNKNOWN answers that the resolver then proved absent.

    .venv/bin/python -m bench.unknown_answers
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter

import aiohttp

from planar_core.model import PENDING, UNKNOWN, OrderStatus, OrderType, Side, Trade

from .common import figure, sandbox_process

SETTINGS = {
    "10 % 503, 20 ms latency": ({"error_rate": 0.1, "latency_ms": 20}, 200),
    "0-2.5 s jitter, 1 s budget": ({"latency_jitter_ms": 2500}, 50),
}


async def admin(info: dict, path: str, body: dict | None = None) -> dict:
    async with aiohttp.ClientSession() as http:
        if body is None:
            async with http.get(f"{info['url']}/admin/{path}") as r:
                r.raise_for_status()
                return dict(await r.json())
        async with http.post(f"{info['url']}/admin/{path}", json=body) as r:
            r.raise_for_status()
            return dict(await r.json())


def kind(r: object) -> str:
    return "trade" if isinstance(r, Trade) else "pending" if r is PENDING else "unknown" if r is UNKNOWN else "refused"


async def one(info: dict, name: str, faults: dict, n: int) -> list[dict]:
    from planar_core.engine import strategy

    s = strategy(
        f"unk{len(name)}",
        env={"EXCHANGE_API_KEY": info["api_key"], "EXCHANGE_API_SECRET": info["api_secret"]},
        universe=["BTC/USDT"],
        store_root=tempfile.mkdtemp(),
        sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
        rate_limits={"weight_per_minute": 1_000_000, "orders_per_second": 10_000, "burst_allowance": 10_000},
        connection={"health_interval": 3600},
        timeouts={"order_placement": 1.0},
        order_monitoring={"absent_after": 2.0},
    )
    await s.start()
    ai = s.universe["BTC/USDT"]
    while not ai.last_price:
        await asyncio.sleep(0.05)
    price = ai.last_price
    await admin(info, "faults", faults)
    answers: dict[str, str] = {}
    for i in range(n):
        before = set(ai.orders)
        r = await s.call(ai, OrderType.GTC, Side.BUY, amount=0.001, price=round(price * (0.7 + (i % 20) / 100), 2), waitfor=0)
        for cid in set(ai.orders) - before:
            answers[cid] = kind(r)
    await admin(info, "faults", {})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while any(o.status is OrderStatus.UNKNOWN for o in ai.orders.values()) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    snap = await admin(info, "snapshot")
    booked = {o["client_order_id"] for acct in snap["accounts"].values() for o in acct["orders"]}
    counts = Counter(answers.values())
    pending_ghosts = sum(1 for cid, a in answers.items() if a == "pending" and cid not in booked)
    verdicts = {k: s.book.unknown_outcomes[k] for k in ("unknown_answered", "unknown_resolved_found", "unknown_proven_absent")}
    unresolved = sum(1 for o in ai.orders.values() if o.status is OrderStatus.UNKNOWN)
    absent_but_booked = sum(1 for cid, o in ai.orders.items() if o.verdict == "absent" and cid in booked)
    print(
        json.dumps(
            {
                "setting": name,
                "calls": n,
                "answers": dict(counts),
                **verdicts,
                "absent_but_booked": absent_but_booked,
                "unresolved_after_120s": unresolved,
            }
        ),
        flush=True,
    )
    row = figure(
        f"{name}: answered PENDING but never booked (of {n} calls)",
        pending_ghosts,
        s.book.unknown_outcomes["unknown_proven_absent"],
        "old rule: unconfirmed answered PENDING, then proven absent",
        goal="0",
    )
    for cid in list(ai.orders):  # leave the account clean for the next setting
        if ai.orders[cid].is_open:
            await s.cancel(ai, ai.orders[cid])
    await s.stop()
    return [row]


async def run(info: dict) -> list[dict]:
    rows: list[dict] = []
    for name, (faults, n) in SETTINGS.items():
        rows += await one(info, name, faults, n)
    return rows


def main() -> list[dict]:
    with sandbox_process("--balance", "USDT=1000000,BTC=10", "--weight-per-minute", "10000000", "--orders-per-10s", "10000000") as info:
        return asyncio.run(run(info))


if __name__ == "__main__":
    main()
