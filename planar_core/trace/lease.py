"""The single-writer lease of a trace on object storage, where there is no file lock.

``writer.lease`` holds ``{"owner", "expires"}``. It is taken with a create-if-absent PUT (If-None-Match), renewed
and taken over with a compare-and-swap PUT (If-Match on the version read), so two processes can never both believe
they hold it: of two conditional writes against one version, one fails. The holder renews it from a daemon thread
every third of its time to live; a holder that dies stops renewing and the lease expires, after which another
writer may take it over. A holder that was paused past expiry and lost the lease finds out on its next write
(``hold()`` renews through the same compare-and-swap, which fails) and refuses to write.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from .files import ConflictError, TraceFiles, TraceLockedError

LEASE = "writer.lease"


class Lease:
    def __init__(self, files: TraceFiles, ttl: float = 30.0) -> None:
        self.files, self.ttl = files, ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._etag: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        self._pending_expiry = time.time() + self.ttl
        return json.dumps({"owner": self.owner, "expires": self._pending_expiry}).encode()

    def acquire(self) -> None:
        """Take the lease, or raise TraceLockedError naming the live holder."""
        with self._lock:
            raw, etag = self.files.read_versioned(LEASE)
            if raw is not None:
                held = json.loads(raw)
                if float(held.get("expires", 0)) > time.time():
                    raise TraceLockedError(
                        f"trace {self.files.root} is being written by {held.get('owner')} (lease until "
                        f"{time.strftime('%H:%M:%S', time.gmtime(float(held['expires'])))} UTC); one writer per trace"
                    )
            try:  # absent: create it; expired: take it over from exactly the version we read
                self._etag = self.files.write_if(LEASE, self._body(), etag)
            except ConflictError:
                raise TraceLockedError(f"trace {self.files.root}: another writer took the lease first; one writer per trace") from None
            self._expires = self._pending_expiry
        self._thread = threading.Thread(target=self._renew_loop, name="trace-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        with self._lock:
            try:
                self._etag = self.files.write_if(LEASE, self._body(), self._etag)
            except ConflictError:
                self._expires = 0.0
                raise TraceLockedError(
                    f"trace {self.files.root}: this writer lost its lease to another process; it stops writing"
                ) from None
            self._expires = self._pending_expiry

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._renew()
            except TraceLockedError:
                return
            except OSError:  # the store is unreachable for now: hold() refuses writes once the lease runs out
                continue

    def hold(self) -> None:
        """Before a write: the lease must still be ours with time to spare (renewed here if it is running out)."""
        if self._expires - time.time() < self.ttl / 3:
            self._renew()

    def stop_renewing(self) -> None:
        """Stop the renewal thread (release, and tests that play a paused writer)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.ttl)

    def release(self) -> None:
        """Give the lease up (expire it now, through the same compare-and-swap) so the next writer need not wait."""
        self.stop_renewing()
        with self._lock:
            if self._expires <= 0:
                return
            try:
                self.files.write_if(LEASE, json.dumps({"owner": None, "expires": 0}).encode(), self._etag)
            except (ConflictError, OSError):
                pass  # lost or unreachable: it expires by itself
            self._expires = 0.0
