"""Order hot path: ``s.call(..., waitfor=0)`` vs raw ccxt ``create_order`` on the same sandbox (Binance, or Bybit v5
with ``--venue bybit``: the engine trading Bybit against raw ``ccxt.bybit``, the sandbox's Bybit limits raised).

Both send the same order (an IOC buy 10 % under the market, so nothing fills and no state accumulates), on their
own accounts. Three sides: the engine with intents durable (``event_tracing.fsync`` on, the default), the engine
with fsync off, and raw ccxt.

* **In blocks** (the figures the goal is about): each side sends BLOCK orders in a row, then pauses SETTLE_S so
  its deferred work (stream updates, trace writes) is done before the next side runs. CPU per order is the
  process's CPU time from a block's first order to the end of its pause, over the block's orders: the engine's
  stream handling and trace writes are in it, as they must be.
* **Interleaved** (reported beside them): one engine order, one raw order. The engine's deferred work then lands
  inside the raw call that follows; this is how the bench measured before, and why it reported about 2x.
* **Raw with its user stream watched** (reported beside them, a fourth side in the blocks): raw ccxt
  ``create_order`` on an account whose user stream one ccxt.pro client watches (``watch_orders`` and
  ``watch_balance``, as any trader that follows its orders must). The plain raw side's account has no stream: the
  sandbox then pushes nothing before its answer and the process parses nothing, while for the engine's account
  (and this side's) each order's four stream messages are compressed and sent before the REST answer and parsed
  when they arrive. On this machine that alone made raw ccxt about 1.7x slower and 2.5x the CPU per order.

``--latency MS`` injects that much latency into every sandbox request (its fault API). ``--repeat R`` runs the
whole measurement R times and prints each ratio's min / median / max over the runs. The sandbox runs in its own
process.

``--nautilus`` (or ``--nautilus-python PATH``) adds the head-to-head with NautilusTrader's Binance spot adapter on
the same sandbox process: after each run of ours, bench/nautilus_order_path.py runs in an environment of its own
(PATH, else ``.venv-nautilus``, made once with pip; see bench/common.py) on a fresh sandbox account, with the same
injected latency, and sends the same IOC order ``--orders`` times one after another, timing ``submit_order`` ->
``OrderAccepted`` (Nautilus's "accepted" comes from the user stream's executionReport; ours is the REST reply).
The figure is our durable ``s.call(waitfor=0)`` median in blocks against Nautilus's median (ratio = ours /
Nautilus's, the goal <= 1); the row also carries both p99s and both CPU per order (Nautilus's: its process from
the first timed order to the last acceptance, its Rust threads included; ours includes each block's settle pause).
When Nautilus cannot be installed or run, a line says why and the bench goes on.

    .venv/bin/python -m bench.engine_hot_path [--orders 1000] [--latency 0] [--repeat 3] [--nautilus] [--venue bybit]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro

from planar_core.engine import Strategy, strategy
from planar_core.exchange.ccxt_types import CcxtExchange
from planar_core.exchange.endpoints import point_at_sandbox, point_bybit_at_sandbox
from planar_core.model import PENDING, OrderType, Side
from planar_core.runner.heap import frozen_heap

from .common import UNPACED, figure, median, nautilus_python, nautilus_script, nautilus_skipped, pct, sandbox_process

BLOCK = 25
SETTLE_S = 0.3
NAUTILUS = "s.call(waitfor=0) vs NautilusTrader submit->accepted"  # the head-to-head's figure (its skip line's name)


@dataclass
class Phases:
    """Where the durable side's orders spend their time: before the REST request leaves (the engine's checks and
    durable intent, ccxt's request), on the wire (sent -> answer read, the stream messages that arrive meanwhile
    handled in between), after the answer (its parse and the engine's book-keeping). Measured on the ccxt client's
    ``fetch`` of the engine's venue, the one the order request goes through."""

    sent: float = 0.0
    answered: float = 0.0
    before: list[float] = field(default_factory=list)
    wire: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)

    def watch(self, ex: CcxtExchange) -> None:
        inner = ex.fetch

        async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            self.sent = time.perf_counter()
            try:
                return await inner(url, method, headers, body)
            finally:
                self.answered = time.perf_counter()

        ex.fetch = fetch

    def add(self, t0: float, t1: float) -> None:
        self.before.append((self.sent - t0) * 1000)
        self.wire.append((self.answered - self.sent) * 1000)
        self.after.append((t1 - self.answered) * 1000)


