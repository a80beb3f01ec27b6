"""What a restart needs from the trace, read from typed columns: which orders were still open when it ended, each
position's last cost basis, and (for the few symbols the start-up sync lists again) the rows it re-attaches.

A start-up used to read every order and trade event of the lookback (three days) as a dict, and every fill of the
whole trace for the cost basis: 40 s at 10 M events. Here:

* the lookback's events are read as codes only (kind, symbol, client order id, status: no numbers, no payload),
  and reduced per client order id to its last lifecycle event, vectorised;
* the basis is read backwards, newest segment first, until every symbol asked for has one (or the trace's start):
  codes first, then the payload of the last fill per symbol only;
* rows (dicts, with their payload) are built only for the symbols and kinds the caller asks for, and only then.

One snapshot: the segments the manifest listed and the WAL it had not consumed (``reading.consistent``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import zarr.api.asynchronous
from zarr.core.sync import sync

from ..model.types import Json
from .columns import TEXT, Columns
from .files import READ_AHEAD, Manifest, Segment, TraceFiles, _get, parse_dicts, read_segment, segment_read, stored_names
from .reading import _wal_events, consistent, to_records

LIFECYCLE = (
    "order_placed",
    "order_adopted",
    "order_updated",
    "order_unknown",
    "order_triggered",
    "order_filled",
    "order_cancelled",
    "order_failed",
)
TERMINAL_KINDS = frozenset({"order_filled", "order_cancelled", "order_failed"})
FINAL_STATUSES = frozenset({"closed", "canceled", "cancelled", "expired", "rejected", "failed"})
_KIND, _SYMBOL, _STATUS, _CID = (TEXT.index(n) for n in ("kind", "symbol", "status", "client_order_id"))


@dataclass
class _Part:
    """One segment (or the WAL) as codes: the text columns' codes and dictionaries, the timestamps; its full rows
    (numbers, payload) are read only for the rows asked for."""

    timestamp: np.ndarray
    codes: np.ndarray  # (len(TEXT), rows), this version's column order
    dicts: list[list[str]]
    rows_of: Callable[[np.ndarray], list[Json]]  # full records of these row indices

    def mask(self, col: int, values: Collection[str]) -> np.ndarray:
        """Rows whose text column ``col`` is one of ``values``: a table lookup per row (the codes shifted by one, so
        that -1, no value, reads the table's first entry, False)."""
        wanted = values if isinstance(values, (set, frozenset, dict)) else set(values)
        table = np.zeros(len(self.dicts[col]) + 1, bool)
        table[1:] = [v in wanted for v in self.dicts[col]]
        rows: np.ndarray = table[self.codes[col] + 1]
        return rows


def _records_of(files: TraceFiles, seg: Segment) -> Callable[[np.ndarray], list[Json]]:
    def records(rows: np.ndarray) -> list[Json]:
        if not len(rows):
            return []
        a, b = int(rows.min()), int(rows.max()) + 1
        return to_records(read_segment(files, seg, a, b).take(rows - a).frame())

    return records


async def _codes_of(files: TraceFiles, seg: Segment) -> _Part:
    """A segment's timestamps, codes and dictionaries, its three arrays read at once."""
    with segment_read(files, seg):
        return await _decode_codes(files, seg)


async def _decode_codes(files: TraceFiles, seg: Segment) -> _Part:
    g = await zarr.api.asynchronous.open_group(store=files.url(f"segments/{seg.name}"), mode="r")
    text, _ = stored_names(g.attrs)
    ts, stored, raw = await asyncio.gather(
        _get(g, "timestamp", slice(None)), _get(g, "codes", (slice(None), slice(None))), _get(g, "dicts", slice(None))
    )
    if text == list(TEXT):
        codes = stored
    else:  # another version's columns: by name, -1 where it has none
        codes = np.full((len(TEXT), seg.rows), -1, np.int32)
        for j, name in enumerate(TEXT):
            if name in text:
                codes[j] = stored[text.index(name)]
    named = dict(zip(text, parse_dicts(raw.tobytes(), g.attrs.get("dict_sizes"))))
    return _Part(ts, codes, [named.get(name, []) for name in TEXT], _records_of(files, seg))


def _segment_parts(files: TraceFiles, segs: Sequence[Segment]) -> list[_Part]:
    """Segments as codes, read concurrently on Zarr's loop (both cores decode); an old segment read whole."""

    async def all_of() -> list[_Part]:
        return list(await asyncio.gather(*(_codes_of(files, seg) for seg in segs if seg.schema != 1)))

    current = iter(sync(all_of()))
    out = []
    for seg in segs:
        if seg.schema == 1:  # until compaction rewrites it
            cols = read_segment(files, seg, payload=False)
            out.append(_Part(cols.timestamp, cols.codes, cols.dicts, _records_of(files, seg)))
        else:
            out.append(next(current))
    return out


def _columns_part(cols: Columns) -> _Part:
    return _Part(cols.timestamp, cols.codes, cols.dicts, lambda rows: to_records(cols.take(rows).frame()) if len(rows) else [])


@dataclass
class RestartIndex:
    """What the trace says still matters at a restart (see the module's docstring)."""

    open_orders: dict[str, set[str]] = field(default_factory=dict)  # symbol -> client ids whose last event left them open
    bases: dict[tuple[str, str], Json] = field(default_factory=dict)  # (symbol, position side) -> basis after the last fill
    _window: list[_Part] = field(default_factory=list)  # the window's parts, oldest first
    _since_ns: int = 0

    def client_ids(self, kinds: Collection[str], since_ns: int | None = None) -> set[str]:
        """The client order ids of ``kinds`` events in the window (any symbol), from the codes alone."""
        lo = self._since_ns if since_ns is None else since_ns
        out: set[str] = set()
        for part in self._window:
            m = part.mask(_KIND, kinds) & (part.timestamp >= lo) & (part.codes[_CID] >= 0)
            d = part.dicts[_CID]
            out.update(d[c] for c in np.unique(part.codes[_CID][m]).tolist())
        return out

    def rows(
        self,
        kinds: Collection[str],
        symbols: Collection[str] | None = None,
        since_ns: int | None = None,
        cids: Collection[str] | None = None,
    ) -> list[Json]:
        """Full records (typed fields and payload) of ``kinds`` in the window, of ``symbols`` and of the client order
        ids ``cids`` (None: any), oldest first."""
        lo = self._since_ns if since_ns is None else since_ns
        out: list[Json] = []
        for part in self._window:
            m = part.mask(_KIND, kinds) & (part.timestamp >= lo)
            if symbols is not None:
                m &= part.mask(_SYMBOL, symbols)
            if cids is not None:
                m &= part.mask(_CID, cids)
            rows = np.flatnonzero(m)
            if len(rows):
                out += part.rows_of(rows)
        return out


def read_index(
    source: TraceFiles | Sequence[Json],
    since_ns: int,
    until_ns: int,
    symbols: Collection[str],
    mine: Callable[[str], bool],
    basis_sides: Callable[[str], Collection[str]] = lambda _sym: ("both",),
) -> RestartIndex:
    """The restart index of a trace (its files, or a memory sink's events) for ``symbols``: orders open at the end
    and events in [``since_ns``, ``until_ns``), the last basis of each symbol (each of ``basis_sides(symbol)``) from
    anywhere before ``until_ns``. ``mine``: whether a client order id is this strategy's (the account's trace holds
    every strategy's orders)."""
    if isinstance(source, TraceFiles):
        files = source
        return consistent(files, lambda m: _read(_parts_newest_first(files, m), since_ns, until_ns, symbols, mine, basis_sides))
    cols = Columns.from_events(list(source))
    return _read(iter([_columns_part(cols)]), since_ns, until_ns, symbols, mine, basis_sides)


def _parts_newest_first(files: TraceFiles, m: Manifest) -> Iterable[tuple[_Part, int]]:
    """(part, its first timestamp), the WAL first, then the segments newest first; each read when reached."""
    wal = Columns.from_events(_wal_events(files, m))
    if len(wal):
        yield _columns_part(wal), int(wal.timestamp[0])
    newest_first = list(reversed(m.segments))
    for i in range(0, len(newest_first), READ_AHEAD):
        batch = newest_first[i : i + READ_AHEAD]
        yield from zip(_segment_parts(files, batch), (seg.t_min for seg in batch))


def _read(
    parts: Iterable[tuple[_Part, int]] | Iterable[_Part],
    since_ns: int,
    until_ns: int,
    symbols: Collection[str],
    mine: Callable[[str], bool],
    basis_sides: Callable[[str], Collection[str]],
) -> RestartIndex:
    index = RestartIndex(_since_ns=since_ns)
    wanted = {sym: set(basis_sides(sym)) for sym in symbols}  # the sides still without a basis
    window: list[_Part] = []
    for item in parts:
        part, first = item if isinstance(item, tuple) else (item, int(item.timestamp[0]) if len(item.timestamp) else 0)
        if len(part.timestamp) and part.timestamp[-1] >= since_ns:
            window.append(part)
        _bases(part, until_ns, wanted, mine, index.bases)
        if not any(wanted.values()) and first < since_ns:
            break
    window.reverse()
    index._window = window
    _lifecycle(window, since_ns, until_ns, symbols, mine, index)
    return index


def _lifecycle(
    window: list[_Part], since_ns: int, until_ns: int, symbols: Collection[str], mine: Callable[[str], bool], index: RestartIndex
) -> None:
    """Each client order id's last lifecycle event in the window, vectorised per part (oldest part first): the ids a
    part leaves open are carried as text, and closed by a later part's events of the same id."""
    carried: dict[str, str] = {}  # client id -> symbol: open at the end of the parts read so far
    for part in window:
        ts = part.timestamp
        in_window = (ts >= since_ns) & (ts < until_ns)
        universe = part.mask(_SYMBOL, symbols)
        m = part.mask(_KIND, LIFECYCLE) & universe & in_window & (part.codes[_CID] >= 0)
        rows = np.flatnonzero(m)
        if not len(rows):
            continue
        cids = part.codes[_CID][rows]
        _, at = np.unique(cids[::-1], return_index=True)  # the last row of each client id in this part
        last = rows[::-1][at]
        ended = part.mask(_KIND, TERMINAL_KINDS)[last] | (part.mask(_KIND, ("order_updated",)) & part.mask(_STATUS, FINAL_STATUSES))[last]
        names = part.dicts[_CID]
        if carried:  # ids left open earlier that this part speaks of: its last word decides
            code_of = {names[c]: i for i, c in enumerate(part.codes[_CID][last].tolist())}
            for cid in [c for c in carried if c in code_of]:
                if ended[code_of[cid]]:
                    del carried[cid]
        syms = part.dicts[_SYMBOL]
        for r in last[~ended].tolist():
            carried[names[part.codes[_CID][r]]] = syms[part.codes[_SYMBOL][r]]
    for cid, sym in carried.items():
        if mine(cid):
            index.open_orders.setdefault(sym, set()).add(cid)


def _bases(part: _Part, until_ns: int, wanted: dict[str, set[str]], mine: Callable[[str], bool], out: dict[tuple[str, str], Json]) -> None:
    """The newest basis of each symbol still without one, in this part: the last fill per symbol first (its payload
    alone, the usual case), then every earlier fill of the symbols whose last one carried none (or was another
    strategy's), in one read."""
    open_syms = [s for s, sides in wanted.items() if sides]
    if not open_syms:
        return
    rows = np.flatnonzero(part.mask(_KIND, ("trade_executed",)) & part.mask(_SYMBOL, open_syms) & (part.timestamp < until_ns))
    if not len(rows):
        return
    _, at = np.unique(part.codes[_SYMBOL][rows][::-1], return_index=True)
    newest = np.sort(rows[::-1][at])
    _take(part.rows_of(newest), wanted, mine, out)
    still = [s for s in open_syms if wanted[s]]
    if still:
        rest = rows[~np.isin(rows, newest) & part.mask(_SYMBOL, still)[rows]]
        _take(part.rows_of(rest), wanted, mine, out)


def _take(records: list[Json], wanted: dict[str, set[str]], mine: Callable[[str], bool], out: dict[tuple[str, str], Json]) -> None:
    """The newest basis per (symbol, side) among ``records`` (oldest first), where none is known yet."""
    for rec in reversed(records):
        cid, basis = rec.get("client_order_id"), rec.get("basis")
        if not isinstance(cid, str) or not mine(cid) or not isinstance(basis, dict):
            continue
        key = (str(basis.get("symbol")), str(basis.get("position_side") or "both"))
        if key in out:
            continue
        out[key] = basis
        sides = wanted.get(key[0])
        if sides is not None:
            sides.discard(key[1])


PLACEMENT = ("order_placed", "order_triggered")  # what a restart re-attaches to an order it adopts (engine/sync.py)


def placed_records(source: TraceFiles | Sequence[Json], cids: Collection[str], before_ns: int, after_ns: int = 0) -> list[Json]:
    """The ``order_placed`` / ``order_triggered`` records of the client order ids ``cids`` in [``after_ns``,
    ``before_ns``), oldest first: for orders still open on the exchange that were placed before a restart's lookback
    (a resting exit, a trailing stop left for a week). Read backwards, newest part first, codes first, until every
    id's ``order_placed`` is found or the read passes ``after_ns`` (the orders' creation, less a margin) or the
    trace's start; then the archive compaction moved past retention, if the read did not pass ``after_ns``. Each
    attempt of a read that a checkpoint interrupted starts again with every id."""
    if not cids:
        return []
    if not isinstance(source, TraceFiles):
        cols = Columns.from_events(list(source))
        return _placed(iter([(_columns_part(cols), 0)]), set(cids), before_ns, after_ns)[0]
    files = source
    out, wanted = consistent(files, lambda m: _placed(_parts_newest_first(files, m), set(cids), before_ns, after_ns))
    if wanted:
        try:
            archive = TraceFiles(files.url("archive"), create=False)
        except FileNotFoundError:
            return out
        older, _ = consistent(archive, lambda m: _placed(_parts_newest_first(archive, m), set(wanted), before_ns, after_ns))
        out = older + out
    return out


def _placed(parts: Iterable[tuple[_Part, int]], wanted: set[str], before_ns: int, after_ns: int) -> tuple[list[Json], set[str]]:
    """``placed_records`` over ``parts`` (newest first): the records, and the ids still to look for further back
    (none once the read passed ``after_ns``). ``wanted`` is this attempt's own set."""
    found: list[list[Json]] = []
    for part, _ in parts:
        m = part.mask(_KIND, PLACEMENT) & part.mask(_CID, wanted) & (part.timestamp < before_ns) & (part.timestamp >= after_ns)
        rows = np.flatnonzero(m)
        if len(rows):
            records = part.rows_of(rows)
            found.append(records)
            wanted -= {str(r.get("client_order_id")) for r in records if r.get("kind") == "order_placed"}
        if not wanted or (len(part.timestamp) and int(part.timestamp.min()) < after_ns):
            return [r for records in reversed(found) for r in records], set()
    return [r for records in reversed(found) for r in records], wanted
