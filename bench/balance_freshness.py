"""Fill -> correct balance: how long after a fill the engine's balances equal the exchange's, with the user stream
healthy and with it silently dead (connected, saying nothing), against raw ccxt.pro ``watch_balance`` on the same
account in the same run.

One resting buy at a time under the market, filled by a price move through the admin API; the fill's time is the
exchange's (``time`` of the fill in its admin snapshot, ms). An observer is *correct* once its BTC and USDT (free
and locked) equal the exchange's snapshot taken after the fill. Engine: the time of the balance update that made
it correct (its balance hook), and the time it learned the fill (``Filled``). Raw: ccxt.pro ``watch_balance`` in a
loop on its own connection. Blocks alternate (healthy, dead, healthy, ...) so drift over the run hits both; the
engine runs its default watcher configuration (the order watcher's verify poll, 30 s, is what learns a fill when
the stream is dead).

    .venv/bin/python -m bench.balance_freshness [--healthy 30] [--dead 9] [--blocks 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable

import aiohttp
import ccxt.pro as ccxtpro

from planar_core.engine import strategy
from planar_core.engine.notices import EngineEvent, Filled
from planar_core.engine.strategy import Strategy
from planar_core.exchange.ccxt_types import CcxtExchange
from planar_core.exchange.endpoints import point_at_sandbox
from planar_core.model import PENDING, OrderType, Side
from planar_core.model.types import Json

from .common import figure, median, sandbox_process

SYMBOL = "BTC/USDT"
TIMEOUT_S = 120.0  # per fill: longer than the stall guard (60 s) and the verify poll (30 s)
Book = tuple[float, float, float, float]  # BTC free, BTC locked, USDT free, USDT locked


class Observer:
    """Every balance state an observer showed, with the wall-clock time (ms) it showed it."""

    def __init__(self) -> None:
        self.states: list[tuple[float, Book]] = []

    def saw(self, book: Book) -> None:
        self.states.append((time.time() * 1000, book))

    def correct_at(self, want: Book, after_ms: float) -> float | None:
        for t, book in self.states:
            if t >= after_ms - 1 and all(abs(a - b) <= 1e-9 for a, b in zip(book, want)):
                return t
        return None


def engine_book(s: Strategy) -> Book:
    btc, usdt = s.cash("BTC"), s.cash("USDT")
    return (btc.free, btc.used, usdt.free, usdt.used)


def raw_book(balance: Json) -> Book:
    btc, usdt = balance.get("BTC") or {}, balance.get("USDT") or {}
    return (float(btc.get("free") or 0), float(btc.get("used") or 0), float(usdt.get("free") or 0), float(usdt.get("used") or 0))


async def raw_watch(ex: CcxtExchange, obs: Observer) -> None:
    while True:
        try:
            obs.saw(raw_book(await ex.watch_balance()))
        except asyncio.CancelledError:
            raise
        except Exception:  # a dropped connection: watch again
            await asyncio.sleep(0.1)


async def main(healthy: int, dead: int, blocks: int, show_rows: bool = False) -> None:
    with sandbox_process() as info:
        url = info["url"]
        async with aiohttp.ClientSession() as http:

            async def admin(name: str, body: Json | None = None) -> Json:
                async with (http.post if body is not None else http.get)(f"{url}/admin/{name}", json=body) as r:
                    return await r.json()

            acct = await admin("accounts", {"balances": {"USDT": 1_000_000}})
            s = strategy(
                "bench_fresh",
                env={"EXCHANGE_API_KEY": acct["api_key"], "EXCHANGE_API_SECRET": acct["api_secret"]},
                universe=[SYMBOL],
                store_root=tempfile.mkdtemp(),
                sandbox_endpoint={"url": url, "ws_url": info["ws_url"]},
                rate_limits={"weight_per_minute": 10_000_000, "orders_per_second": 100_000, "burst_allowance": 100_000},
                connection={"health_interval": 3600},
            )
            raw = point_at_sandbox(
                ccxtpro.binance({"apiKey": acct["api_key"], "secret": acct["api_secret"], "enableRateLimit": False}), url, info["ws_url"]
            )
            await raw.load_markets()
            engine, baseline = Observer(), Observer()
            known: dict[str, float] = {}  # client order id -> when the engine learned its fill (ms)

            def on_event(event: EngineEvent) -> None:
                if isinstance(event, Filled):
                    known.setdefault(event.order.client_order_id, time.time() * 1000)

            await s.start()
            s.hooks.on_balance(lambda st: engine.saw(engine_book(st)))
            s.hooks.listen(on_event)
            watcher = asyncio.create_task(raw_watch(raw, baseline))
            rows: dict[str, list[dict[str, float | None]]] = {"healthy": [], "dead": []}
            try:
                await asyncio.sleep(3)  # subscriptions settle (the watchers' first polls)
                for _ in range(blocks):
                    for mode, n in (("healthy", healthy // blocks), ("dead", dead // blocks)):
                        await admin("faults", {"paused_user_stream": mode == "dead"})
                        for _ in range(n):
                            rows[mode].append(await one_fill(s, admin, engine, baseline, known))
            finally:
                watcher.cancel()
                await admin("faults", {})
                await s.stop()
                await raw.close()
            if show_rows:
                for mode, got in rows.items():
                    for row in got:
                        print(json.dumps({"mode": mode, **row}), flush=True)
            print_figures(rows, getattr(getattr(s, "freshness", None), "fetches", -1))  # -1: an engine without it


async def one_fill(
    s: Strategy, admin: Callable[[str, Json | None], Awaitable[Json]], engine: Observer, baseline: Observer, known: dict[str, float]
) -> dict[str, float | None]:
    """One resting buy filled by a price move; when each observer showed the exchange's balance after it."""
    ai = s.universe[SYMBOL]
    await admin("price", {"symbol": "BTCUSDT", "factor": 1.0})
    ticker = await s.venue.ex.fetch_ticker(SYMBOL)
    before = set(ai.orders)
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=round(float(ticker["bid"]) * 0.998, 2), waitfor=0) is PENDING
    (cid,) = set(ai.orders) - before
    await asyncio.sleep(0.3)  # the lock reaches the stream observers (when it is alive) before the fill
    await admin("price", {"symbol": "BTCUSDT", "factor": 0.99})  # through the buy: it fills now
    snap = (await admin("snapshot"))["accounts"][s.config.credentials.api_key.get_secret_value()]  # type: ignore[union-attr]
    fill = next(f for f in snap["fills"] if f["client_order_id"] == cid)
    bal = snap["spot_balances"]
    want = (float(bal["BTC"]["free"]), float(bal["BTC"]["locked"]), float(bal["USDT"]["free"]), float(bal["USDT"]["locked"]))
    t_fill = float(fill["time"])
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and engine.correct_at(want, t_fill) is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # give the raw observer the same moment
    e, r = engine.correct_at(want, t_fill), baseline.correct_at(want, t_fill)
    return {
        "engine_ms": None if e is None else e - t_fill,
        "raw_ms": None if r is None else r - t_fill,
        "known_ms": known[cid] - t_fill if cid in known else None,
        "after_known_ms": None if e is None or cid not in known else max(0.0, e - known[cid]),
    }


