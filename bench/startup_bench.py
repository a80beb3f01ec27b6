"""Start-up time: ``Strategy.start()`` wall time against the universe's size and the trace's size.

The sandbox runs in its own process with ``--synthetic-markets`` so it lists as many spot markets as the universe
needs (BTC/USDT, ETH/USDT, LTC/USDT, XRP/USDT, ETH/BTC, then SYN0/USDT ...). Each start is a second start on a store
that a first engine left behind (the usual restart), with the engine's own request limits (no raised budget).

* universe: ``--assets`` (default 50, 200, 1000) on an empty trace;
* trace: ``--events`` (default 0, 1 M, 10 M) at 50 assets, the trace built beforehand with the bulk
  ``EventTrace.append_columns``: order and trade events of the universe's symbols (with this strategy's client ids
  and the basis each fill leaves), API calls, balance updates and market data, spread over ``--span-days`` days.

Baseline in the same run: raw ccxt ``load_markets`` + ``fetch_balance`` + account-wide ``fetch_open_orders``, the
least any client needs before it can trade (a fresh exchange object each time, as the engine's start has).
Goal (issue 31): ``Strategy.start()`` <= 5 s at 200 assets and <= 2 s with a 10 M-event trace.

    .venv/bin/python -m bench.startup_bench [--assets 50 200 1000] [--events 0 1000000 10000000]
        [--after clean|crash|power-loss]

``--after``: how the previous run ended, as its intent journal tells it (``IntentJournal.complete``):

* ``clean``: its last record is the one a clean stop writes;
* ``crash`` (the default): its last record is the ``start`` a run writes at its start-up, with this boot's id, as
  a process killed in this boot leaves it. Both list history only where something is unresolved;
* ``power-loss``: the same ``start`` record with another boot's id: the machine restarted since, the journal's
  unsynced tail may be lost, and every asset's history is listed: before the start where something is unresolved,
  the others while the engine runs (``deferred_verified_after_s``: from the start's call until that is done).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time

import ccxt.async_support as ccxt_async
import numpy as np

from planar_core.engine import strategy
from planar_core.engine.strategy import Strategy
from planar_core.exchange.client_ids import start_record
from planar_core.exchange.endpoints import point_at_sandbox
from planar_core.trace import EventTrace
from planar_core.trace.columns import NUMBERS, TEXT, Columns
from planar_core.trace.reading import read_columns

from .common import figure, median, sandbox_process

SPOT = ["BTC/USDT", "ETH/USDT", "LTC/USDT", "XRP/USDT", "ETH/BTC"]
KINDS = ["api_call", "order_placed", "order_updated", "order_filled", "trade_executed", "balance_updated", "ohlcv", "risk_metrics"]
SHARE = [0.40, 0.08, 0.08, 0.06, 0.08, 0.10, 0.10, 0.10]
SEGMENT_ROWS = 100_000


def universe(n: int) -> list[str]:
    return (SPOT + [f"SYN{i}/USDT" for i in range(max(0, n - len(SPOT)))])[:n]


def build_strategy(info: dict[str, str], store: str, n: int, weight: int) -> Strategy:
    return strategy(
        "boot",
        env={"EXCHANGE_API_KEY": info["api_key"], "EXCHANGE_API_SECRET": info["api_secret"]},
        universe=universe(n),
        store_root=store,
        sandbox_endpoint={"url": info["url"], "ws_url": info["ws_url"]},
        dead_mans_switch={"enabled": False},
        rate_limits={"weight_per_minute": weight},
    )


def synthetic(n: int, start_ns: int, step_ns: int, symbols: list[str], prefix: str, first_order: int, seed: int) -> Columns:
    """``n`` events as ready columns (no per-event Python): about eight order events per order, on the universe's
    symbols, with this strategy's client ids; each ``trade_executed`` carries the basis its fill left."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(len(KINDS), n, p=SHARE).astype(np.int32)
    ordered = np.isin(kind, [1, 2, 3, 4])
    order = first_order + np.arange(n) // 8
    lifecycle = np.flatnonzero(np.isin(kind, [1, 2, 3]))
    ends_order = np.r_[order[lifecycle][1:] != order[lifecycle][:-1], True]
    kind[lifecycle[ends_order]] = 3  # each order's last lifecycle event closes it (a live trace's orders end)
    sym = order % len(symbols)  # one symbol per order
    codes = np.full((len(TEXT), n), -1, np.int32)
    codes[TEXT.index("kind")] = kind
    codes[TEXT.index("symbol")] = np.where(ordered | (kind == 6), sym, -1)
    codes[TEXT.index("side")] = np.where(ordered, order % 2, -1)
    codes[TEXT.index("endpoint")] = np.where(kind == 0, rng.integers(0, 3, n), -1)
    codes[TEXT.index("result")] = np.where(kind == 0, 0, -1)
    codes[TEXT.index("status")] = np.where(kind == 3, 0, np.where(kind == 2, 1, -1))
    ids = np.unique(order[ordered])
    local = np.searchsorted(ids, order)
    codes[TEXT.index("client_order_id")] = np.where(ordered, local, -1)
    codes[TEXT.index("order_id")] = np.where(ordered & (kind != 1), local, -1)
    trade_rows = np.flatnonzero(kind == 4)
    codes[TEXT.index("trade_id"), trade_rows] = np.arange(len(trade_rows))
    dicts: list[list[str]] = [[] for _ in TEXT]
    dicts[TEXT.index("kind")] = KINDS
    dicts[TEXT.index("symbol")] = symbols
    dicts[TEXT.index("side")] = ["buy", "sell"]
    dicts[TEXT.index("endpoint")] = ["create_order", "fetch_order", "fetch_balance"]
    dicts[TEXT.index("result")] = ["ok"]
    dicts[TEXT.index("status")] = ["closed", "open"]
    dicts[TEXT.index("client_order_id")] = [f"{prefix}-{np.base_repr(int(i), 36).lower()}" for i in ids]
    dicts[TEXT.index("order_id")] = [str(10**9 + int(i)) for i in ids]
    dicts[TEXT.index("trade_id")] = [str(first_order * 8 + i) for i in range(len(trade_rows))]
    numbers = np.full((len(NUMBERS), n), np.nan)
    price = 100.0 + rng.standard_normal(n).cumsum() * 0.01
    numbers[NUMBERS.index("amount")] = np.where(ordered, 0.01, np.nan)
    numbers[NUMBERS.index("price")] = np.where(ordered | (kind == 6), price, np.nan)
    numbers[NUMBERS.index("fee")] = np.where(kind == 4, 0.001, np.nan)
    numbers[NUMBERS.index("filled")] = np.where(kind == 3, 0.01, np.nan)
    numbers[NUMBERS.index("latency_ms")] = np.where(kind == 0, rng.gamma(2.0, 3.0, n), np.nan)
    # payload templates: one per kind, and per symbol for the fills (their basis names the symbol)
    templates = [b"{}\n"] * len(KINDS)
    templates[5] = b'{"payload":{"USDT":{"free":1000.0,"used":0.0,"total":1000.0}}}\n'
    templates[7] = b'{"payload":{"equity":1000.0,"exposure":0.1}}\n'
    templates[1] = b'{"order_type":"limit","tif":"GTC"}\n'
    fills = [
        json.dumps(
            {
                "fee_currency": "USDT",
                "basis": {
                    "symbol": s,
                    "position_side": "both",
                    "lots": [],
                    "trip": None,
                    "totals": {"realized": 0.0, "fees": 0.0, "fills": 0, "trips": 0, "wins": 0},
                },
            },
            separators=(",", ":"),
        ).encode()
        + b"\n"
        for s in symbols
    ]
    templates = templates + fills
    which = np.where(kind == 4, len(KINDS) + sym, kind)
    sizes = np.array([len(t) for t in templates], np.int64)
    lengths = sizes[which]
    ends = np.cumsum(lengths)
    blob = np.frombuffer(b"".join(templates), np.uint8)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[which]
    src = np.arange(int(ends[-1]), dtype=np.int64) + np.repeat(starts - (ends - lengths), lengths)
    ts = start_ns + np.arange(n, dtype=np.int64) * step_ns
    return Columns(ts, codes, dicts, numbers, ends, blob[src])


