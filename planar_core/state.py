"""The small persisted state shared by the engine and the flows in other processes.

One JSON document per strategy under the store root (a local path or an object-store URL), replaced atomically
(temp file, fsync, rename; or one PUT), so a reader never sees half a write and a crash leaves the previous
version. ``update`` is a compare-and-swap (``storage.Store.update``): the engine and an e-stop flow on another
worker changing it at once cannot lose each other's change.

A document that cannot be read back (truncated, not JSON, fields of the wrong type) is never taken for the
default state: ``read`` raises ``CorruptStateError``, one line naming the file, what is wrong and the remedy
(``planar state reset``). The engine gives a ``StateStore`` an ``on_unreadable`` handler instead: then ``load``
answers a *halted* state (no order goes out on a state nobody could read), ``update`` writes nothing over the
unreadable file, and the handler hears of it once per episode (the engine halts in memory and alerts).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .model.types import Json
from .storage import CorruptStateError, Store, why_unreadable

log = logging.getLogger("planar.state")


UNFINISHED_STOP = "*"  # the key of ``estop_unverified`` an e-stop writes with its halt; its verdict replaces it


class PersistedState(BaseModel):
    """A strategy's persisted state. Frozen: one parsed copy is shared by every reader until the file changes (it is
    read on every price update); a change is ``model_copy(update=...)`` and a save."""

    model_config = ConfigDict(frozen=True)

    halted: bool = False
    halt_reason: str | None = None
    halted_at: int | None = None
    halted_by_emergency_stop: bool = False
    day: str | None = Field(None, description="UTC date the day-start equity belongs to")
    day_start_equity: float | None = None
    peak_equity: float | None = None
    breaker_tripped: str | None = None
    estop_unverified: dict[str, str] = Field(  # UNFINISHED_STOP: a stop that never reached its verdict (killed)
        default_factory=dict, description="what the last e-stop could not confirm; re-arm is refused until the exchange shows it settled"
    )
    exits_due: dict[str, Json] = Field(
        default_factory=dict,
        description="entries that filled and whose exits the exchange has not confirmed yet (client id -> the entry): a restart places what is missing",
    )
    tuned_params: Json = Field(default_factory=dict)
    engine_estop: Json = Field(
        default_factory=dict,
        description="what the running engine did on the last e-stop request it saw (request: the e-stop flow run), for that run's report",
    )


NO_STATE = PersistedState()  # what a strategy without a state file reads (shared: the model is frozen)


def reset_remedy(name: str) -> str:
    """The remedy every unreadable file of a strategy's store names."""
    return (
        f"nothing trades on it; 'planar state reset {name} --reason TEXT' checks the exchange and repairs it (the file is kept beside it)"
    )


def unreadable_state(exc: CorruptStateError) -> PersistedState:
    """What the engine acts on while its state file cannot be read: halted, saying why."""
    return PersistedState(halted=True, halt_reason=f"state file unreadable: {exc}")


class StateStore:
    """Read-modify-write of a strategy's PersistedState, in ``<strategy_dir>/state.json`` (a path or URL)."""

    NAME = "state.json"

    def __init__(self, strategy_dir: Path | str, on_unreadable: Callable[[CorruptStateError], None] | None = None) -> None:
        """``on_unreadable``: see the module's docstring (None: an unreadable file raises everywhere)."""
        self.store = Store(str(strategy_dir))
        self.path = Path(self.store.path) / self.NAME  # local roots only
        self._where = str(self.path)  # os.stat of a str: the state is read on every price update
        self.url = self.store.url(self.NAME)
        self.strategy = self.store.root.rstrip("/").rsplit("/", 1)[-1]
        self.on_unreadable = on_unreadable
        self.fault: CorruptStateError | None = None  # the file is unreadable (guarded stores only)
        self._cached: tuple[tuple[int, int, int], PersistedState | CorruptStateError] | None = None
        # only this object writes the file (a backtest's private store): what it wrote is what a read answers, with
        # no look at the file (read on every price update; a stat is a system call)
        self.exclusive = False
        self._own: PersistedState | None = None

    def parse(self, raw: bytes) -> PersistedState:
        """A state document, or ``CorruptStateError`` naming this file."""
        try:
            return PersistedState.model_validate_json(raw)
        except ValidationError as exc:
            try:  # JSON that does not parse is reported as such, not as pydantic's 'invalid JSON' error list
                json.loads(raw)
            except (ValueError, UnicodeDecodeError) as bad:
                exc_for_text: BaseException = bad
            else:
                exc_for_text = exc
            raise CorruptStateError(self.url, why_unreadable(raw, exc_for_text), reset_remedy(self.strategy)) from None

    def read(self) -> PersistedState:
        """The current state, or ``CorruptStateError``; on a local root re-read only when the file changed (another
        process may write it)."""
        if self._own is not None:
            return self._own
        if not self.store.local:
            raw = self.store.read(self.NAME)
            return self.parse(raw) if raw is not None else PersistedState()
        try:
            st = os.stat(self._where)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return NO_STATE
        if self._cached is None or self._cached[0] != stamp:
            try:
                parsed: PersistedState | CorruptStateError = self.parse(self.path.read_bytes())
            except CorruptStateError as exc:
                parsed = exc
            except FileNotFoundError:
                return PersistedState()
            self._cached = (stamp, parsed)
        got = self._cached[1]
        if isinstance(got, CorruptStateError):
            raise got
        return got

    def load(self) -> PersistedState:
        """``read``; with an ``on_unreadable`` handler, a halted state instead of the error (see the module)."""
        try:
            state = self.read()
        except CorruptStateError as exc:
            if self.on_unreadable is None:
                raise
            self._unreadable(exc)
            return unreadable_state(exc)
        if self.fault is not None:
            log.warning("%s can be read again (%s before)", self.url, self.fault.what)
            self.fault = None
        return state

    def _unreadable(self, exc: CorruptStateError) -> None:
        first = self.fault is None or str(self.fault) != str(exc)
        self.fault = exc
        if first and self.on_unreadable is not None:
            self.on_unreadable(exc)

    def save(self, state: PersistedState) -> None:
        self.store.write_atomic(self.NAME, _encode(state))
        self._own = state if self.exclusive else None

    def update(self, **changes: object) -> PersistedState:
        """Change some fields (a compare-and-swap). An unreadable file is left as it is: ``CorruptStateError``, or
        with a handler, the halted state and nothing written (the change is logged as lost); but lifting the halt
        (``halted=False``: a re-arm) raises even then."""

        def edit(old: bytes | None) -> tuple[bytes, PersistedState]:
            state = (self.parse(old) if old is not None else PersistedState()).model_copy(update=changes)
            return _encode(state), state

        try:
            state = self.store.update(self.NAME, edit)
            self._own = state if self.exclusive else None
            return state
        except CorruptStateError as exc:
            if self.on_unreadable is None or changes.get("halted") is False:  # a halt nobody can read is never lifted
                raise
            self._unreadable(exc)
            log.error("%s: not written (the file is unreadable): %s", self.url, ", ".join(sorted(changes)))
            return unreadable_state(exc)


def _encode(state: PersistedState) -> bytes:
    return json.dumps(state.model_dump(), indent=1, sort_keys=True).encode()
