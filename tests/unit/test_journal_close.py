"""Closing the intent journal twice (a strategy stopped twice) must not close a descriptor the process has since
given to another file: that closed the next engine's trace writer lock (EBADF at its own close)."""

from __future__ import annotations

import os
from pathlib import Path

from planar_core.exchange.client_ids import IntentJournal


def test_a_second_close_leaves_a_reused_descriptor_alone(tmp_path: Path) -> None:
    journal = IntentJournal(tmp_path / "a", fsync=False)
    journal.close()
    other = os.open(tmp_path / "other", os.O_WRONLY | os.O_CREAT, 0o600)  # the lowest free number: often the journal's
    try:
        journal.close()
        os.fstat(other)  # still open
        os.write(other, b"x")
    finally:
        os.close(other)
