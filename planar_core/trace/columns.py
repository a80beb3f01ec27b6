"""A batch of events as schema-2 columns: what a segment holds, what a checkpoint writes, what compaction streams.

Every field an analysis reads is a typed column, decoded without a Python loop per row:

- text fields (``TEXT``) are dictionary-encoded: an ``int32`` code per row (-1 when the event has no such field)
  into a per-batch list of distinct values. They read back as ``pd.Categorical`` in one call, and an order id that
  appears in ten events is stored once.
- numeric fields (``NUMBERS``) are ``float64`` (NaN when absent).
- everything else an event carries is its payload: one JSON object per row, newline-terminated, so a batch's
  payloads are NDJSON and any set of rows parses in one ``json.loads`` call. Readers ask for it only when they
  need it.

Encoding events is the hot path of ``EventTrace.record`` (market data at hundreds of thousands of events a
second), so it works per *shape* (events with the same keys, in practice one per call site): the values are
transposed with ``zip`` and the payload of each distinct set of other values is JSON-encoded once.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from ..model.json import integer, num
from ..model.types import Json

TEXT: tuple[str, ...] = ("kind", "symbol", "side", "status", "order_id", "client_order_id", "trade_id", "endpoint", "result")
NUMBERS: tuple[str, ...] = ("amount", "price", "filled", "fee", "expected_price", "latency_ms")
TYPED = frozenset(("timestamp", *TEXT, *NUMBERS))
_TEXT_AT = {name: j for j, name in enumerate(TEXT)}
_NUMBER_AT = {name: j for j, name in enumerate(NUMBERS)}
_EMPTY = "{}"
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


@dataclass
class Columns:
    timestamp: np.ndarray  # int64 ns since the epoch, strictly increasing within a trace
    codes: np.ndarray  # (len(TEXT), rows) int32 codes into ``dicts``; -1 = the event has no such field (column-major:
    # each column is one contiguous row, read without a copy)
    dicts: list[list[str]]  # per text column: its distinct values
    numbers: np.ndarray  # (len(NUMBERS), rows) float64; NaN = absent
    payload_end: np.ndarray  # int64: end offset of each row's payload line in ``payload`` (all 0: not read)
    payload: np.ndarray  # uint8: one JSON object + "\n" per row

    def __len__(self) -> int:
        return len(self.timestamp)

    @classmethod
    def empty(cls) -> Columns:
        return cls(
            np.zeros(0, np.int64),
            np.zeros((len(TEXT), 0), np.int32),
            [[] for _ in TEXT],
            np.zeros((len(NUMBERS), 0)),
            np.zeros(0, np.int64),
            np.zeros(0, np.uint8),
        )

    # ------------------------------------------------------------- selecting rows
    def slice(self, a: int, b: int) -> Columns:
        first = int(self.payload_end[a - 1]) if a > 0 else 0
        last = int(self.payload_end[b - 1]) if b > a else first
        return Columns(
            self.timestamp[a:b],
            self.codes[:, a:b],
            self.dicts,
            self.numbers[:, a:b],
            self.payload_end[a:b] - first,
            self.payload[first:last],
        )

    def take(self, rows: np.ndarray) -> Columns:
        """The rows selected by a boolean mask or an index array (in that order), payload bytes gathered
        vectorised."""
        idx = np.flatnonzero(rows) if rows.dtype == bool else rows
        starts = np.concatenate([[0], self.payload_end[:-1]])[idx]
        lengths = self.payload_end[idx] - starts
        out_ends = np.cumsum(lengths, dtype=np.int64)
        total = int(out_ends[-1]) if len(out_ends) else 0
        # byte i of the output comes from its row's source start + (i - its row's output start)
        src = np.arange(total, dtype=np.int64) + np.repeat(starts - (out_ends - lengths), lengths)
        return Columns(self.timestamp[idx], self.codes[:, idx], self.dicts, self.numbers[:, idx], out_ends, self.payload[src])

    def rows_of(self, name: str, values: Iterable[str]) -> np.ndarray:
        """Boolean mask of the rows whose text column ``name`` is one of ``values``."""
        wanted = set(values)
        hits = [code for code, v in enumerate(self.dicts[_TEXT_AT[name]]) if v in wanted]
        return np.isin(self.codes[_TEXT_AT[name]], hits)

    def copy(self) -> Columns:
        """Owned arrays (a slice is a view that keeps its whole source alive)."""
        return Columns(
            self.timestamp.copy(), self.codes.copy(), self.dicts, self.numbers.copy(), self.payload_end.copy(), self.payload.copy()
        )

    def pruned(self) -> Columns:
        """The same rows with each dictionary cut to the values its rows use (a slice or a selection keeps the
        whole dictionaries of what it came from; a segment should store only its own)."""
        dicts, codes = [], self.codes
        for j, d in enumerate(self.dicts):
            column = self.codes[j]
            used = np.flatnonzero(np.bincount(column + 1, minlength=len(d) + 1)[1:])  # counted, not sorted: O(rows)
            if len(used) == len(d):
                dicts.append(d)
                continue
            if codes is self.codes:
                codes = self.codes.copy()
            remap = np.full(len(d) + 1, -1, np.int32)
            remap[used] = np.arange(len(used), dtype=np.int32)
            codes[j] = remap[column]
            dicts.append([d[i] for i in used.tolist()])
        return Columns(self.timestamp, codes, dicts, self.numbers, self.payload_end, self.payload)

    # ------------------------------------------------------------- reading
    def payloads(self, kinds: Collection[str] | None = None) -> list[Json | None]:
        """Each row's payload, parsed in one call (the NDJSON lines joined into one JSON array); with ``kinds``,
        only the rows of those kinds are parsed and the others are None (not read, which is not empty)."""
        if kinds is not None:
            rows = np.flatnonzero(self.rows_of("kind", kinds))
            out: list[Json | None] = [None] * len(self)
            for i, p in zip(rows.tolist(), self.take(rows).payloads()):
                out[i] = p
            return out
        if not len(self):
            return []
        if not self.payload_end[-1]:  # every row has at least "{}\n": all zero means read with payload=False
            raise ValueError("these events were read without their payloads (payload=False)")
        blob = self.payload.tobytes()
        return list(json.loads(b"[" + blob[:-1].replace(b"\n", b",") + b"]"))

    def field(self, name: str) -> np.ndarray:
        """One payload field of every row (None where absent), parsing only the rows whose payload names it: a
        byte search finds them, so a field few events carry costs almost nothing to read."""
        out = np.full(len(self), None, dtype=object)
        blob, key, hits = self.payload.tobytes(), json.dumps(name).encode() + b":", []
        at = blob.find(key)
        while at >= 0:
            hits.append(at)
            at = blob.find(key, at + len(key))
        if hits:
            rows = np.unique(np.searchsorted(self.payload_end, np.asarray(hits), side="right"))
            for i, p in zip(rows.tolist(), self.take(rows).payloads()):
                out[i] = (p or {}).get(name)
        return out

    def text(self, name: str) -> "pd.Categorical[int]":
        values = np.empty(len(self.dicts[_TEXT_AT[name]]), dtype=object)
        values[:] = self.dicts[_TEXT_AT[name]]
        return pd.Categorical.from_codes(self.codes[_TEXT_AT[name]], dtype=_categories(values), validate=False)  # type: ignore[arg-type]

    def number(self, name: str) -> np.ndarray:
        column: np.ndarray = self.numbers[_NUMBER_AT[name]]
        return column

    def frame(self, payload: bool | Collection[str] = True) -> pd.DataFrame:
        """The events as a DataFrame: text columns categorical, numbers float64, ``timestamp`` UTC, and (when
        asked) ``payload``: a dict per row of the event's other fields (with a collection of kinds: only for those
        rows, None for the others)."""
        # the int64 nanoseconds viewed as datetimes, then labelled UTC: no conversion pass (to_datetime checks each)
        utc = pd.DatetimeIndex(self.timestamp.view("datetime64[ns]"), copy=False).tz_localize("UTC")
        data: dict[str, object] = {"timestamp": utc}
        for name in TEXT:
            data[name] = self.text(name)
        for name in NUMBERS:
            data[name] = self.number(name)
        if payload is True:
            data["payload"] = self.payloads()
        elif payload is not False:
            data["payload"] = self.payloads(payload)
        return pd.DataFrame(data, copy=False)

    # ------------------------------------------------------------- building
    @staticmethod
    def concat(parts: Sequence[Columns]) -> Columns:
        parts = [p for p in parts if len(p)]
        if len(parts) == 1:
            return parts[0]
        return Columns.laid_out([len(p) for p in parts], lambda views: [v.filled_from(p) for v, p in zip(views, parts)])

    @staticmethod
    def laid_out(sizes: Sequence[int], fill: Callable[[list[Columns]], list[Columns]]) -> Columns:
        """Parts laid end to end in typed arrays allocated once. ``fill(views)`` writes each part's timestamps,
        codes and numbers into its view (its slice of the output: a reader decodes straight into it, no copy
        between) and returns the parts: those views with each part's own dictionaries and payload. The
        dictionaries are then merged and each part's codes remapped in place."""
        at = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).tolist()
        n = at[-1]
        if not n:
            return Columns.empty()
        out = Columns(
            np.empty(n, np.int64),
            np.empty((len(TEXT), n), np.int32),
            [[] for _ in TEXT],  # the views' (no values yet); the merged dictionaries replace it
            np.empty((len(NUMBERS), n)),
            np.zeros(n, np.int64),  # stays all zero (untouched pages) when no part has a payload
            np.zeros(0, np.uint8),
        )
        views = [out.slice(a, b) for a, b in pairwise(at)]
        parts = fill(views)
        dicts = []
        for j in range(len(TEXT)):
            merged, remaps = _merge_dicts([p.dicts[j] for p in parts])
            dicts.append(merged)
            for view, remap in zip(views, remaps):
                if remap is not None:  # same dictionary (kinds, sides, symbols, mostly): the codes stand
                    view.codes[j] = remap[view.codes[j]]
        out.dicts = dicts
        # every row has at least "{}\n": a last end of 0 means a part read without payload, and then so is the whole
        if all(p.payload_end[-1] for p in parts if len(p)):
            offsets = np.cumsum([0, *(int(p.payload_end[-1]) if len(p) else 0 for p in parts)])
            for a, b, p, offset in zip(at[:-1], at[1:], parts, offsets.tolist()):
                np.add(p.payload_end, offset, out=out.payload_end[a:b])
            out.payload = np.concatenate([p.payload for p in parts])
        return out

    def filled_from(self, part: Columns) -> Columns:
        """Copy ``part``'s typed columns into these views (one of ``laid_out``'s slices); ``part`` is returned, its
        dictionaries and payload are what ``laid_out`` reads next."""
        self.timestamp[...] = part.timestamp
        self.codes[...] = part.codes
        self.numbers[...] = part.numbers
        return Columns(self.timestamp, self.codes, part.dicts, self.numbers, part.payload_end, part.payload)

    @staticmethod
    def from_events(events: Sequence[Json]) -> Columns:
        """Encode events (dicts with ``timestamp`` and ``kind``; any other fields)."""
        shapes: dict[tuple[str, ...], list[tuple[object, ...]]] = {}
        for e in events:
            shapes.setdefault(tuple(e), []).append(tuple(e.values()))
        return Columns.from_rows(shapes)

    @staticmethod
    def from_rows(shapes: Mapping[tuple[str, ...], Sequence[tuple[object, ...]]]) -> Columns:
        """Encode rows grouped by shape (field names -> the value tuples of the events with those fields); the
        rows come out in timestamp order (stable)."""
        return Columns.from_columns(
            {keys: [list(map(operator.itemgetter(k), rows)) for k in range(len(keys))] for keys, rows in shapes.items() if rows}
        )

    @staticmethod
    def from_columns(shapes: Mapping[tuple[str, ...], Sequence[Sequence[object]]]) -> Columns:
        """Encode events given column-wise per shape (field names -> one sequence of values per field), each field
        vectorised; the rows come out in timestamp order (stable)."""
        n = sum(len(cols[0]) for cols in shapes.values() if cols)
        if not n:
            return Columns.empty()
        timestamp = np.zeros(n, np.int64)
        codes = np.full((len(TEXT), n), -1, np.int32)
        numbers = np.full((len(NUMBERS), n), np.nan)
        lengths: list[np.ndarray] = []
        blobs: list[bytes] = []
        dicts: list[dict[str, int]] = [{} for _ in TEXT]
        at = 0
        for keys, values in shapes.items():
            rows = values[0] if values else ()
            part = slice(at, at + len(rows))
            at += len(rows)
            rest: list[int] = []
            for k, key in enumerate(keys):
                if key == "timestamp":
                    timestamp[part] = _ints(values[k])
                elif key in _TEXT_AT:
                    codes[_TEXT_AT[key], part] = _encode_text(values[k], dicts[_TEXT_AT[key]])
                elif key in _NUMBER_AT:
                    numbers[_NUMBER_AT[key], part] = _floats(values[k])
                else:
                    rest.append(k)
            length, blob = _encode_payloads([keys[k] for k in rest], [values[k] for k in rest], len(rows))
            lengths.append(length)
            blobs.append(blob)
        out = Columns(
            timestamp,
            codes,
            [list(d) for d in dicts],
            numbers,
            np.cumsum(np.concatenate(lengths)),
            np.frombuffer(b"".join(blobs), np.uint8).copy(),
        )
        if len(shapes) > 1 and np.any(np.diff(timestamp) < 0):
            out = out.take(np.argsort(timestamp, kind="stable"))
        return out


