"""Order churn, and the invariants checked after every fault scenario.

The comparison is honest: it looks at the engine's own view *as it stands* — no resync, no restart, nothing that
repairs local state — against the exchange's admin snapshot and against the trace. To let in-flight work land, it
freezes resting orders on the exchange, waits until no request is in flight, and then waits (with a timeout) for
the engine's view to equal the exchange's; what has not converged by then is reported as lost, duplicated or
divergent. The engine may use its own normal machinery meanwhile (watchers, order look-ups); the harness never
calls anything that adopts or rewrites orders.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from planar_core.model import PENDING, UNKNOWN, OrderType, Side, Trade
from planar_core.trace import read_trace

AMOUNTS = {"BTC/USDT": 0.001, "ETH/USDT": 0.02, "LTC/USDT": 0.5, "BTC/USDT:USDT": 0.002, "ETH/USDT:USDT": 0.02, "XRP/USDT:USDT": 20.0}
EXCHANGE_STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "open",
    "FILLED": "closed",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}
NEVER_ON_EXCHANGE = ("failed", "rejected")  # local statuses of orders the exchange never booked


def seed_of(name: str) -> int:
    """A seed that is the same in every process and every run (``hash`` of a str is salted per process)."""
    return zlib.crc32(name.encode())


@dataclass
class ChurnLog:
    placed: int = 0  # call() did not return None
    refused: int = 0  # call() returned None
    cancelled: int = 0
    results: dict[str, bool] = field(default_factory=dict)  # client order id -> call() returned non-None
    answers: dict[str, str] = field(default_factory=dict)  # client order id -> "trade" | "pending" | "unknown" | "refused"
    unknown: int = 0  # call() returned UNKNOWN (the outcome was not known yet)

    def __getitem__(self, key: str) -> int:  # the older dict interface
        return int(getattr(self, key))


async def churn(s: Any, n_orders: int, seed: int = 1) -> ChurnLog:
    """Place, and cancel some of, ``n_orders`` orders: resting limits near the market, marketable limits, market orders."""
    rng = random.Random(seed)
    log = ChurnLog()
    symbols = list(s.universe)
    for i in range(n_orders):
        ai = s.universe[symbols[i % len(symbols)]]
        price = ai.last_price or 0
        kind = rng.random()
        side = Side.BUY if rng.random() < 0.6 else Side.SELL
        if ai.is_margin and ai.position.contracts and rng.random() < 0.3:
            side = Side.SELL if ai.position.contracts > 0 else Side.BUY
        amount = AMOUNTS[ai.symbol]
        before = set(ai.orders)
        if kind < 0.5 and price:
            offset = rng.uniform(0.001, 0.01) * (-1 if side is Side.BUY else 1)
            r = await s.call(ai, OrderType.GTC, side, amount=amount, price=price * (1 + offset), waitfor=0)
        elif kind < 0.75 and price:
            r = await s.call(ai, OrderType.IOC, side, amount=amount, price=price * (1.01 if side is Side.BUY else 0.99), waitfor=0.2)
        else:
            r = await s.call(ai, OrderType.MARKET, side, amount=amount, waitfor=0.2)
        for cid in set(ai.orders) - before:
            log.results[cid] = r is not None
            log.answers[cid] = answer_kind(r)
        log.unknown += r is UNKNOWN
        if r is not None:
            log.placed += 1
        else:
            log.refused += 1
        opened = ai.open_orders()
        if opened and rng.random() < 0.4:
            await s.cancel(ai, rng.choice(opened))
            log.cancelled += 1
    return log


def answer_kind(r: object) -> str:
    """``call()``'s answer as a word (for counting: "PENDING but never existed" must be 0)."""
    if isinstance(r, Trade):
        return "trade"
    return "pending" if r is PENDING else "unknown" if r is UNKNOWN else "refused" if r is None else repr(r)


@dataclass
class Divergences:
    """What the engine got wrong, by class. Empty lists everywhere means the invariants hold."""

    lost: list[str] = field(default_factory=list)  # exchange orders or fills the engine does not know
    duplicated: list[str] = field(default_factory=list)  # one intent booked twice on the exchange
    divergent: list[str] = field(default_factory=list)  # known to both, but different (status, fills, balances ...)
    unresolved: list[str] = field(default_factory=list)  # local orders still 'unknown' or 'intent'

    def empty(self) -> bool:
        return not (self.lost or self.duplicated or self.divergent or self.unresolved)

    def counts(self) -> dict[str, int]:
        return {
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "divergences": len(self.divergent),
            "unresolved": len(self.unresolved),
        }

    def __str__(self) -> str:
        parts = [f"{k}: {v[:6]}" for k, v in vars(self).items() if v]
        return "; ".join(parts) or "none"


def _close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-9) -> bool:
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def trace_fills(s: Any) -> dict[str, float]:
    """Filled amount per client order id as the trace tells it (the replay's rule: emulated trades that a real trade
    replaced, named in its ``replaces``, are not counted)."""
    from planar_core.trace.replay import replay_events

    files = s.sink.files if hasattr(s.sink, "files") else s.sink.inner.files
    trades = replay_events(read_trace(files)).trades
    out: Counter[str] = Counter()
    for cid, amount in zip(trades["client_order_id"], trades["amount"]):
        out[cid] += float(amount)
    return dict(out)


def trace_intents(s: Any) -> set[str]:
    files = s.sink.files if hasattr(s.sink, "files") else s.sink.inner.files
    df = read_trace(files)
    return set(df.loc[df["kind"].astype(str) == "order_placed", "client_order_id"])


