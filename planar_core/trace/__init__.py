"""The event trace on Zarr: recording, reading, replay, compaction, analysis and tuning."""

from .reading import extract_events_by_date, read_trace, trace_tail
from .files import TraceLockedError, account_id
from .store import EventTrace

__all__ = ["EventTrace", "TraceLockedError", "account_id", "trace_tail", "extract_events_by_date", "read_trace"]
