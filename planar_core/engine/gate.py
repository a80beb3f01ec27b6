"""Whether a strategy may send orders: its halt, the store's health and the files it acts on.

A halt is persisted in the state file (other processes and the next run see it). When the store cannot take it (a
full disk is a reason to halt), the halt holds in memory for this run and is written as soon as the store allows.
A failed write anywhere in the store halts once per episode, with a critical alert naming the path and the error
(engine/store_guard.py). A file the engine acts on (its state, its client-order-id sequence, its journal, its
trace's manifest) that cannot be read back halts too: nothing is written over it. Re-arming is refused until the
store takes writes and every such file reads again.

The gate is built by the composition root (engine/parts.py), which also makes it the answer to a failed write
(``GuardedSink.on_failure``) and to an unreadable state file (``StateStore.on_unreadable``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable

from ..alerts import AlertDispatcher
from ..alerts.dispatcher import send_alert
from ..exchange.client_ids import ClientOrderIds, IntentJournal, ObjectJournal
from ..model.clock import Clock, now_ms
from ..model.types import Json
from ..state import UNFINISHED_STOP, PersistedState, StateStore
from ..storage import CorruptStateError
from .store_guard import GuardedSink, StoreUnwritable, describe

log = logging.getLogger("planar.engine")
HALT_RETRY_S = 1.0  # a halt the state file could not take is written again at most this often


class TradingGate:
    def __init__(
        self,
        name: str,
        state_store: StateStore,
        sink: GuardedSink,
        journal: IntentJournal | ObjectJournal,
        ids: ClientOrderIds,
        clock: Clock,
        alerts: AlertDispatcher | None,
    ) -> None:
        self.name = name
        self.state_store = state_store
        self.sink = sink
        self.journal = journal
        self.ids = ids
        self.clock = clock
        self.alerts = alerts
        self.store_error: str | None = None  # the failed write that halted the strategy
        self.store_failures = 0  # failed writes since the start (the first of an episode halts and alerts)
        # persisted files found unreadable while this process runs (path -> error): no order goes out until re-armed
        self.unreadable: dict[str, CorruptStateError] = {}
        self._held_halt: Json | None = None  # a halt the state file has not taken yet: it holds in memory
        self._halt_retry_at = 0.0

    def _alert(self, message: str) -> None:
        send_alert(self.alerts, message, "critical")

    @property
    def state(self) -> PersistedState:
        """The persisted state, with a halt the state file could not take yet laid over it (written again here, at
        most every ``HALT_RETRY_S``, until the store takes it); halted while it, or another file the engine acts
        on, cannot be read (``persisted_unreadable``)."""
        st = self.state_store.load()
        held = self._held_halt
        if held is not None:
            if time.monotonic() >= self._halt_retry_at and self.write_halt():
                st = self.state_store.load()
            else:
                st = st.model_copy(update=held)
        if self.unreadable and not st.halted:
            first = next(iter(self.unreadable.values()))
            return st.model_copy(update={"halted": True, "halt_reason": f"unreadable: {first}"})
        return st

    def halt(self, reason: str, by_emergency_stop: bool = False) -> None:
        """No new orders until re-armed. Persisted in the state file; when the store cannot take it, the halt holds
        in memory for this run and is written as soon as the store allows (``state`` retries, and the strategy's
        ``stop`` tries once more)."""
        self._held_halt = {
            "halted": True,
            "halt_reason": reason,
            "halted_at": now_ms(self.clock),
            "halted_by_emergency_stop": by_emergency_stop,
        }
        if by_emergency_stop:  # unverified until its verdict replaces this: a stop killed midway must not let re-arm pass
            self._held_halt["estop_unverified"] = {UNFINISHED_STOP: f"the emergency stop ({reason}) did not reach its verdict"}
        self.write_halt()
        self.sink.record("halted", reason=reason)
        # an e-stop's halt is what was asked for (its verdict is logged by the stop); any other halt is an error
        (log.warning if by_emergency_stop else log.error)("strategy %s halted: %s", self.name, reason)

    def verdict_reached(self) -> None:
        """An e-stop's verdict is being written: a halt still held in memory (its write refused) must not write its
        "not verified" marker over the verdict when it is written later (a review: re-arm refused after a clean stop)."""
        if self._held_halt is not None:
            self._held_halt.pop("estop_unverified", None)

    def write_halt(self) -> bool:
        """Write the held halt to the state file; False (and it stays held) when the store refuses."""
        held = self._held_halt
        if held is None:
            return True
        try:
            self.state_store.update(**held)
            if self.state_store.fault is not None:  # nothing is written over an unreadable file: the halt stays held
                raise self.state_store.fault
        except OSError as exc:
            first = self._halt_retry_at == 0.0
            self._halt_retry_at = time.monotonic() + HALT_RETRY_S
            if first:
                log.critical(
                    "strategy %s: the halt could not be written (%s); it holds in memory for this run and is written when the store allows",
                    self.name,
                    describe(exc, "state file"),
                )
            return False
        self._held_halt = None
        self._halt_retry_at = 0.0
        return True

    def store_failed(self, where: str, exc: BaseException) -> None:
        """A write to the store failed (disk full, read-only, I/O error): halt, with a critical alert naming the path
        and the error, once per episode (until re-armed). Orders are refused from now on; what was already on the
        exchange goes on being followed in memory (engine/store_guard.py)."""
        self.store_failures += 1
        what = describe(exc, where)
        if self.store_error is not None and self.state.halted:
            log.debug("store write failed again: %s", what)
            return
        self.store_error = what
        reason = f"the store cannot be written ({what}); no order is sent until it can and the strategy is re-armed"
        self.halt(reason)
        self._alert(f"{self.name}: {reason}")

    def check_store(self) -> None:
        """Raise ``StoreUnwritable`` (naming the path and the error) unless the store takes writes: the events the
        trace held since a failure are written, the intent journal is reopened and written."""
        try:
            self.sink.check()
        except OSError as exc:
            raise StoreUnwritable(describe(exc, self.sink.where)) from exc
        try:
            self.journal.check()
        except OSError as exc:
            raise StoreUnwritable(describe(exc, "intent journal")) from exc

    def persisted_unreadable(self, exc: CorruptStateError) -> None:
        """A file the engine acts on cannot be read back: no order goes out from now on (``state`` answers halted;
        nothing is written over the file), said once per file with a critical alert naming it, never a traceback
        per event. The state file's halt lifts when it reads again (``planar state reset`` leaves it halted, so
        trading resumes only by ``planar rearm``); the others' by ``rearm()`` once they read again."""
        if exc.path in self.unreadable:  # (the state store reports its file once per episode)
            return
        if exc.path != self.state_store.url:
            self.unreadable[exc.path] = exc
        msg = f"{self.name}: no order goes out: {exc}"
        log.critical(msg)
        with contextlib.suppress(Exception):  # the trace may be what failed
            self.sink.record("halted", reason=msg)
        self._alert(msg)

    def found_unreadable(self, damaged: Iterable[CorruptStateError]) -> None:
        """Files the composition root found unreadable while building (a damaged trace manifest): the strategy may
        stop (an e-stop may cancel), it may not start."""
        self.unreadable.update((exc.path, exc) for exc in damaged)

    def check_persisted(self) -> None:
        """Every file the engine acts on reads back, or ``CorruptStateError`` (one line: the file, what is wrong,
        the remedy). ``Strategy.start`` calls it before anything else: nothing trades on a state it could not read."""
        for exc in self.unreadable.values():
            raise exc
        self.state_store.read()
        self.ids.check()
        self.journal.unresolved()
        files = getattr(self.sink, "files", None)
        load_manifest = getattr(files, "load_manifest", None)
        if callable(load_manifest):
            load_manifest()  # a damaged manifest is recovered from its copy (a warning), or this raises

    def rearm(self, **baselines: object) -> None:
        """Explicitly allow trading again after a halt; ``baselines``: the breakers' (``peak_equity``,
        ``day_start_equity``, ``day``) written with it. Refused while the store cannot be written
        (``StoreUnwritable``: ``check_store``) or a file the engine acts on cannot be read (``CorruptStateError``)."""
        self.check_store()
        pending, self.unreadable = self.unreadable, {}
        try:
            self.check_persisted()
        except CorruptStateError:
            self.unreadable = pending
            raise
        try:
            self.state_store.update(
                halted=False, halt_reason=None, halted_at=None, halted_by_emergency_stop=False, breaker_tripped=None, **baselines
            )
        except CorruptStateError:
            raise
        except OSError as exc:
            raise StoreUnwritable(describe(exc, "state file")) from exc
        self._held_halt = None
        self._halt_retry_at = 0.0
        self.store_error = None
        self.sink.record("rearmed", equity=baselines.get("peak_equity"))
