"""Emergency-stop wall time (100 open orders on 3 assets, 0 and 20 ms injected latency) and circuit-breaker
reaction time (sandbox price move -> last cancel acknowledged).

Baseline in the same run: raw ccxt ``cancel_all_orders`` on the same 3 symbols in parallel for the same
number of open orders (the least any client must do), and raw ccxt ``cancel_order`` for each order at once (the
least a client that may touch only its own orders must do on spot). Goal: <= 1.5x raw cancel-all at 20 ms.

    .venv/bin/python -m bench.estop_bench [--venue bybit] [--repeat 3]

``--shots K`` (default 5): each run's e-stop figures are the median of K e-stops (each on 100 fresh orders, the
strategy re-armed between them) against the median of K raw cancels taken just before each; one shot alone varied
by 2x on this machine. Every side starts from a quiet process: the orders are placed, then the stream's reports of
them are left ``SETTLE_S`` to be handled before the timed cancels (``settled_place``). ``--repeat R``: R runs (each on a fresh sandbox) print each figure's run of median ratio,
with the min / median / max ratio over the runs.

``--venue bybit``: the engine trading Bybit on the sandbox's Bybit dialect, against raw ``ccxt.bybit`` (the
per-order floor there is Bybit's own: its order endpoints allow 10-20 requests a second per account; the
sandbox's limits are raised so both sides run unpaced).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import aiohttp

from planar_core.engine import strategy
from planar_core.model import OrderType, Side

from .common import UNPACED, figure, median, sandbox_process
from .engine_hot_path import SETTLE_S, raw_client

SYMBOLS = ["BTC/USDT", "ETH/USDT", "LTC/USDT"]
AMOUNT = {"BTC/USDT": 0.001, "ETH/USDT": 0.01, "LTC/USDT": 0.1}


async def admin(info: dict, path: str, body: dict) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{info['url']}/admin/{path}", json=body) as r:
            r.raise_for_status()


async def place(s, n: int) -> None:
    for i in range(n):
        sym = SYMBOLS[i % 3]
        ai = s.universe[sym]
        await s.call(ai, OrderType.GTC, Side.BUY, amount=AMOUNT[sym], price=ai.last_price * (0.7 + (i % 10) / 100), waitfor=0)


async def settled_place(s, n: int) -> None:
    """``n`` orders placed by the engine, then a pause for their stream reports to be handled: each side's timing
    starts from a quiet process. The raw sides always had it (their client's creation and ``load_markets`` come
    between the orders and the timed cancels); the engine's e-stop started while the engine was still handling the
    400 stream messages of the orders just placed, which ran inside its timing."""
    await place(s, n)
    await asyncio.sleep(SETTLE_S)


async def raw_cancel(info: dict, n: int, s) -> float:
    await settled_place(s, n)
    raw = raw_client(info, info, s.config.exchange)
    await raw.load_markets()
    t0 = time.perf_counter()
    await asyncio.gather(*(raw.cancel_all_orders(sym) for sym in SYMBOLS))
    secs = time.perf_counter() - t0
    await raw.close()
    return secs


async def raw_cancel_each(info: dict, n: int, s) -> float:
    """The floor of a strategy's e-stop on spot, which may cancel only its own orders (Binance spot has no batch
    cancel by id): raw ccxt ``cancel_order`` for each of ``n`` orders, all at once."""
    await settled_place(s, n)
    raw = raw_client(info, info, s.config.exchange)
    await raw.load_markets()
    paged = {"paginate": True} if s.config.exchange == "bybit" else {}  # Bybit lists 20 at a time, with a cursor
    listed = [o for sym in SYMBOLS for o in await raw.fetch_open_orders(sym, None, None, paged)]
    t0 = time.perf_counter()
    await asyncio.gather(*(raw.cancel_order(o["id"], o["symbol"]) for o in listed))
    secs = time.perf_counter() - t0
    await raw.close()
    return secs


async def run(info: dict, venue: str = "binance", shots: int = 5) -> list[dict]:
    at = f", {venue}" if venue != "binance" else ""
    rows = []
    for latency, exclusive in ((0, False), (20, False), (20, True)):
        s = strategy(
            f"estop{latency}{'x' if exclusive else ''}",
            env={"EXCHANGE_API_KEY": info["api_key"], "EXCHANGE_API_SECRET": info["api_secret"]},
            exchange=venue,
            universe=SYMBOLS,
            store_root=tempfile.mkdtemp(),
            sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
            rate_limits=UNPACED,
            connection={"health_interval": 3600},
            risk={"exclusive_account": exclusive},
        )
        await s.start()
        while not all(ai.last_price for ai in s.universe.values()):
            await asyncio.sleep(0.05)
        await admin(info, "faults", {"latency_ms": latency})
        bases, eaches, stops = [], [], []
        for _ in range(max(1, shots)):
            bases.append(await raw_cancel(info, 100, s))
            eaches.append(await raw_cancel_each(info, 100, s))
            await settled_place(s, 100)
            report = await s.emergency_stop(f"bench {latency} ms")
            assert report.clean and report.cancelled == 100, report
            stops.append(report.seconds)
            s.rearm()
        base, each, stop_s = median(bases), median(eaches), median(stops)
        await admin(info, "faults", {})
        how = ", exclusive account (one cancel-all per symbol)" if exclusive else ""
        rows.append(
            figure(
                f"emergency stop, 100 orders on 3 assets, {latency} ms latency{at}{how} (s)",
                stop_s,
                base,
                "raw ccxt cancel_all_orders x3 in parallel (s)",
                goal="<= 1.5x raw cancel-all at 20 ms",
                shots=len(stops),
            )
        )
        if exclusive:
            await s.stop()
            continue
        rows.append(
            figure(
                f"emergency stop, 100 orders on 3 assets, {latency} ms latency{at}, vs per-order cancels (s)",
                stop_s,
                each,
                "raw ccxt cancel_order x100 at once (s)",
                note="a strategy's e-stop cancels only its own orders, by id: spot has no batch cancel by id",
            )
        )
        await s.stop()
    # breaker reaction
    s = strategy(
        "breaker",
        env={"EXCHANGE_API_KEY": info["api_key"], "EXCHANGE_API_SECRET": info["api_secret"]},
        exchange=venue,
        universe=SYMBOLS,
        store_root=tempfile.mkdtemp(),
        sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
        rate_limits=UNPACED,
        connection={"health_interval": 3600},
        risk={"max_daily_loss": 100},
    )
    await s.start()
    while not (all(ai.last_price for ai in s.universe.values()) and s.state.day_start_equity):
        await asyncio.sleep(0.05)
    base = await raw_cancel(info, 30, s)
    await settled_place(s, 30)
    t0 = time.perf_counter()
    await admin(info, "price", {"symbol": "BTCUSDT", "factor": 0.9})
    while not s.risk.estop_reports:
        await asyncio.sleep(0.005)
    reaction = time.perf_counter() - t0
    assert s.risk.estop_reports[-1].clean
    rows.append(
        figure(
            f"breaker reaction: price move -> last cancel acknowledged, 30 orders{at} (s)",
            reaction,
            base,
            "raw ccxt cancel_all_orders x3 in parallel (s)",
        )
    )
    await s.stop()
    return rows


def main() -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venue", choices=("binance", "bybit"), default="binance", help="the sandbox's dialect and the engine's venue")
    parser.add_argument("--shots", type=int, default=5, help="e-stops per figure and run (their median is the run's figure)")
    parser.add_argument("--repeat", type=int, default=1, help="run it R times; then print each figure's median with min / median / max")
    args, _ = parser.parse_known_args()  # run_all calls main() with its own arguments
    limits = ("--weight-per-minute", "10000000", "--orders-per-10s", "10000000")
    if args.venue == "bybit":
        limits = ("--venue", "bybit", "--bybit-limit-scale", "1000")
    runs = []
    for _ in range(max(1, args.repeat)):
        with sandbox_process("--balance", "USDT=1000000,BTC=10", *limits) as info:
            runs.append(asyncio.run(run(info, args.venue, args.shots)))
    return runs[0] if len(runs) == 1 else summary(runs)


def summary(runs: list[list[dict]]) -> list[dict]:
    """Each figure over the runs: the run of median ratio, with every run's min / median / max ratio."""
    out = []
    for i, row in enumerate(runs[0]):
        rows = sorted((r[i] for r in runs), key=lambda r: r["ratio"])
        mid = rows[len(rows) // 2]
        extra = {k: v for k, v in mid.items() if k not in ("figure", "value", "baseline", "baseline_name", "ratio", "goal")}
        spread = f"{rows[0]['ratio']} / {mid['ratio']} / {rows[-1]['ratio']}"
        out.append(
            figure(
                row["figure"],
                mid["value"],
                mid["baseline"],
                mid["baseline_name"],
                mid["goal"],
                ratio_min_med_max=spread,
                runs=len(rows),
                **extra,
            )
        )
    return out


if __name__ == "__main__":
    main()
