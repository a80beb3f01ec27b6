"""Reading schema-1 segments (fixed-width string columns, kind codes), so traces written before version 2 stay
readable; compaction rewrites them as version 2 (the migration)."""

from __future__ import annotations

import json
import math

import numpy as np
import zarr

from ..model.types import Json
from .columns import Columns
from .schema import KINDS

STRINGS = ("symbol", "order_id", "client_order_id")
FLOATS = ("amount", "price", "fee")
SIDE_NAMES = {0: None, 1: "buy", 2: "sell"}


def _decode(matrix: np.ndarray) -> list[str]:
    if matrix.size == 0:
        return []
    raw = np.ascontiguousarray(matrix).view(f"S{matrix.shape[1]}").ravel()
    return [b.decode("utf-8", "replace") for b in raw]


def column(g: zarr.Group, name: str, rows: slice = slice(None)) -> np.ndarray:
    arr = g[name]
    assert isinstance(arr, zarr.Array)
    return np.asarray(arr[rows])


def read_v1_segment(g: zarr.Group, start: int, stop: int) -> Columns:
    """Rows [start, stop) of a version-1 segment, as the events they were, encoded as version-2 columns."""
    if stop <= start:
        return Columns.empty()
    rows = slice(start, stop)
    ends = column(g, "payload_end", slice(max(0, start - 1), stop))
    first = 0 if start == 0 else int(ends[0])
    ends = ends[1:] if start > 0 else ends
    blob = bytes(column(g, "payload", slice(first, int(ends[-1])))) if len(ends) and int(ends[-1]) > first else b""
    offsets = np.concatenate([[0], ends - first]).astype(np.int64)
    ts = column(g, "timestamp", rows)
    kinds = column(g, "kind", rows)
    sides = column(g, "side", rows)
    strings = {name: _decode(column(g, name, rows)) for name in STRINGS}
    floats = {name: column(g, name, rows) for name in FLOATS}
    events: list[Json] = []
    for i in range(stop - start):
        payload: Json = json.loads(blob[offsets[i] : offsets[i + 1]]) if offsets[i + 1] > offsets[i] else {}
        e: Json = {"timestamp": int(ts[i]), "kind": payload.pop("kind", None) or KINDS[int(kinds[i])]}
        for name in STRINGS:
            if strings[name][i]:
                e[name] = strings[name][i]
        if SIDE_NAMES.get(int(sides[i])):
            e["side"] = SIDE_NAMES[int(sides[i])]
        for name in FLOATS:
            if not math.isnan(floats[name][i]):
                e[name] = float(floats[name][i])
        e.update(payload)
        events.append(e)
    return Columns.from_events(events)
