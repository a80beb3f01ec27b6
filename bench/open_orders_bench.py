"""Per-order cost as the open orders grow: CPU per ``s.call(waitfor=0)`` with 10 and with 1 000 resting orders.

One engine, one account, six symbols (BTC/USDT and five of the sandbox's synthetic markets). It places the
resting orders itself (GTC buys far under the market, at most 199 a symbol: Binance's MAX_NUM_ORDERS filter,
starting with the traded BTC/USDT, so the stream updates of the measured orders land among them), then sends IOC
buys on BTC/USDT that expire at once, in blocks of BLOCK with a pause after each (its stream updates and trace writes are in the block's CPU, as
in ``engine_hot_path``). The baseline is the same engine with 10 resting orders, measured in the same run; the
two are measured in alternating blocks after both are set up. Goal: ratio <= 1.2.

    .venv/bin/python -m bench.open_orders_bench [--orders 300] [--resting 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import aiohttp

from planar_core.engine import Strategy, strategy
from planar_core.model import PENDING, OrderType, Side

from .common import UNPACED, figure, median, sandbox_process

BLOCK = 25
SETTLE_S = 0.3
SYMBOLS = ["BTC/USDT", "SYN0/USDT", "SYN1/USDT", "SYN2/USDT", "SYN3/USDT", "SYN4/USDT"]
PER_SYMBOL = 199  # Binance's MAX_NUM_ORDERS is 200 a symbol, the measured IOC order included


async def engine(info: dict, http: aiohttp.ClientSession, name: str) -> Strategy:
    async with http.post(f"{info['url']}/admin/accounts", json={"balances": {"USDT": 100_000_000, "BTC": 100}}) as r:
        acct = await r.json()
    s = strategy(
        name,
        env={"EXCHANGE_API_KEY": acct["api_key"], "EXCHANGE_API_SECRET": acct["api_secret"]},
        universe=SYMBOLS,
        store_root=tempfile.mkdtemp(),
        sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
        rate_limits=UNPACED,
        connection={"health_interval": 3600},
    )
    await s.start()
    for _ in range(100):
        if all(ai.last_price for ai in s.universe.values()):
            break
        await asyncio.sleep(0.1)
    return s


async def rest(s: Strategy, n: int) -> None:
    if n > PER_SYMBOL * len(SYMBOLS):
        raise SystemExit(f"at most {PER_SYMBOL * len(SYMBOLS)} resting orders ({PER_SYMBOL} a symbol, {len(SYMBOLS)} symbols)")
    for k in range(n):
        ai = s.universe[SYMBOLS[k // PER_SYMBOL]]
        limits = ai.market["limits"]
        price = ai.last_price * (0.5 - (k % PER_SYMBOL) * 0.0001)
        amount = max(limits["amount"]["min"] or 0.0, (limits["cost"]["min"] or 10.0) * 2 / price)
        answer = await s.call(ai, OrderType.GTC, Side.BUY, amount=amount, price=price, waitfor=0)
        assert answer is PENDING, (ai.symbol, answer)
    while sum(len(ai.open_orders()) for ai in s.universe.values()) < n:
        await asyncio.sleep(0.05)


async def run(orders: int, resting: int, info: dict) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        few, many = await engine(info, http, "few"), await engine(info, http, "many")
    try:
        await rest(few, 10)
        await rest(many, resting)
        cpu = {id(few): 0.0, id(many): 0.0}
        ms: dict[int, list[float]] = {id(few): [], id(many): []}
        for block in range(0, orders, BLOCK):
            for s in (few, many):
                ai = s.universe["BTC/USDT"]
                price = round(ai.last_price * 0.9, 2)
                c0 = time.process_time()
                for _ in range(min(BLOCK, orders - block)):
                    t0 = time.perf_counter()
                    answer = await s.call(ai, OrderType.IOC, Side.BUY, amount=0.001, price=price, waitfor=0)
                    ms[id(s)].append((time.perf_counter() - t0) * 1000)
                    assert answer is PENDING, (
                        s.name,
                        [e for k in ("order_refused", "order_failed", "order_rejected") for e in s.sink.of(k)][-1:]
                        if hasattr(s.sink, "of")
                        else answer,
                    )
                await asyncio.sleep(SETTLE_S)
                cpu[id(s)] += time.process_time() - c0
        per = {k: v / orders * 1000 for k, v in cpu.items()}
        return [
            figure(
                f"CPU per order with {resting} resting orders (ms)",
                per[id(many)],
                per[id(few)],
                "CPU per order with 10 resting orders (ms)",
                goal="ratio <= 1.2",
                n=orders,
            ),
            figure(
                f"s.call(waitfor=0) median with {resting} resting orders (ms)",
                median(ms[id(many)]),
                median(ms[id(few)]),
                "the same with 10 resting orders (ms)",
                n=orders,
            ),
        ]
    finally:
        await few.stop()
        await many.stop()


def main() -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="measured orders per side")
    parser.add_argument("--resting", type=int, default=1000, help="resting orders of the measured side")
    args = parser.parse_args()
    with sandbox_process(
        "--synthetic-markets", "5", "--balance", "USDT=100000000,BTC=100", "--weight-per-minute", "10000000", "--orders-per-10s", "10000000"
    ) as info:
        return asyncio.run(run(args.orders, args.resting, info))


if __name__ == "__main__":
    main()
