"""Repeated log lines, counted instead of printed: a risk refusal repeated 93 times in 60 s was 93 warnings.

The first occurrence of a key is logged; later ones within ``window_s`` of the last logged line are counted; the
next one after the window is logged with how many were held back. Every occurrence still goes to the trace; only
the log is thinned."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass
class Repeats:
    window_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _last: dict[Hashable, float] = field(default_factory=dict)
    _held: dict[Hashable, int] = field(default_factory=dict)

    def admit(self, key: Hashable) -> int | None:
        """None: hold this line back (counted). Otherwise log it, noting the returned number held back before it."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.window_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


def held_note(held: int, window_s: float) -> str:
    return f" ({held} more like it in the last {window_s:g} s, not logged)" if held else ""