def compare(s: Any, snap: dict[str, Any], with_trace: bool = True) -> Divergences:
    """The engine's view as it stands against the exchange snapshot (and the trace). Pure: changes nothing."""
    d = Divergences()
    by_cid: dict[str, list[dict[str, Any]]] = {}
    for o in snap["orders"]:
        by_cid.setdefault(o["client_order_id"], []).append(o)
    for cid, rows in by_cid.items():
        if len(rows) > 1:
            d.duplicated.append(f"{cid} booked {len(rows)} times")
    ex_orders = {cid: rows[-1] for cid, rows in by_cid.items()}
    local = {cid: o for ai in s.universe.values() for cid, o in ai.orders.items()}
    for cid, o in ex_orders.items():
        lo = local.get(cid)
        if lo is None:
            d.lost.append(f"exchange order {cid} ({o['status']}) unknown locally")
            continue
        want = EXCHANGE_STATUS[o["status"]]
        if str(lo.status) != want:
            (d.unresolved if str(lo.status) in ("unknown", "intent") else d.divergent).append(
                f"{cid}: local {lo.status} vs exchange {o['status']}"
            )
        if not _close(lo.filled, float(o["filled"])):
            d.divergent.append(f"{cid}: filled {lo.filled} vs exchange {o['filled']}")
        elif lo.filled and not _close(lo.average or 0.0, float(o["cum_quote"]) / float(o["filled"]), rel=1e-7):
            d.divergent.append(f"{cid}: average {lo.average} vs exchange {float(o['cum_quote']) / float(o['filled'])}")
    for cid, lo in local.items():
        if cid in ex_orders:
            continue
        if str(lo.status) in ("unknown", "intent"):
            d.unresolved.append(f"{cid}: {lo.status} locally, not on the exchange")
        elif str(lo.status) not in NEVER_ON_EXCHANGE:
            d.divergent.append(f"{cid}: {lo.status} locally but the exchange never booked it")
    if s.config.margin:
        wallet = float(snap["futures"]["wallet"])
        mine = s.cash(s.config.main_currency)
        if not _close(mine.total, wallet, rel=1e-9, abs_=1e-6):
            d.divergent.append(f"wallet {mine.total} vs exchange {wallet}")
        for sym, ai in s.universe.items():
            exp = snap["futures"]["positions"].get(ai.market["id"], {})
            if not _close(ai.position.contracts, float(exp.get("amount", 0))):
                d.divergent.append(f"{sym}: position {ai.position.contracts} vs exchange {exp.get('amount', 0)}")
            elif ai.position.contracts and not _close(ai.position.entry_price, float(exp["entry_price"]), rel=1e-7):
                d.divergent.append(f"{sym}: entry {ai.position.entry_price} vs exchange {exp['entry_price']}")
    else:
        for asset, b in snap["spot_balances"].items():
            if asset not in s.holdings.balances:
                continue
            mine = s.cash(asset)
            if not (_close(mine.free, float(b["free"])) and _close(mine.used, float(b["locked"]))):
                d.divergent.append(f"{asset}: free/used {mine.free}/{mine.used} vs exchange {b['free']}/{b['locked']}")
    if with_trace:
        s.sink.flush()
        fills = trace_fills(s)
        intents = trace_intents(s)
        for cid, o in ex_orders.items():
            if cid not in intents:
                d.lost.append(f"{cid}: no order_placed in the trace")
            if not _close(fills.get(cid, 0.0), float(o["filled"])):
                d.lost.append(f"{cid}: trace fills {fills.get(cid, 0.0)} vs exchange filled {o['filled']}")
    return d


async def wait_settled(s: Any, timeout: float = 20.0) -> None:
    """No request in flight and no order still being submitted (waiting on conditions, never repairing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while s.venue.in_flight or any(str(o.status) == "intent" for ai in s.universe.values() for o in ai.orders.values()):
        if loop.time() > deadline:
            raise AssertionError(f"engine did not settle within {timeout}s: {s.venue.in_flight} requests in flight")
        await asyncio.sleep(0.02)


async def check(
    s: Any, pause: Callable[[], Awaitable[None]], snapshot: Callable[[], Awaitable[dict[str, Any]]], timeout: float = 20.0
) -> tuple[Divergences, dict[str, int]]:
    """Freeze resting orders, let in-flight work land, then compare the engine's own view with the exchange until
    they agree or ``timeout`` passes. Returns the divergences left at the end (empty when the invariants hold)."""
    await pause()
    await wait_settled(s, timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        snap = await snapshot()
        d = compare(s, snap, with_trace=False)
        if d.empty() or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    if d.empty():
        d = compare(s, snap, with_trace=True)
    trace = read_trace(s.sink.files if hasattr(s.sink, "files") else s.sink.inner.files)
    if not trace["timestamp"].is_monotonic_increasing:
        d.divergent.append("trace timestamps are not monotonic")
    return d, {"orders": len(snap["orders"]), "fills": len(snap["fills"]), "events": len(trace)}


async def verify(s: Any, sandbox: Any, account: Any, timeout: float = 20.0) -> dict[str, int]:
    """``check`` against an in-process sandbox; raises with every divergence found."""

    async def pause() -> None:
        sandbox.ex.matching_paused = True

    async def snapshot() -> dict[str, Any]:
        return sandbox.ex.snapshot()["accounts"][account.api_key]

    d, result = await check(s, pause, snapshot, timeout)
    assert d.empty(), f"engine view diverges from the exchange (no resync was done): {d}"
    return result