def print_figures(rows: dict[str, list[dict[str, float | None]]], fetches: int) -> None:
    for mode, got in rows.items():
        if not got:
            continue
        eng = [r["engine_ms"] for r in got if r["engine_ms"] is not None]
        raw = [r["raw_ms"] for r in got if r["raw_ms"] is not None]
        known = [r["known_ms"] for r in got if r["known_ms"] is not None]
        gap = [r["after_known_ms"] for r in got if r["after_known_ms"] is not None]
        raw_name = f"raw ccxt.pro watch_balance ({len(raw)} of {len(got)} fills seen within {TIMEOUT_S:.0f} s)"
        extra = {
            "fills": len(got),
            "engine_correct": len(eng),
            "engine_max_ms": round(max(eng), 1) if eng else None,
            "raw_max_ms": round(max(raw), 1) if raw else None,
            "fill_known_p50_ms": round(median(known), 1) if known else None,
            "fill_known_max_ms": round(max(known), 1) if known else None,
            "known_to_balance_p50_ms": round(median(gap), 1) if gap else None,
            "known_to_balance_max_ms": round(max(gap), 1) if gap else None,
        }
        figure(
            f"fill -> correct balance p50 (ms), user stream {mode}",
            median(eng) if eng else float("nan"),
            median(raw) if raw else 0.0,
            raw_name,
            goal="balances equal the exchange's within 2 s of the fill being known",
            **extra,
        )
    figure("REST balance reads made for fills and stalls", float(fetches), 0.0, "none (raw ccxt.pro reads nothing by itself)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--healthy", type=int, default=30, help="fills with the user stream healthy")
    ap.add_argument("--dead", type=int, default=9, help="fills with the user stream silently dead")
    ap.add_argument("--blocks", type=int, default=3, help="alternating blocks (healthy, dead) the fills are split into")
    ap.add_argument("--rows", action="store_true", help="print every fill's figures too")
    a = ap.parse_args()
    asyncio.run(main(a.healthy, a.dead, a.blocks, a.rows))
