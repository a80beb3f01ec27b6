"""The small persisted state shared by the engine and the flows in other processes.

One JSON document per strategy under the store root (a local path or an object-store URL), replaced atomically
(temp file, fsync, rename; or one PUT), so a reader never sees half a write and a crash leaves the previous
version. ``update`` is a compare-and-swap (``storage.Store.update``): the engine and an e-stop flow on another
worker changing it at once cannot lose each other's change.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from .model.types import Json
from .storage import Store


class PersistedState(BaseModel):
    halted: bool = False
    halt_reason: str | None = None
    halted_at: int | None = None
    halted_by_emergency_stop: bool = False
    day: str | None = Field(None, description="UTC date the day-start equity belongs to")
    day_start_equity: float | None = None
    peak_equity: float | None = None
    breaker_tripped: str | None = None
    estop_unverified: dict[str, str] = Field(
        default_factory=dict, description="what the last e-stop could not confirm; re-arm is refused until the exchange shows it settled"
    )
    tuned_params: Json = Field(default_factory=dict)


class StateStore:
    """Read-modify-write of a strategy's PersistedState, in ``<strategy_dir>/state.json`` (a path or URL)."""

    NAME = "state.json"

    def __init__(self, strategy_dir: Path | str) -> None:
        self.store = Store(str(strategy_dir))
        self.path = Path(self.store.path) / self.NAME  # local roots only
        self._cached: tuple[tuple[int, int, int], PersistedState] | None = None

    def load(self) -> PersistedState:
        """The current state; on a local root re-read only when the file changed (another process may write it)."""
        if not self.store.local:
            raw = self.store.read(self.NAME)
            return PersistedState.model_validate_json(raw) if raw else PersistedState()
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return PersistedState()
        if self._cached is None or self._cached[0] != stamp:
            self._cached = (stamp, PersistedState.model_validate_json(self.path.read_text()))
        return self._cached[1].model_copy()

    def save(self, state: PersistedState) -> None:
        self.store.write_atomic(self.NAME, _encode(state))

    def update(self, **changes: object) -> PersistedState:
        def edit(old: bytes | None) -> tuple[bytes, PersistedState]:
            state = (PersistedState.model_validate_json(old) if old else PersistedState()).model_copy(update=changes)
            return _encode(state), state

        return self.store.update(self.NAME, edit)


def _encode(state: PersistedState) -> bytes:
    return json.dumps(state.model_dump(), indent=1, sort_keys=True).encode()
