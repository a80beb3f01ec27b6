"""When the store cannot be written (disk full, a read-only volume, an I/O error).

The engine writes its store on the money path: the intent journal and the trace's ``order_placed`` before an
order is sent, then order updates, fills and cancels as they happen. A failed write must neither escape into a
watcher or ``call()`` (an ``OSError`` would kill the task or break ``call()``'s promise) nor pass silently.
The rules (docs/engine.md, "When the store cannot be written"):

* an order intent that cannot be made durable is never sent (``orders.book`` refuses it);
* every other event is still applied in memory and reaches the strategy (a fill happened on the exchange whether
  or not the disk took it); the trace keeps it in its buffer and writes it once a flush succeeds;
* any failed write halts the strategy, with a critical alert naming the path and the error, once per episode.

``GuardedSink`` is the strategy's sink: it forwards to the real one (the Zarr trace, the orchestrator's wrapper,
a memory sink) and turns a failed write into that halt instead of an exception. ``durable()`` is the one
write that still raises: the intent's ``order_placed``, which must be on disk before the request leaves.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from ..model.sink import EventSink

log = logging.getLogger("planar.engine.store")


class StoreUnwritable(RuntimeError):
    """The store still cannot be written: re-arming is refused (the message names the path and the error)."""


def describe(exc: BaseException, where: str) -> str:
    """``<what> <path>: [Errno 28] No space left on device`` (the failing file when the error names one)."""
    if isinstance(exc, OSError):
        path = exc.filename or ""
        code = errno.errorcode.get(exc.errno or 0, "")
        text = f"[Errno {exc.errno}{' ' + code if code else ''}] {exc.strerror or exc}"
        return f"{where}{' ' + str(path) if path else ''}: {text}"
    return f"{where}: {type(exc).__name__}: {exc}"


def _log_failure(where: str, exc: BaseException) -> None:
    log.critical("a write to the store failed before the strategy was built: %s", describe(exc, where))


class GuardedSink:
    """The strategy's event sink: a write that fails is reported to ``on_failure`` (the strategy halts and alerts)
    instead of raising. The event is not lost while the process lives: ``EventTrace`` keeps what it could not flush
    in its buffer and writes it with the next flush that succeeds."""

    def __init__(self, inner: EventSink, on_failure: Callable[[str, BaseException], None] | None = None) -> None:
        """``on_failure``: the coordinator's answer to a failed write (``TradingGate.store_failed``, connected when the
        strategy is built); until then a failure is logged."""
        self.inner = inner
        self.on_failure: Callable[[str, BaseException], None] = on_failure or _log_failure
        self.where = f"event trace {getattr(inner, 'root', '')}".rstrip()
        # a live trace's checkpoints fail on their own thread: the failure waits there until a write here takes it
        take = getattr(inner, "take_failure", None)
        self._take_failure: Callable[[], BaseException | None] | None = (
            take if callable(take) and getattr(inner, "background", False) else None
        )

    def record(self, kind: str, **fields: object) -> None:
        try:
            self.inner.record(kind, **fields)
        except OSError as exc:
            self.on_failure(self.where, exc)
        self._background_failure()

    def durable(self, kind: str, **fields: object) -> None:
        """Record and make durable now, or raise (the order intent: nothing is sent that is not on disk first). A
        background checkpoint's failure found meanwhile halts, but does not refuse this intent: it is on disk."""
        self.inner.record(kind, **fields)
        self.inner.flush()
        self._background_failure()

    def flush(self) -> None:
        try:
            self.inner.flush()
        except OSError as exc:
            self.on_failure(self.where, exc)
        self._background_failure()

    def _background_failure(self) -> None:
        if self._take_failure is not None and (failed := self._take_failure()) is not None:
            self.on_failure(self.where, failed)

    def check(self) -> None:
        """Write everything held since a failure, or raise: the store is writable again (a trace that checkpoints
        on its own thread checkpoints here, so that re-arming proves its segments can be written too)."""
        self.inner.flush()
        if self._take_failure is None:
            return
        self._take_failure()  # an earlier failure, which the checkpoint below proves over (or raises again)
        checkpoint = getattr(self.inner, "checkpoint", None)
        try:
            if callable(checkpoint):
                checkpoint()
        except OSError:
            raise
        except Exception as exc:  # an encoder's or a store library's error: the store still cannot be written
            raise OSError(f"checkpoint failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        try:
            if callable(close):
                close()
            else:
                self.inner.flush()
        except OSError as exc:
            log.critical("%s: closing failed (%s); events not yet written are lost with this process", self.where, exc)
            self.on_failure(self.where, exc)

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """The trace's group commit, with its closing flush guarded like any other write (an error raised by the
        block itself goes on unchanged)."""
        make = getattr(self.inner, "group", None)
        if not callable(make):
            yield
            return
        inner: AbstractContextManager[None] = make()
        inner.__enter__()
        try:
            yield
        except BaseException as exc:
            try:
                inner.__exit__(type(exc), exc, exc.__traceback__)
            except OSError as write_error:
                self.on_failure(self.where, write_error)
            raise
        try:
            inner.__exit__(None, None, None)
        except OSError as exc:
            self.on_failure(self.where, exc)

    def __getattr__(self, item: str) -> object:
        if item == "inner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(item)
        return getattr(self.inner, item)

    def __repr__(self) -> str:
        return f"GuardedSink({self.inner!r})"