@dataclass
class Side_:
    """One side's latencies (ms) and CPU seconds over its orders."""

    name: str
    send: Callable[[], Awaitable[None]]
    ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    orders: int = 0

    @property
    def cpu_ms_per_order(self) -> float:
        return self.cpu_s / self.orders * 1000 if self.orders else 0.0


async def account(http: aiohttp.ClientSession, info: dict) -> dict:
    async with http.post(f"{info['url']}/admin/accounts", json={"balances": {"USDT": 10_000_000, "BTC": 100}}) as r:
        return dict(await r.json())


async def faults(http: aiohttp.ClientSession, info: dict, latency_ms: float) -> None:
    async with http.post(f"{info['url']}/admin/faults", json={"latency_ms": latency_ms} if latency_ms else {}) as r:
        r.raise_for_status()


def build(info: dict, name: str, acct: dict, fsync: bool, venue: str = "binance") -> Strategy:
    return strategy(
        name,
        exchange=venue,
        env={"EXCHANGE_API_KEY": acct["api_key"], "EXCHANGE_API_SECRET": acct["api_secret"]},
        universe=["BTC/USDT"],
        store_root=tempfile.mkdtemp(),
        sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
        rate_limits=UNPACED,
        connection={"health_interval": 3600},
        event_tracing={"fsync": fsync},
    )


def raw_client(info: dict, acct: dict, venue: str, pro: bool = False) -> CcxtExchange:
    """Unmodified ccxt (REST only, unpaced) on the sandbox, only its URLs changed; ``pro``: ccxt.pro's client (its
    streams too)."""
    conf = {"apiKey": acct["api_key"], "secret": acct["api_secret"], "enableRateLimit": False}
    lib = ccxtpro if pro else ccxt_async
    if venue == "bybit":
        return point_bybit_at_sandbox(lib.bybit(conf), info["url"], info["ws_url"])
    return point_at_sandbox(lib.binance(conf), info["url"], info["ws_url"])


async def watch_forever(client: CcxtExchange) -> None:
    """Follow the account's orders and balance on its user stream, as a trader must (ccxt.pro, unmodified)."""

    async def orders() -> None:
        while True:
            await client.watch_orders("BTC/USDT")

    async def balance() -> None:
        while True:
            await client.watch_balance()

    await asyncio.gather(orders(), balance())


async def once(n: int, info: dict, latency_ms: float, venue: str = "binance") -> dict[str, float]:
    """One measurement: the three sides in blocks, then the engine and raw interleaved; the figures as a dict."""
    async with aiohttp.ClientSession() as http:
        durable_acct, quick_acct, raw_acct = await account(http, info), await account(http, info), await account(http, info)
        streamed_acct = await account(http, info)
        raw = raw_client(info, raw_acct, venue)
        streamed = raw_client(info, streamed_acct, venue, pro=True)  # its REST calls, and its user stream watched
        streaming: asyncio.Task[None] | None = None
        s = build(info, "bench", durable_acct, True, venue)  # the default: durable across a power loss
        quick = build(info, "benchnosync", quick_acct, False, venue)  # durable across a process crash only
        await s.start()
        await quick.start()
        await raw.load_markets()
        await streamed.load_markets()
        try:
            streaming = asyncio.ensure_future(watch_forever(streamed))
            ai, qai = s.universe["BTC/USDT"], quick.universe["BTC/USDT"]
            for _ in range(100):  # let the watchers settle
                if ai.last_price and qai.last_price:
                    break
                await asyncio.sleep(0.1)
            price = float(raw.price_to_precision("BTC/USDT", ai.last_price * 0.9))
            for client in (raw, streamed):  # ccxt's first-order look-ups
                await client.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"timeInForce": "IOC"})

            phases = Phases()
            phases.watch(s.venue.ex)

            def engine(strat: Strategy, timed: Phases | None = None) -> Callable[[], Awaitable[None]]:
                target = strat.universe["BTC/USDT"]

                async def send() -> None:
                    t0 = time.perf_counter()
                    result = await strat.call(target, OrderType.IOC, Side.BUY, amount=0.001, price=price, waitfor=0)
                    if timed is not None:
                        timed.add(t0, time.perf_counter())
                    assert result is PENDING, result

                return send

            async def raw_order() -> None:
                await raw.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"timeInForce": "IOC"})

            async def streamed_order() -> None:
                await streamed.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"timeInForce": "IOC"})

            with frozen_heap():  # as the live flow's process trades (runner/heap.py): no full GC pass over the start's objects
                await faults(http, info, latency_ms)
                sides = [
                    Side_("durable", engine(s, phases)),
                    Side_("nosync", engine(quick)),
                    Side_("raw", raw_order),
                    Side_("streamed", streamed_order),
                ]
                for block in range(0, n, BLOCK):  # each side in blocks, so no side absorbs another's deferred work
                    for side in sides:
                        cpu0 = time.process_time()
                        count = min(BLOCK, n - block)
                        for _ in range(count):
                            t0 = time.perf_counter()
                            await side.send()
                            side.ms.append((time.perf_counter() - t0) * 1000)
                        await asyncio.sleep(SETTLE_S)  # this side's stream updates and trace writes, before the next side
                        side.cpu_s += time.process_time() - cpu0
                        side.orders += count
                inter_engine, inter_raw = Side_("durable", engine(s)), Side_("raw", raw_order)
                for _ in range(min(n, 200)):  # the old way: one for one
                    for side in (inter_engine, inter_raw):
                        t0 = time.perf_counter()
                        await side.send()
                        side.ms.append((time.perf_counter() - t0) * 1000)
            await faults(http, info, 0)
        finally:
            if streaming is not None:
                streaming.cancel()
                with contextlib.suppress(BaseException):
                    await streaming
            await s.stop()
            await quick.stop()
            await raw.close()
            await streamed.close()
    durable, nosync, rawside, streamside = sides
    return {
        "median": median(durable.ms),
        "raw_median": median(rawside.ms),
        "p99": pct(durable.ms, 0.99),
        "raw_p99": pct(rawside.ms, 0.99),
        "max": max(durable.ms),
        "raw_max": max(rawside.ms),
        "nosync_median": median(nosync.ms),
        "cpu": durable.cpu_ms_per_order,
        "raw_cpu": rawside.cpu_ms_per_order,
        "inter_median": median(inter_engine.ms),
        "inter_raw_median": median(inter_raw.ms),
        "streamed_median": median(streamside.ms),
        "streamed_cpu": streamside.cpu_ms_per_order,
        "before": median(phases.before),
        "wire": median(phases.wire),
        "after": median(phases.after),
    }


