"""Event trace schema (version 1): event kinds and the columns every event has.

See docs/trace.md. Columns are plain Zarr v3 data types only: strings are
stored as fixed-width UTF-8 in ``uint8`` matrices (rows x width), the payload as
one ragged ``uint8`` array of JSON with ``int64`` end offsets.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..model.json import integer, num, text
from ..model.types import Json

SCHEMA_VERSION = 1

KINDS: tuple[str, ...] = (
    "other",
    "order_placed",
    "order_updated",
    "order_filled",
    "order_cancelled",
    "order_failed",
    "order_adopted",
    "trade_executed",
    "balance_updated",
    "position_updated",
    "api_call",
    "error_occurred",
    "risk_rejected",
    "breaker_tripped",
    "emergency_stop",
    "reconnect",
    "config_changed",
    "halted",
    "rearmed",
    "risk_metrics",
    "ohlcv",
    "ticker",
    "daily_reset",
    # added in 1.1 (appended: the codes above never change)
    "order_unknown",
    "order_reconciled",
    "illegal_transition",
    "valuation_incomplete",
    # added in 1.2
    "estop_requested",
    # added in 1.3: conditional orders, margin
    "order_triggered",
    "order_foreign",
    "margin_mode_set",
    "position_mode_set",
    "leverage_updated",
    "forced_close",
    "funding_paid",
)
KIND_CODE = {k: i for i, k in enumerate(KINDS)}
MARKET_DATA_KINDS = frozenset({"ohlcv", "ticker"})
# written to the WAL before record() returns, so they are durable before the engine acts on them further
DURABLE_KINDS = frozenset(
    {
        "order_placed",
        "order_updated",
        "order_filled",
        "order_cancelled",
        "order_failed",
        "order_adopted",
        "trade_executed",
        "position_updated",
        "order_unknown",
        "order_reconciled",
        "illegal_transition",
        "emergency_stop",
        "halted",
        "rearmed",
        "breaker_tripped",
        "estop_requested",
        "order_triggered",
        "forced_close",
        "funding_paid",
    }
)

# name -> (numpy dtype, width for strings)
STRINGS = {"symbol": 24, "order_id": 24, "client_order_id": 40}
FLOATS = ("amount", "price", "fee")
SIDES = {None: 0, "buy": 1, "sell": 2}
SIDE_NAMES = {0: None, 1: "buy", 2: "sell"}
CORE = ("timestamp", "kind", *STRINGS, "side", *FLOATS)


def encode_strings(values: list[object], width: int) -> np.ndarray:
    out = np.zeros((len(values), width), dtype=np.uint8)
    raw = np.array([("" if v is None else str(v)).encode()[:width] for v in values], dtype=f"S{width}")
    if len(values):
        out[:] = raw.view(np.uint8).reshape(len(values), width)
    return out


def decode_strings(matrix: np.ndarray) -> np.ndarray:
    if matrix.size == 0:
        return np.array([], dtype=object)
    width = matrix.shape[1]
    raw = np.ascontiguousarray(matrix).view(f"S{width}").ravel()
    return np.char.decode(raw, "utf-8").astype(object)


def _num(v: object) -> float:
    return num(v, math.nan)


def split_event(event: Json) -> tuple[Json, bytes]:
    """Core columns and the JSON payload of one event (everything that is not a core column)."""
    kind = str(event["kind"])
    core: Json = {
        "timestamp": integer(event["timestamp"]),
        "kind": KIND_CODE.get(kind, 0),
        "side": SIDES.get(text(event.get("side")) or "", 0),
    }
    for name in STRINGS:
        core[name] = event.get(name)
    for name in FLOATS:
        core[name] = _num(event.get(name)) if event.get(name) is not None else math.nan
    rest = {k: v for k, v in event.items() if k not in CORE}
    if kind not in KIND_CODE:
        rest["kind"] = kind
    return core, (json.dumps(rest, separators=(",", ":"), default=str).encode() if rest else b"")


def columns_from_events(events: list[Json]) -> dict[str, np.ndarray]:
    """Columnar arrays for a batch of events."""
    cores, payloads = [], []
    for e in events:
        c, p = split_event(e)
        cores.append(c)
        payloads.append(p)
    n = len(events)
    cols: dict[str, np.ndarray] = {
        "timestamp": np.fromiter((c["timestamp"] for c in cores), dtype=np.int64, count=n),
        "kind": np.fromiter((c["kind"] for c in cores), dtype=np.uint8, count=n),
        "side": np.fromiter((c["side"] for c in cores), dtype=np.int8, count=n),
    }
    for name, width in STRINGS.items():
        cols[name] = encode_strings([c[name] for c in cores], width)
    for name in FLOATS:
        cols[name] = np.fromiter((c[name] for c in cores), dtype=np.float64, count=n)
    lengths = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=n)
    cols["payload_end"] = np.cumsum(lengths, dtype=np.int64)
    cols["payload"] = np.frombuffer(b"".join(payloads), dtype=np.uint8).copy()
    return cols


def empty_columns() -> dict[str, np.ndarray]:
    return columns_from_events([])
