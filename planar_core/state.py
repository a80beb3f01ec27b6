"""The small persisted state shared by the engine and the flows in other processes.

One JSON document per strategy under the store root, replaced atomically
(write a temp file, fsync, rename), so a reader never sees half a write and a
crash leaves the previous version.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

from .model.types import Json


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


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (the directory entry is data too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateStore:
    """Read-modify-write of a strategy's PersistedState."""

    def __init__(self, strategy_dir: Path) -> None:
        self.path = Path(strategy_dir) / "state.json"
        self._cached: tuple[tuple[int, int, int], PersistedState] | None = None

    def load(self) -> PersistedState:
        """The current state; re-read only when the file changed (another process may write it)."""
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return PersistedState()
        if self._cached is None or self._cached[0] != stamp:
            self._cached = (stamp, PersistedState.model_validate_json(self.path.read_text()))
        return self._cached[1].model_copy()

    def save(self, state: PersistedState) -> None:
        atomic_write_json(self.path, state.model_dump())

    def update(self, **changes: object) -> PersistedState:
        state = self.load().model_copy(update=changes)
        self.save(state)
        return state
