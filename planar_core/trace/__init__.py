"""The event trace on Zarr: recording, reading, replay, compaction, analysis and tuning."""

from .files import TraceLockedError, account_id
from .reading import extract_events_by_date, read_trace, trace_tail
from .store import EventTrace

__all__ = ["EventTrace", "TraceLockedError", "account_id", "extract_events_by_date", "read_trace", "trace_tail"]