async def nautilus_account(info: dict[str, Any], latency_ms: float) -> dict[str, Any]:
    """A fresh sandbox account for NautilusTrader's run, and the run's injected latency switched on."""
    async with aiohttp.ClientSession() as http:
        acct = await account(http, info)
        await faults(http, info, latency_ms)
        return acct


async def no_faults(info: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http:
        await faults(http, info, 0)


def nautilus_once(python: str, info: dict[str, Any], n: int, latency_ms: float) -> dict[str, Any] | None:
    """bench/nautilus_order_path.py against this sandbox process: its JSON row, or None (the skip line printed)."""
    acct = asyncio.run(nautilus_account(info, latency_ms))
    cmd = [python, str(Path(__file__).with_name("nautilus_order_path.py")), "--url", info["url"], "--ws-url", info["ws_url"]]
    cmd += ["--api-key", acct["api_key"], "--api-secret", acct["api_secret"], "--orders", str(n), "--timeout", str(120 + n * 0.5)]
    try:
        return nautilus_script(cmd, NAUTILUS, timeout=300 + n * 0.5)
    finally:
        asyncio.run(no_faults(info))


def spread(runs: list[dict[str, float]], key: str, base: str) -> tuple[float, float, str]:
    """A figure's value and baseline as the median over the runs, and its ratio's min / median / max."""
    ratios = [r[key] / r[base] for r in runs]
    return (
        statistics.median(r[key] for r in runs),
        statistics.median(r[base] for r in runs),
        f"{min(ratios):.3f} / {statistics.median(ratios):.3f} / {max(ratios):.3f}",
    )


def main() -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500, help="orders per side per run")
    parser.add_argument("--latency", type=float, default=0.0, help="ms of latency injected into every sandbox request")
    parser.add_argument("--repeat", type=int, default=3, help="runs; each ratio is reported as min / median / max")
    parser.add_argument("--venue", choices=("binance", "bybit"), default="binance", help="the sandbox's dialect and the engine's venue")
    parser.add_argument("--nautilus", action="store_true", help="also NautilusTrader's submit -> accepted on the same sandbox")
    parser.add_argument(
        "--nautilus-python", default=None, help="a Python with nautilus_trader (implies --nautilus; default .venv-nautilus)"
    )
    args = parser.parse_args()
    python: str | None = None
    if (args.nautilus or args.nautilus_python) and args.venue != "binance":
        nautilus_skipped("the head-to-head runs NautilusTrader's Binance adapter: --venue binance only", NAUTILUS)
    elif args.nautilus or args.nautilus_python:
        python, why = nautilus_python(args.nautilus_python)
        if python is None:
            nautilus_skipped(why, NAUTILUS)
    runs: list[dict[str, float]] = []
    theirs: list[dict[str, Any]] = []
    limits = ("--weight-per-minute", "10000000", "--orders-per-10s", "10000000")
    if args.venue == "bybit":
        limits = ("--venue", "bybit", "--bybit-limit-scale", "1000")
    with sandbox_process("--balance", "USDT=10000000,BTC=100", *limits) as info:
        for _ in range(args.repeat):
            runs.append(asyncio.run(once(args.orders, info, args.latency, args.venue)))
            if python is not None:  # right after ours, on the same sandbox process, so both see the same machine
                row = nautilus_once(python, info, args.orders, args.latency)
                if row is None:
                    python, theirs = None, []
                else:
                    theirs.append(row)
    at = f", {args.latency:g} ms latency" if args.latency else ", loopback"
    if args.venue != "binance":
        at += f", {args.venue}"
    extra = {"n": args.orders, "runs": args.repeat}
    rows = []
    for name, key, base, base_name, goal in (
        ("s.call(waitfor=0) median latency, in blocks", "median", "raw_median", "raw ccxt create_order median", "ratio <= 1.10"),
        ("s.call(waitfor=0) p99 latency, in blocks", "p99", "raw_p99", "raw ccxt create_order p99", "ratio <= 1.25"),
        ("s.call(waitfor=0) slowest order, in blocks", "max", "raw_max", "raw ccxt create_order slowest", ""),
        ("s.call(waitfor=0) median latency, fsync off", "nosync_median", "raw_median", "raw ccxt create_order median", ""),
        ("CPU per order, in blocks", "cpu", "raw_cpu", "raw ccxt CPU per order", "ratio <= 2"),
        ("s.call(waitfor=0) median latency, interleaved", "inter_median", "inter_raw_median", "raw ccxt median, interleaved", ""),
        (
            "s.call(waitfor=0) median latency vs raw with its user stream watched, in blocks",
            "median",
            "streamed_median",
            "raw ccxt create_order median, its account's user stream watched by ccxt.pro",
            "",
        ),
        (
            "CPU per order vs raw with its user stream watched, in blocks",
            "cpu",
            "streamed_cpu",
            "raw ccxt CPU per order, its account's user stream watched by ccxt.pro",
            "",
        ),
    ):
        value, baseline, ratios = spread(runs, key, base)
        if args.latency and key == "median" and base == "raw_median":
            goal = "ratio <= 1.05"
        rows.append(figure(f"{name}{at} (ms)", value, baseline, f"{base_name} (ms)", goal=goal, ratio_min_med_max=ratios, **extra))
    value, baseline, ratios = spread(runs, "wire", "raw_median")
    rows.append(
        figure(
            f"s.call(waitfor=0) median time on the wire (request sent -> answer read), in blocks{at} (ms)",
            value,
            baseline,
            "raw ccxt create_order median, its whole call (ms)",
            ratio_min_med_max=ratios,
            before_request_ms=round(statistics.median(r["before"] for r in runs), 4),
            after_answer_ms=round(statistics.median(r["after"] for r in runs), 4),
            **extra,
        )
    )
    if theirs:
        ratios_n = [r["median"] / t["median_ms"] for r, t in zip(runs, theirs, strict=True)]
        rows.append(
            figure(
                f"s.call(waitfor=0) median vs NautilusTrader submit->accepted median, in blocks{at} (ms)",
                statistics.median(r["median"] for r in runs),
                statistics.median(t["median_ms"] for t in theirs),
                f"NautilusTrader {theirs[0]['version']} Binance spot adapter, submit_order -> OrderAccepted median (ms)",
                goal="ratio <= 1",
                ratio_min_med_max=f"{min(ratios_n):.3f} / {statistics.median(ratios_n):.3f} / {max(ratios_n):.3f}",
                p99=round(statistics.median(r["p99"] for r in runs), 4),
                nautilus_p99=statistics.median(t["p99_ms"] for t in theirs),
                cpu_ms_per_order=round(statistics.median(r["cpu"] for r in runs), 4),
                nautilus_cpu_ms_per_order=statistics.median(t["cpu_ms_per_order"] for t in theirs),
                nautilus_n=theirs[0]["n"],
                **extra,
            )
        )
    return rows


if __name__ == "__main__":
    main()
