"""What a trace holds, at a glance (``planar trace stats``), and the trace as a Parquet file for other tools
(``planar trace export --to parquet``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .files import TraceFiles
from .reading import _files, consistent, extract_events_by_date
from .store import EventTrace


@dataclass
class TraceStats:
    root: str
    events: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    segments: int
    wal_files: int
    bytes: int
    by_kind: dict[str, int] = field(default_factory=dict)
    by_day: dict[str, int] = field(default_factory=dict)
    by_day_kind: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        out = dict(vars(self))
        out["first"] = None if self.first is None else self.first.isoformat()
        out["last"] = None if self.last is None else self.last.isoformat()
        return out


def trace_stats(et: EventTrace | TraceFiles | str) -> TraceStats:
    """Events by kind and by UTC day, time range, segments, files not yet compacted into segments, size on disk."""
    files = _files(et)
    manifest = consistent(files, lambda m: m)
    df = extract_events_by_date(files, payload=False)
    size, _ = files.du("")
    wal = [seq for seq in files.list_wal() if seq > manifest.wal_consumed]
    days = df["timestamp"].dt.strftime("%Y-%m-%d") if len(df) else pd.Series([], dtype=str)
    kinds = df["kind"].astype(object) if len(df) else pd.Series([], dtype=object)
    table = pd.crosstab(days, kinds) if len(df) else pd.DataFrame()
    return TraceStats(
        root=files.root,
        events=len(df),
        first=df["timestamp"].iloc[0] if len(df) else None,
        last=df["timestamp"].iloc[-1] if len(df) else None,
        segments=len(manifest.segments),
        wal_files=len(wal),
        bytes=size,
        by_kind={str(k): int(v) for k, v in kinds.value_counts().sort_index().items()},
        by_day={str(k): int(v) for k, v in days.value_counts().sort_index().items()},
        by_day_kind={str(day): {str(k): int(v) for k, v in row.items() if v} for day, row in table.iterrows()},
    )


def to_parquet(df: pd.DataFrame, out: str | Path) -> int:
    """Write events to one Parquet file: the typed columns as they are (text columns dictionary-encoded, absent
    values null), the timestamp in ns UTC, the payload's other fields as a JSON text column (``payload``, empty
    when there are none). Returns the number of rows."""
    flat = df.copy()
    if "payload" in flat.columns:
        flat["payload"] = [json.dumps(p, default=str, separators=(",", ":")) if p else "" for p in flat["payload"]]
    flat.to_parquet(out, engine="pyarrow", index=False)
    return len(flat)
