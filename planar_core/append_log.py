"""A file of whole records, opened once and appended to, made durable by group commit.

Why: the order path used to make each durable record its own file (temp file, write, fsync, rename, directory
fsync) and fsync the intent journal on the event loop, five fsyncs and two ``open()`` per order. Two facts let
it cost almost nothing instead:

* **A process crash (SIGKILL, OOM) loses nothing the kernel has.** Once ``os.write`` returned, the bytes are in
  the page cache and survive the death of the process. So ``append()`` is durable against a process crash
  when it returns, at the price of one ``write`` system call.
* **A power loss or kernel crash loses what was not synced.** A committer thread ``fdatasync``s the file
  whenever something was appended since its last sync, and the event loop never waits on the disk. The
  committer waits ``window`` seconds after the first append it has not synced yet, so one sync covers every
  append of that window (group commit; a ``sync()`` caller or a close cuts the wait short). What a power loss
  can cost is the last window's worth of records; the orders among them are still found (docs/trace.md, "What
  is guaranteed").

The window is there for the event loop, not the disk: each sync cycle needs the interpreter lock on the
committer's side (to wake up, and again when ``fdatasync`` returns), and on a busy machine every such handoff
can hold the loop up while the committer waits for a CPU. An order's two files (the intent journal, the trace's
WAL) are each appended to twice per order; synced each at once, that was four sync cycles per order, which
cost the order path more CPU and latency than the syncs themselves (bench/engine_hot_path.py).

An append is whole or absent: a write the disk cuts short (``ENOSPC`` after part of the record) is cut back
off before the error is raised, so no later record lands on the end of a torn one. An error of the
background sync (``EIO``) is kept and raised by the next ``append()``: the kernel may have dropped those pages,
so the owner must not go on as if they were on disk.
"""

from __future__ import annotations

import os
import threading

SYNC_WINDOW_S = 0.015  # the committer's wait after an unsynced append, for the next appends to share its sync


class AppendLog:
    """Append-only records in one local file; see the module docstring for the durability it gives."""

    def __init__(self, path: str, fsync: bool = True, window: float = SYNC_WINDOW_S) -> None:
        """``fsync``: False leaves syncing to the OS (durable against a process crash, not a power loss).
        ``window``: how long the committer waits after an unsynced append before it syncs (0: at once)."""
        self.path = path
        self.fsync = fsync
        self.window = window
        created = not os.path.exists(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._cond = threading.Condition()
        self._appended = 0  # appends made so far
        self._synced = 0  # of those, the ones a finished fdatasync covers
        self._error: OSError | None = None  # a failed background sync, raised by the next append
        self._dir_due = created  # a new file's name is durable only once its directory is synced
        self._closing = False
        self._busy = False  # the committer has unsynced appends to take care of: further appends need not wake it
        self._waiting = 0  # sync() callers waiting: the committer does not hold its window for them
        self._thread: threading.Thread | None = None

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def append(self, data: bytes) -> None:
        """Write ``data`` whole (or raise ``OSError`` naming the file, with nothing of it left in the file)."""
        if self._error is not None:
            raise self._error
        if self._fd < 0:
            raise OSError(9, "append to a closed log", self.path)
        done = 0
        try:
            while done < len(data):  # os.write may write part of it and say so (no error until the next call)
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:  # a read-only volume wrote nothing to cut
                pass
            raise OSError(exc.errno, exc.strerror, self.path) from exc
        self._size += done
        if not self.fsync:
            return
        with self._cond:
            self._appended += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._commit, name=f"fsync {os.path.basename(self.path)}", daemon=True)
                self._thread.start()
            if not self._busy:  # a busy committer syncs this append too: waking it would cost a handoff for nothing
                self._busy = True
                self._cond.notify()

    def sync(self) -> None:
        """Wait until every append so far is synced (or raise the sync's error)."""
        if not self.fsync or self._thread is None:
            return
        with self._cond:
            target = self._appended
            self._waiting += 1
            try:
                self._cond.notify_all()  # a committer holding its window syncs now
                self._cond.wait_for(lambda: self._synced >= target or self._error is not None)
            finally:
                self._waiting -= 1
        if self._error is not None:
            raise self._error

    def _commit(self) -> None:
        """The committer: one fdatasync for everything appended since the last one, ``window`` seconds after the
        first of them (at once for a ``sync()`` caller or a close)."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._appended > self._synced or self._closing)
                if self._appended <= self._synced:  # closing, nothing left to sync
                    return
                if self.window > 0:
                    self._cond.wait_for(lambda: self._closing or self._waiting > 0, timeout=self.window)
                target = self._appended
            try:
                os.fdatasync(self._fd)
                if self._dir_due:
                    self._dir_due = False
                    fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            except OSError as exc:
                with self._cond:
                    self._error = OSError(exc.errno, exc.strerror, self.path)
                    self._cond.notify_all()
                return
            with self._cond:
                self._synced = target
                self._busy = self._appended > self._synced  # else the next append wakes the committer
                self._cond.notify_all()

    def close(self) -> None:
        """Sync what was appended, stop the committer, close the file. Idempotent; raises the sync's error."""
        if self._fd < 0:
            return
        try:
            self.sync()
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            if self._thread is not None:
                self._thread.join()
            fd, self._fd = self._fd, -1
            try:
                os.close(fd)
            except OSError:
                pass

    def abandon(self) -> None:
        """Close without syncing or raising (after a failure: the owner starts a new file and keeps the records)."""
        with self._cond:
            self._closing = True
            self._appended = self._synced
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