def _categories(values: np.ndarray) -> pd.CategoricalDtype:
    """The dtype of a text column. A dictionary's values are distinct by construction, so pandas' uniqueness check
    (a second hash of every value: a third of a 10M-event read) is skipped where this pandas offers the way to."""
    index = pd.Index(values, dtype=object)
    fast = getattr(pd.CategoricalDtype, "_from_fastpath", None)
    return fast(index, False) if fast is not None else pd.CategoricalDtype(index)


def _merge_dicts(dicts: Sequence[list[str]]) -> tuple[list[str], list[np.ndarray | None]]:
    """One list of the distinct values of several dictionaries (one hash pass), and for each its code map
    (extended so that -1 maps to -1), or None where the codes stay as they are."""
    if all(d == dicts[0] for d in dicts):
        return dicts[0], [None] * len(dicts)
    every = np.concatenate([np.asarray(d, dtype=object) for d in dicts])
    codes, uniques = pd.factorize(every, size_hint=len(every))
    remaps: list[np.ndarray | None] = []
    at = 0
    for d in dicts:
        mine = codes[at : at + len(d)]
        same = bool(np.array_equal(mine, np.arange(len(d))))  # the first dictionary, and any that is its prefix
        remaps.append(None if same else np.append(mine.astype(np.int32), np.int32(-1)))
        at += len(d)
    return list(uniques), remaps


