"""The health of one long-running task (a watcher, the risk monitor): what it last saw and how it failed.

Plain data, kept by the engine's supervisor and read by operators, the risk monitor and the orchestrator."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class TaskHealth:
    name: str
    mode: str = "starting"  # websocket | polling | ok | reconnecting | lost ...
    running: bool = False
    restarts: int = 0
    failures: int = 0
    last_error: str | None = None
    last_update: float | None = None  # time.time() of the last useful data
    stalls: int = 0  # times the stream delivered nothing for its stall_after and a fetch was forced
    last_stall: float | None = None

    def seen(self, mode: str | None = None) -> None:
        self.last_update = time.time()
        if mode:
            self.mode = mode

    def stalled(self) -> None:
        self.stalls += 1
        self.last_stall = time.time()

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
