"""One live engine per strategy and exchange account.

An engine takes the lease before it trades and holds it until it stops. A second engine of the same strategy on
the same account (a retry racing a zombie, two workers, a manual run beside a scheduled one) is refused with the
name of the holder, instead of trading beside it.

The lease is an OS lock (``flock``) on ``<store_root>/leases/<account>--<strategy>.lock``: it is released the
instant its process dies, however it dies, so a run left Running by a dead process never blocks the next one and
no time-to-live has to be guessed. The file's text says who holds it (pid, host, flow run, since when), for the
refusal message and for an operator.

With the store root on object storage (workers on several hosts), there is no lock a dead process releases: the
lease is an object, ``<store_root>/leases/<account>--<strategy>.lease``, held with conditional writes and renewed
in the background (``storage.ObjectLease``); a dead holder's lease expires after ``ttl`` seconds.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from ..config import StrategyConfig
from ..storage import ObjectLease, Store, is_remote


class LeaseHeldError(RuntimeError):
    """Another live engine of this strategy and account is running."""


class TwinEngineError(LeaseHeldError):
    """Another live engine of this strategy trades the account from another store root: the exchange holds orders
    that carry this strategy's identity and that this engine did not place (``twins.py``). Retrying cannot help;
    stopping the other engine, or ``--takeover`` once it is gone, does."""


def lease_path(cfg: StrategyConfig, account: str) -> Path:
    return Path(cfg.store_root) / "leases" / f"{account}--{cfg.name}.lock"


def engine_lease(cfg: StrategyConfig, account: str, ttl: float = 30.0) -> Lease | RemoteLease:
    """The lease for this strategy and account: a file lock on a local store root, an object lease on object storage."""
    if is_remote(cfg.store_root):
        return RemoteLease(Store(cfg.store_root), f"leases/{account}--{cfg.name}.lease", ttl)
    return Lease(lease_path(cfg, account))


class RemoteLease:
    """``Lease``'s interface over an object lease."""

    def __init__(self, store: Store, rel: str, ttl: float) -> None:
        self.store, self.rel, self.ttl = store, rel, ttl
        self._lease: ObjectLease | None = None

    @property
    def held(self) -> bool:
        return self._lease is not None and self._lease.held

    def acquire(self, run_id: str | None = None) -> None:
        if self.held:
            return
        lease = ObjectLease(self.store, self.rel, self.ttl, LeaseHeldError, run_id=run_id)
        lease.acquire()
        self._lease = lease

    def release(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None


class Lease:
    """Held from ``acquire()`` until ``release()`` (or the process's death)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        """The holder's own words, on one line (only shown, never parsed: the flock is the lease, so a damaged
        file blocks nothing)."""
        try:
            return " ".join(self.path.read_text(errors="replace").split())[:300] or "another process"
        except FileNotFoundError:
            return "another process"

    def acquire(self, run_id: str | None = None) -> None:
        """Take the lease or raise ``LeaseHeldError`` naming its holder; never waits."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LeaseHeldError(f"another live engine holds the lease {self.path.name}: {self.holder()}") from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "flow_run": run_id,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def is_free(self) -> bool:
        """True when nobody holds the lease (probed without keeping it)."""
        if self._fd is not None:
            return False
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)  # closing drops a lock taken by the probe
        return True
