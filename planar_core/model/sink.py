"""Where the engine reports what happens (orders, fills, balances, API calls, errors).

The engine only knows this protocol; the Zarr event trace implements it, and
``MemorySink`` keeps events in a list for tests and short runs.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Protocol

from .types import Json


class EventSink(Protocol):
    def record(self, kind: str, **fields: object) -> None: ...

    def flush(self) -> None: ...


class MemorySink:
    def __init__(self, max_events: int = 100_000) -> None:
        self.events: list[Json] = []
        self.counts: Counter[str] = Counter()
        self.max_events = max_events

    def record(self, kind: str, **fields: object) -> None:
        self.counts[kind] += 1
        self.events.append({"timestamp": time.time_ns(), "kind": kind, **fields})
        if len(self.events) > self.max_events:
            del self.events[: len(self.events) - self.max_events]

    def flush(self) -> None:
        return None

    def of(self, kind: str) -> list[Json]:
        return [e for e in self.events if e["kind"] == kind]