def build_trace(root: str, n: int, symbols: list[str], prefix: str, span_days: float) -> None:
    """``n`` events spread evenly over the last ``span_days``, ending a minute ago, in segments of SEGMENT_ROWS."""
    if n <= 0:
        return
    step = max(1, int(span_days * 86_400e9) // n)
    start = time.time_ns() - n * step - 60 * 10**9
    with EventTrace(root, fsync=False) as et:
        for a in range(0, n, SEGMENT_ROWS):
            m = min(SEGMENT_ROWS, n - a)
            et.append_columns(synthetic(m, start + a * step, step, symbols, prefix, a // 8, a))


def requests_made(s: Strategy, since_ns: int) -> dict[str, int]:
    """The REST requests the engine's trace recorded since ``since_ns`` (the start), by endpoint."""
    s.sink.flush()
    files = getattr(s.sink, "files", None)
    if files is None:
        return {}
    cols = read_columns(files, since_ns, kind="api_call", payload=False)
    out: dict[str, int] = {}
    for e in cols.text("endpoint").astype(str):
        out[e] = out.get(e, 0) + 1
    return out


def ended(journal: str, after: str) -> None:
    """The journal's last record as the previous run left it (``--after``)."""
    record = start_record(True) if after != "clean" else {"t": 1, "kind": "stop"}
    if after == "power-loss":
        record["boot"] = "a-boot-before-the-power-loss"
    with open(journal, "ab") as fh:
        fh.write(json.dumps(record).encode() + b"\n")


async def engine_start(info: dict[str, str], n: int, events: int, args: argparse.Namespace) -> tuple[float, dict[str, int], float | None]:
    store = tempfile.mkdtemp(prefix="startup-bench-")
    try:
        first = build_strategy(info, store, n, args.weight_per_minute)  # its trace root, its ids
        root = str(first.sink.inner.root)
        prefix = first.ids.prefix
        await first.stop()  # never started: its journal is left as it was
        ended(str(first.journal.path), args.after)  # (a real run's start would spend the request budget)
        build_trace(root, events, universe(n), prefix, args.span_days)
        s = build_strategy(info, store, n, args.weight_per_minute)
        assert s.journal.clean_stop == (args.after == "clean") and s.journal.complete == (args.after != "power-loss")
        since, t0 = time.time_ns(), time.perf_counter()
        await s.start()
        took = time.perf_counter() - t0
        verified = None
        if args.after == "power-loss":  # the assets deferred past the start, listed while the engine runs
            while s.supervisor.running("verify-deferred"):
                await asyncio.sleep(0.05)
            verified = time.perf_counter() - t0
        counts = requests_made(s, since)
        await s.stop()
        return took, counts, verified
    finally:
        shutil.rmtree(store, ignore_errors=True)


async def raw_start(info: dict[str, str]) -> float:
    """The least any client does before trading: markets, balances, the account's open orders."""
    ex = point_at_sandbox(
        ccxt_async.binance(
            {
                "apiKey": info["api_key"],
                "secret": info["api_secret"],
                "enableRateLimit": False,
                "options": {"warnOnFetchOpenOrdersWithoutSymbol": False},
            }
        ),
        info["url"],
        info["ws_url"],
    )
    try:
        t0 = time.perf_counter()
        await ex.load_markets()
        await ex.fetch_balance()
        await ex.fetch_open_orders()
        return time.perf_counter() - t0
    finally:
        await ex.close()


def measure(n: int, events: int, args: argparse.Namespace) -> tuple[float, float, dict[str, int], float | None]:
    """Median of ``--repeat`` starts and baselines, each pair on a sandbox of its own (a fresh weight window: an
    earlier start's requests must not slow the next one) with a host budget directory of its own."""
    ours, raws, counts, verified = [], [], {}, []
    for _ in range(args.repeat):
        budgets = tempfile.mkdtemp(prefix="startup-bench-budgets-")
        os.environ["PLANAR_BUDGET_DIR"] = budgets
        try:
            markets = str(max(0, max(n, args.trace_assets) - len(SPOT)))
            with sandbox_process("--synthetic-markets", markets, "--weight-per-minute", str(args.weight_per_minute)) as info:
                took, counts, done = asyncio.run(engine_start(info, n, events, args))
                if done is not None:
                    verified.append(done)
            with sandbox_process("--synthetic-markets", markets, "--weight-per-minute", str(args.weight_per_minute)) as info:
                raws.append(asyncio.run(raw_start(info)))
            ours.append(took)
        finally:
            shutil.rmtree(budgets, ignore_errors=True)
    return median(ours), median(raws), counts, median(verified) if verified else None


def main() -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--assets", type=int, nargs="*", default=[50, 200, 1000])
    parser.add_argument("--events", type=int, nargs="*", default=[0, 1_000_000, 10_000_000])
    parser.add_argument("--trace-assets", type=int, default=50, help="universe of the trace-size runs")
    parser.add_argument("--span-days", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--weight-per-minute", type=int, default=6000, help="request-weight limit of the sandbox and of the engine's config (Binance: 6000)"
    )
    parser.add_argument(
        "--after", choices=["clean", "crash", "power-loss"], default="crash", help="how the previous run ended (see the module's docstring)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows = []
    after = {"clean": "after a clean stop", "crash": "after a process crash", "power-loss": "after a power loss"}[args.after]

    def row(n: int, events: int, what: str, goal: str) -> dict[str, object]:
        ours, raw, counts, verified = measure(n, events, args)
        extra = {"deferred_verified_after_s": round(verified, 3)} if verified is not None else {}
        return figure(
            f"Strategy.start() at {n} assets, {what}, {after} (s)",
            ours,
            raw,
            "raw ccxt load_markets + fetch_balance + fetch_open_orders (s)",
            goal=goal,
            requests=sum(counts.values()),
            by_endpoint=counts,
            after=args.after,
            weight_per_minute=args.weight_per_minute,
            **extra,
        )

    for n in args.assets:
        rows.append(row(n, 0, "empty trace", "<= 5 s at 200 assets"))
    for events in args.events:
        if events == 0 and args.trace_assets in args.assets:
            continue
        rows.append(row(args.trace_assets, events, f"{events:,} trace events", "<= 2 s at 10 M events"))
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
