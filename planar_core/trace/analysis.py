"""Execution analysis of a trace and the event-based tuning it drives.

Conventions (docs/trace.md): rates are percentages and are NaN when there is
nothing to divide by (no orders); slippage is *adverse* slippage in percent of
the expected price (buy: paid above expected is positive; sell: received
below expected is positive), the expected price being the intent's reference
price; execution time is seconds from the intent to each fill.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol, TypedDict

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..model.json import num, rows
from ..model.pnl import fee_quote
from ..model.sink import EventSink
from ..model.types import Json
from ..state import StateStore
from .columns import TEXT
from .files import TraceFiles
from .reading import TimeBound, read_columns
from .replay import replayed_round_trips
from .store import EventTrace

NAN = math.nan


TraceRoot = EventTrace | TraceFiles | str


class Tunable(Protocol):
    """What tuning needs of a strategy (the engine's ``Strategy`` is one): its persisted state and its trace."""

    @property
    def state_store(self) -> StateStore: ...
    @property
    def sink(self) -> EventSink: ...


def _root(source: object) -> TraceRoot:
    """The trace behind ``source``: a strategy (its sink, through any wrapper), an EventTrace, its files, a root."""
    sink = getattr(source, "sink", source)
    while not isinstance(sink, (EventTrace, TraceFiles, str)) and hasattr(sink, "inner"):  # a guarded sink's trace
        sink = sink.inner
    if isinstance(sink, EventTrace):
        sink.sync()
        return sink.files
    if isinstance(sink, (TraceFiles, str)):
        return sink
    raise TypeError(f"no event trace behind {type(source).__name__}")


def _events(source: object, start: TimeBound = None, end: TimeBound = None) -> pd.DataFrame:
    """The typed columns of every event in the window, and ``replaces`` (the trade ids a real trade supersedes).
    Only emulated trades (ids ``emu-...``) can be replaced, so without one in the window no payload is read at all
    (and there is no ``replaces`` column); with one, the payload bytes are read and only the rows that name
    ``replaces`` are parsed."""
    root = _root(source)
    cols = read_columns(root, start, end, payload=False)
    if "\nemu-" not in "\n" + "\n".join(cols.dicts[TEXT.index("trade_id")]):  # one search, not a loop over the ids
        return cols.frame(payload=False)
    cols = read_columns(root, start, end)
    df = cols.frame(payload=False)
    df["replaces"] = cols.field("replaces")
    return df


def _stat(values: pd.Series, fn: str) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(getattr(values, fn)()) if len(values) else NAN


def _codes(series: pd.Series) -> np.ndarray:
    """Integer codes of a text column (-1 = none); equal values have equal codes within one frame."""
    cat = series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype("category")
    return cat.cat.codes.to_numpy()


def _is(df: pd.DataFrame, value: str, column: str = "kind") -> np.ndarray:
    """The rows whose text ``column`` is ``value`` (compared on the categorical codes: no string per row)."""
    return (df[column] == value).to_numpy(dtype=bool)


Owner = Callable[[str], bool]  # a client order id -> whether it is the strategy's (``ClientOrderIds.owns``)


def scope(df: pd.DataFrame, owner: Owner | str | None) -> pd.DataFrame:
    """The events of one strategy: those of its orders and those of no order (balances, API calls, risk events).
    ``owner``: the strategy's ownership test (exact identity), or a client-id prefix; None: everything."""
    return df[in_scope(df, owner)].reset_index(drop=True)


def in_scope(df: pd.DataFrame, owner: Owner | str | None) -> np.ndarray:
    """``scope``'s rows as a boolean mask (the test runs once per distinct client id, not per row)."""
    if not owner or not len(df):
        return np.ones(len(df), dtype=bool)
    test: Owner = owner if callable(owner) else partial(_starts, owner)
    cid = df["client_order_id"]
    cat = cid if isinstance(cid.dtype, pd.CategoricalDtype) else cid.astype("category")
    ours = np.append(np.asarray([test(str(c)) for c in cat.cat.categories], dtype=bool), True)  # code -1: no order
    return ours[cat.cat.codes.to_numpy()]


def _starts(prefix: str, cid: str) -> bool:
    return cid.startswith(prefix)


def _placed(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The client-id codes of the orders placed in the window and the row of each one's first intent."""
    cid = _codes(df["client_order_id"])
    rows = np.flatnonzero(_is(df, "order_placed") & (cid >= 0))
    codes, first = np.unique(cid[rows], return_index=True)
    return codes, rows[first]


def analyze_order_patterns(df: pd.DataFrame) -> dict[str, float]:
    """Counted per order, not per event: an order whose fill is recorded twice (a restart adopting it, a late
    update) counts once, and only orders placed in the window count, so no rate can exceed 100 %."""
    cid = _codes(df["client_order_id"])
    placed, first = _placed(df)
    filled = np.isin(placed, cid[_is(df, "order_filled")])
    cancelled = np.isin(placed, cid[_is(df, "order_cancelled")]) & ~filled
    total = len(placed)
    amounts = pd.Series(df["amount"].to_numpy()[first])
    return {
        "total_orders": total,
        "filled_orders": int(filled.sum()),
        "cancelled_orders": int(cancelled.sum()),
        "fill_rate": filled.sum() / total * 100 if total else NAN,
        "cancel_rate": cancelled.sum() / total * 100 if total else NAN,
        "avg_order_size": _stat(amounts, "mean"),
        "median_order_size": _stat(amounts, "median"),
        "triggered_orders": int(np.isin(placed, cid[_is(df, "order_triggered")]).sum()),
        "forced_closes": int(_is(df, "forced_close").sum()),
        "funding": float(df.loc[_is(df, "funding_paid"), "amount"].sum()),  # received > 0, paid < 0
    }


def execution_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trade of an order placed in the window: its intent's time and reference price, slippage and
    execution time. Emulated trades a real trade replaced (``replaces``) are not fills of their own."""
    cid = _codes(df["client_order_id"])
    placed, first = _placed(df)
    intent_row = np.full(int(cid.max(initial=-1)) + 2, -1, np.int64)  # code -> row of its intent (-1: none)
    intent_row[placed] = first
    trades = np.flatnonzero(_is(df, "trade_executed") & (cid >= 0))
    trades = trades[intent_row[cid[trades]] >= 0]
    if "replaces" in df.columns:
        replaced = {r for rs in df["replaces"].to_numpy()[trades] if rs for r in rs}
        if replaced:
            trades = trades[~df["trade_id"].iloc[trades].astype(object).isin(replaced).to_numpy()]
    intents = intent_row[cid[trades]]
    ns = pd.DatetimeIndex(df["timestamp"]).asi8  # int64 ns: no Timestamp objects on the way
    t = pd.DataFrame(
        {
            "client_order_id": df["client_order_id"].iloc[trades].astype(object).to_numpy(),
            "timestamp": pd.to_datetime(ns[trades], unit="ns", utc=True),
            "side": df["side"].iloc[trades].astype(object).to_numpy(),
            "price": df["price"].to_numpy()[trades],
            "amount": df["amount"].to_numpy()[trades],
            "placed_at": pd.to_datetime(ns[intents], unit="ns", utc=True),
            "expected_price": df["expected_price"].to_numpy()[intents],
        }
    )
    sign = np.where(t["side"] == "sell", -1.0, 1.0)
    t["slippage_pct"] = (t["price"] - t["expected_price"]) / t["expected_price"] * 100 * sign
    t["execution_s"] = (t["timestamp"] - t["placed_at"]).dt.total_seconds()
    return t


def analyze_execution_quality(df: pd.DataFrame) -> dict[str, float]:
    t = execution_table(df)
    return {
        "trades": len(t),
        "avg_slippage": _stat(t["slippage_pct"], "mean"),
        "median_slippage": _stat(t["slippage_pct"], "median"),
        "avg_execution_time": _stat(t["execution_s"], "mean"),
        "median_execution_time": _stat(t["execution_s"], "median"),
    }


class Timing(TypedDict):
    orders_by_hour: dict[int, int]  # UTC hour -> orders placed
    api_calls: int
    api_error_rate: float  # percent
    api_latency_ms: dict[int, float]  # percentile -> ms


class Analysis(TypedDict):
    """What ``analyze_trading_events`` finds: order patterns, execution quality and timing patterns, and the events they come from (typed
    columns; ``payloads(kinds)`` parses the payloads of those kinds' rows, aligned with ``raw_events``, when a
    caller needs them: the report's equity curve)."""

    orders: dict[str, float]
    execution: dict[str, float]
    timing: Timing
    raw_events: pd.DataFrame
    payloads: Callable[[Collection[str]], pd.Series]


def analyze_timing_patterns(df: pd.DataFrame) -> Timing:
    hours = np.bincount((pd.DatetimeIndex(df["timestamp"]).asi8[_is(df, "order_placed")] // 3_600_000_000_000) % 24, minlength=24)
    calls = _is(df, "api_call")
    n = int(calls.sum())
    latency = df["latency_ms"].to_numpy()[calls]
    latency = latency[~np.isnan(latency)]
    errors = int(n - (_is(df, "ok", "result") & calls).sum())  # no result recorded counts as not ok
    return {
        "orders_by_hour": {h: int(c) for h, c in enumerate(hours) if c},  # UTC hour -> orders placed
        "api_calls": n,
        "api_error_rate": errors / n * 100 if n else NAN,
        "api_latency_ms": {q: float(np.quantile(latency, q / 100)) if len(latency) else NAN for q in (50, 90, 99)},
    }


def analyze_trading_events(s: object, start: TimeBound = None, end: TimeBound = None, strategy: Owner | str | None = None) -> Analysis:
    """Order patterns, execution quality, timing patterns, and the raw events of the trace, over
    ``start <= t < end`` and, when ``s`` is a strategy (or ``strategy`` gives an ownership test or a client-id
    prefix), over that strategy's orders only: the account's trace also holds other strategies' orders. A strategy's
    orders are those whose client id encodes its identity exactly (never a prefix: ``mm`` is not ``mm-eth``)."""
    owner = strategy if strategy is not None else _owner_of(s)
    df = _events(s, start, end)
    mask = in_scope(df, owner)
    if not mask.all():  # a copy of every column: only when something is left out
        df = df[mask].reset_index(drop=True)

    def payloads(kinds: Collection[str]) -> pd.Series:
        """Read now, only for these kinds, and matched to ``raw_events`` by timestamp (unique in a trace), so
        events recorded since the analysis do not shift anything."""
        if not len(df):
            return pd.Series([], dtype=object)
        ns = pd.DatetimeIndex(df["timestamp"]).asi8
        cols = read_columns(_root(s), start, end)
        rows = np.flatnonzero(cols.rows_of("kind", kinds))
        out: list[Json | None] = [None] * len(df)
        at = np.searchsorted(ns, cols.timestamp[rows])
        for i, t, p in zip(at.tolist(), cols.timestamp[rows].tolist(), cols.take(rows).payloads()):
            if i < len(ns) and ns[i] == t:
                out[i] = p
        return pd.Series(out, dtype=object)

    return {
        "orders": analyze_order_patterns(df),
        "execution": analyze_execution_quality(df),
        "timing": analyze_timing_patterns(df),
        "raw_events": df,
        "payloads": payloads,
    }


def _owner_of(s: object) -> Owner | None:
    """A strategy's ownership test (its ``ClientOrderIds.owns``); None for a bare trace."""
    owns = getattr(getattr(s, "ids", None), "owns", None)
    return owns if callable(owns) else None


# --------------------------------------------------------------------- tuning
class TuningBounds(BaseModel):
    """Bounds every automatic change is clamped to."""

    model_config = ConfigDict(extra="forbid")

    limit_order_offset: tuple[float, float] = (0.0, 0.5)  # percent through the market price
    order_timeout: tuple[float, float] = (5.0, 600.0)  # seconds
    use_market_orders_threshold: tuple[float, float] = (0.0, 0.1)  # fraction of equity
    max_step: float = Field(0.5, gt=0, description="largest relative change of a numeric parameter in one run")


# The execution policy's parameters (engine/execution.py reads them; nothing else does).
DEFAULTS: Json = {"prefer_limit_orders": False, "limit_order_offset": 0.0, "order_timeout": 60.0, "use_market_orders_threshold": 0.0}


@dataclass
class Proposal:
    param: str
    old: object
    new: object
    reason: str


@dataclass
class TuningResult:
    change_id: str
    analysis: Analysis
    proposals: list[Proposal] = field(default_factory=list)
    applied: list[Proposal] = field(default_factory=list)


def _clamp(bounds: TuningBounds, param: str, old: float, new: float) -> float:
    lo, hi = getattr(bounds, param)
    if old:
        new = min(max(new, old * (1 - bounds.max_step)), old * (1 + bounds.max_step))
    return float(min(max(new, lo), hi))


def propose(analysis: Analysis, current: Json, bounds: TuningBounds) -> list[Proposal]:
    """Execution-tuning proposals from an analysis: slippage, fill rate and execution time, each change bounded
    and explained."""
    merged = {**DEFAULTS, **current}
    params: dict[str, float] = {k: float(v) if isinstance(v, bool) else num(v) for k, v in merged.items()}  # booleans as 0/1
    out: list[Proposal] = []
    slip = analysis["execution"]["avg_slippage"]
    if not math.isnan(slip) and slip > 0.1:
        if not params["prefer_limit_orders"]:
            out.append(Proposal("prefer_limit_orders", False, True, f"average slippage {slip:.3f}% > 0.1%"))
        new = _clamp(bounds, "limit_order_offset", params["limit_order_offset"], 0.05)
        if new != params["limit_order_offset"]:
            out.append(Proposal("limit_order_offset", params["limit_order_offset"], new, f"average slippage {slip:.3f}% > 0.1%"))
    fill = analysis["orders"]["fill_rate"]
    if not math.isnan(fill) and fill < 80:
        new_t = _clamp(bounds, "order_timeout", params["order_timeout"], params["order_timeout"] * 1.5)
        if new_t != params["order_timeout"]:
            out.append(Proposal("order_timeout", params["order_timeout"], new_t, f"fill rate {fill:.1f}% < 80%"))
        if params["prefer_limit_orders"]:  # less price improvement for more fills: limits reach further through the market
            new_p = _clamp(bounds, "limit_order_offset", params["limit_order_offset"], max(0.01, params["limit_order_offset"] * 1.25))
            if new_p != params["limit_order_offset"] and not any(p.param == "limit_order_offset" for p in out):
                out.append(Proposal("limit_order_offset", params["limit_order_offset"], new_p, f"fill rate {fill:.1f}% < 80%"))
    slow = analysis["execution"]["avg_execution_time"]
    if not math.isnan(slow) and slow > 30:
        new_u = _clamp(bounds, "use_market_orders_threshold", params["use_market_orders_threshold"], 0.02)
        if new_u != params["use_market_orders_threshold"]:
            out.append(
                Proposal(
                    "use_market_orders_threshold", params["use_market_orders_threshold"], new_u, f"average execution time {slow:.1f}s > 30s"
                )
            )
    return out


def optimize_from_events(
    s: Tunable, days: float = 30, bounds: TuningBounds | None = None, apply: bool = True, source: object = None
) -> TuningResult:
    """Analyse the last ``days`` of the trace (``source``, default the strategy's own) and apply bounded
    changes to the persisted tuned parameters."""
    bounds = bounds or TuningBounds()
    end = datetime.now(UTC)
    analysis = analyze_trading_events(
        source if source is not None else s, end - timedelta(days=days), end + timedelta(seconds=1), strategy=_owner_of(s)
    )
    state = s.state_store.load()
    result = TuningResult(uuid.uuid4().hex[:12], analysis, propose(analysis, state.tuned_params, bounds))
    if apply and result.proposals:
        tuned = {**state.tuned_params}
        history = rows(tuned.pop("_history", []))
        for p in result.proposals:
            tuned[p.param] = p.new
            s.sink.record("config_changed", change_id=result.change_id, param=p.param, old=p.old, new=p.new, reason=p.reason)
        history.append({"change_id": result.change_id, "at": int(time.time() * 1000), "changes": [vars(p) for p in result.proposals]})
        tuned["_history"] = history[-50:]
        s.state_store.update(tuned_params=tuned)
        result.applied = list(result.proposals)
    return result


def revert_tuning(s: Tunable, change_id: str) -> list[Proposal]:
    """Undo one applied change set (its parameters go back to their old values)."""
    state = s.state_store.load()
    tuned = {**state.tuned_params}
    history = rows(tuned.pop("_history", []))
    entry = next((h for h in history if h.get("change_id") == change_id), None)
    if entry is None:
        raise KeyError(f"no applied tuning change {change_id!r}")
    reverted = []
    for c in rows(entry.get("changes")):
        param = str(c["param"])
        tuned[param] = c["old"]
        s.sink.record("config_changed", change_id=change_id, param=param, old=c["new"], new=c["old"], reason="revert")
        reverted.append(Proposal(param, c["new"], c["old"], "revert"))
    tuned["_history"] = [h for h in history if h["change_id"] != change_id]
    s.state_store.update(tuned_params=tuned)
    return reverted


def tuned_parameters(s: Tunable) -> Json:
    """What the running engine uses: defaults overlaid with the persisted tuned values."""
    return {**DEFAULTS, **{k: v for k, v in s.state_store.load().tuned_params.items() if not k.startswith("_")}}


# --------------------------------------------------------------------- realised PnL: trades, round trips, symbols
# Conventions (model/pnl.py, docs/trace.md "Realised PnL"): realised PnL is gross of fees, in the symbol's quote
# currency; fees are valued in the quote currency (a fee in the base currency at its fill's price; a fee in a third
# currency is not valued, and listed apart); totals add only what is in the report's currency, never amounts of
# different assets.
TRADE_COLUMNS = (
    "time",
    "symbol",
    "side",
    "amount",
    "price",
    "fee",
    "fee_currency",
    "fee_quote",
    "realized_pnl",
    "quote",
    "client_order_id",
    "trade_id",
    "emulated",
)


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a ccxt symbol: ``BTC/USDT`` and ``BTC/USDT:USDT`` -> (BTC, USDT)."""
    base, _, rest = symbol.partition("/")
    return base, (rest.partition(":")[0] or rest)


def _payload_of(p: object) -> Json:
    return {str(k): v for k, v in p.items()} if isinstance(p, dict) else {}


def _replaced(payloads: list[Json]) -> set[str]:
    """The ids of the emulated fills real trades replaced (their ``replaces``)."""
    out: set[str] = set()
    for p in payloads:
        ids = p.get("replaces")
        if isinstance(ids, list):
            out.update(str(r) for r in ids)
    return out


def trade_list(df: pd.DataFrame) -> pd.DataFrame:
    """Every fill of the window (``trade_executed``; an emulated fill a real trade replaced is not one), in trace
    order: time, symbol, side, amount, price, fee (its currency, and valued in the quote), realised PnL (NaN: not
    known, a spot sell with no known lot, or a trace older than the field). ``df`` needs the payloads of its
    ``trade_executed`` rows (``payload`` column)."""
    at = np.flatnonzero(_is(df, "trade_executed"))
    payloads = [_payload_of(p) for p in df["payload"].to_numpy()[at]] if "payload" in df.columns else [{} for _ in at]
    replaced = _replaced(payloads)
    out: list[dict[str, object]] = []
    ns = pd.DatetimeIndex(df["timestamp"]).asi8
    symbols, sides, tids, cids = (df[c].astype(object).to_numpy() for c in ("symbol", "side", "trade_id", "client_order_id"))
    amounts, prices, fees = (df[c].to_numpy() for c in ("amount", "price", "fee"))
    for i, p in zip(at.tolist(), payloads, strict=True):
        tid = tids[i]
        if tid is not None and str(tid) in replaced:
            continue
        symbol = str(symbols[i])
        base, quote = split_symbol(symbol)
        fee = float(fees[i]) if math.isfinite(float(fees[i])) else 0.0
        currency = p.get("fee_currency")
        currency = str(currency) if currency else None
        valued = fee_quote(fee, currency, float(prices[i]), base, quote)
        pnl = p.get("realized_pnl")
        out.append(
            {
                "time": pd.Timestamp(int(ns[i]), unit="ns", tz="UTC"),
                "symbol": symbol,
                "side": sides[i],
                "amount": float(amounts[i]),
                "price": float(prices[i]),
                "fee": fee,
                "fee_currency": currency,
                "fee_quote": NAN if valued is None else valued,
                "realized_pnl": num(pnl, NAN),
                "quote": quote,
                "client_order_id": cids[i],
                "trade_id": tid,
                "emulated": bool(p.get("emulated")),
            }
        )
    return pd.DataFrame(out, columns=list(TRADE_COLUMNS))


def round_trip_list(df: pd.DataFrame) -> pd.DataFrame:
    """The round trips of the window (``round_trip`` events; one whose closing fill a real trade replaced is left
    out). ``df`` needs the payloads of its ``trade_executed`` and ``round_trip`` rows."""
    trades = df[_is(df, "trade_executed")]
    replaced = _replaced([_payload_of(p) for p in trades.get("payload", pd.Series([], dtype=object))])
    trips = replayed_round_trips(df, replaced)
    trips["net_pnl"] = trips["realized_pnl"] - trips["fees"]
    return trips


SYMBOL_COLUMNS = ("symbol", "quote", "trades", "bought", "sold", "volume", "realized_pnl", "fees", "round_trips", "win_rate")


def per_symbol(trades: pd.DataFrame, trips: pd.DataFrame) -> pd.DataFrame:
    """One row per symbol: fills, base amounts bought and sold (that symbol's own asset), volume, realised PnL and
    fees in its quote currency, round trips and their win rate (realised PnL > 0; NaN without one)."""
    out: list[dict[str, object]] = []
    for symbol in sorted(set(trades["symbol"]) | set(trips["symbol"])):
        t = trades[trades["symbol"] == symbol]
        r = trips[trips["symbol"] == symbol]
        buy = t["side"] == "buy"
        out.append(
            {
                "symbol": symbol,
                "quote": split_symbol(symbol)[1],
                "trades": len(t),
                "bought": float(t.loc[buy, "amount"].sum()),
                "sold": float(t.loc[~buy, "amount"].sum()),
                "volume": float((t["amount"] * t["price"]).sum()),
                "realized_pnl": float(t["realized_pnl"].sum()),  # NaN (not known) counts as nothing
                "fees": float(t["fee_quote"].sum()),
                "round_trips": len(r),
                "win_rate": float((r["realized_pnl"] > 0).mean()) if len(r) else NAN,
            }
        )
    return pd.DataFrame(out, columns=list(SYMBOL_COLUMNS))


def drawdown(equity: pd.Series) -> pd.Series:
    """The fall from the running peak of ``equity``, as a fraction of that peak (0 at a new high)."""
    if equity.empty:
        return equity.astype("float64")
    peak = equity.cummax()
    return ((peak - equity) / peak).astype("float64")


def pnl_summary(trades: pd.DataFrame, trips: pd.DataFrame, symbols: pd.DataFrame, equity: pd.Series, currency: str) -> Json:
    """The report's summary: realised PnL and fees in ``currency`` (symbols quoted in it; other quotes apart),
    round trips and win rate, equity (initial, final: the last point of ``equity``), return, max drawdown. Every
    figure finite or None."""
    mine = symbols[symbols["quote"] == currency]
    others = symbols[symbols["quote"] != currency]
    unvalued = trades[trades["fee_quote"].isna() & (trades["fee"] != 0)]
    initial = float(equity.iloc[0]) if len(equity) else None
    final = float(equity.iloc[-1]) if len(equity) else None
    dd = drawdown(equity)
    wins = int((trips["realized_pnl"] > 0).sum())

    def finite(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) else None

    return {
        "currency": currency,
        "trades": len(trades),
        "realized_pnl": float(mine["realized_pnl"].sum()),
        "fees": float(mine["fees"].sum()),
        "net_realized_pnl": float(mine["realized_pnl"].sum() - mine["fees"].sum()),
        "realized_pnl_other_quotes": {str(q): float(g["realized_pnl"].sum()) for q, g in others.groupby("quote")},
        "fees_unvalued": {str(c): float(g["fee"].sum()) for c, g in unvalued.groupby("fee_currency")},
        "unknown_pnl_fills": int(trades["realized_pnl"].isna().sum()),
        "round_trips": len(trips),
        "winning_round_trips": wins,
        "win_rate": wins / len(trips) if len(trips) else None,
        "initial_equity": finite(initial),
        "final_equity": finite(final),
        "return": finite(final / initial - 1) if initial and final is not None else None,
        "max_drawdown": finite(float(dd.max())) if len(dd) else None,
        "max_drawdown_abs": finite(float((equity.cummax() - equity).max())) if len(equity) else None,
        "first_trade": trades["time"].min().isoformat() if len(trades) else None,
        "last_trade": trades["time"].max().isoformat() if len(trades) else None,
    }
