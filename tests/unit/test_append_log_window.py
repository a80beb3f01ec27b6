"""The committer's group window (append_log.py): the appends made while it waits share one sync, and nobody who
waits for the disk (``sync()``, ``close()``) waits for the window. A window of a minute makes any wait for it
show as a join that does not end."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from planar_core.append_log import AppendLog

LONG_WINDOW = 60.0
RECORD = b'{"kind":"intent","cid":"x"}\n'


def counting_fdatasync(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[str]:
    """The fdatasync calls on ``path`` (another test's committer thread may still sync its own files)."""
    calls: list[str] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(path):
            calls.append(str(path))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return calls


def finishes(fn: object) -> bool:
    """Whether ``fn()`` returns well within the window (run in a thread so a wait for the window cannot hang the test)."""
    t = threading.Thread(target=fn, daemon=True)  # type: ignore[arg-type]
    t.start()
    t.join(LONG_WINDOW / 4)
    return not t.is_alive()


def test_appends_within_the_window_share_one_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_fdatasync(monkeypatch, tmp_path / "j.jsonl")
    log = AppendLog(str(tmp_path / "j.jsonl"), window=LONG_WINDOW)
    for _ in range(50):
        log.append(RECORD)
    assert calls == []  # still within the window: nothing synced yet, the appends were not held up by it
    assert finishes(log.sync)  # a caller waiting for the disk does not wait for the window
    assert len(calls) == 1  # the fifty appends, one fdatasync
    assert finishes(log.close)
    assert (tmp_path / "j.jsonl").read_bytes() == RECORD * 50


def test_close_does_not_wait_for_the_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_fdatasync(monkeypatch, tmp_path / "j.jsonl")
    log = AppendLog(str(tmp_path / "j.jsonl"), window=LONG_WINDOW)
    log.append(RECORD)
    assert finishes(log.close)
    assert len(calls) == 1  # what was appended is synced before the file is closed