def _ints(values: Sequence[object]) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        return np.fromiter((integer(v) for v in values), np.int64, len(values))


def _floats(values: Sequence[object]) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)  # None -> NaN, numeric strings parsed
    except (TypeError, ValueError):
        return np.fromiter((num(v, np.nan) if v is not None else np.nan for v in values), np.float64, len(values))


def _encode_text(values: Sequence[object], known: dict[str, int]) -> np.ndarray:
    """Codes of ``values`` in ``known`` (extended with the new ones); None -> -1."""
    local, uniques = pd.factorize(np.asarray(values, dtype=object))
    if not len(uniques):
        return local.astype(np.int32)
    remap = np.empty(len(uniques) + 1, np.int32)
    remap[-1] = -1
    for u, v in enumerate(uniques):
        remap[u] = known.setdefault(v if type(v) is str else str(getattr(v, "value", v)), len(known))
    return remap[local]


def _encode_payloads(keys: list[str], columns: list[Sequence[object]], n: int) -> tuple[np.ndarray, bytes]:
    """Each row's other fields as one JSON line: the line lengths and the bytes. Each distinct set of values is
    encoded once; when every row has the same (market data's ``timeframe``), the bytes are one line repeated."""
    distinct = _distinct(columns)
    if not keys or (distinct is not None and all(d == 1 for d in distinct)):
        line = (_dumps(dict(zip(keys, (c[0] for c in columns)))) if keys else _EMPTY).encode() + b"\n"
        return np.full(n, len(line), np.int64), line * n
    rows = list(zip(*columns))
    if distinct is None:
        texts = [_dumps(dict(zip(keys, r))) for r in rows]
    else:
        encoded: dict[tuple[object, ...], str] = {r: _dumps(dict(zip(keys, r))) for r in dict.fromkeys(rows)}
        texts = list(map(encoded.__getitem__, rows))
    # JSON is ASCII (ensure_ascii), so characters are bytes
    return np.fromiter(map(len, texts), np.int64, n) + 1, ("\n".join(texts) + "\n").encode()


def _distinct(columns: list[Sequence[object]]) -> list[int] | None:
    """How many distinct values each column has, or None when values cannot be told apart by hashing: an
    unhashable value (a dict, a list), or equal-hashing values of different types (True, 1, 1.0) in one column."""
    out = []
    try:
        for c in columns:
            kinds = set(map(type, c))
            if len(kinds) > 1 and not kinds <= {str, type(None)}:
                return None
            out.append(len(set(c)))
    except TypeError:
        return None
    return out
