"""The event trace on Zarr: recording, reading, replay, compaction, analysis and tuning."""

from .reading import extract_events_by_date, read_trace, trace_tail
from .store import EventTrace, TraceLockedError, account_id

__all__ = ["EventTrace", "TraceLockedError", "account_id", "trace_tail", "extract_events_by_date", "read_trace"]
