"""Small documents under the store root, on a local path or an object store (any fsspec URL), with the two
write primitives everything shared needs: an atomic replace, and a compare-and-swap.

Local roots: a replace is temp file + fsync + rename (+ directory fsync), and a compare-and-swap is a
read-modify-write under an ``flock``. Object stores with conditional writes (S3 and S3-compatible ones): a replace
is one PUT (atomic by nature), and a compare-and-swap is a PUT with If-Match on the version read (If-None-Match
when creating), retried from a fresh read when another process wrote first.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import fsspec

T = TypeVar("T")
log = logging.getLogger("planar.storage")


class ConflictError(RuntimeError):
    """A conditional write on object storage lost: another process wrote the object first."""


def naming(exc: OSError, path: str) -> OSError | None:
    """``exc`` again with ``path`` named, when the call that raised it named none (``os.write``, ``fsync``, a
    library's internal file): a full disk is otherwise "[Errno 28] No space left on device" with no hint of which
    disk. The same subclass (``OSError(errno, ...)`` picks it from the errno). None when ``exc`` names a path
    already or carries no errno: raise it as it is."""
    if exc.filename is not None or exc.errno is None:
        return None
    return OSError(exc.errno, exc.strerror, path)


class CorruptStateError(OSError):
    """A persisted file (a strategy's state, its client-order-id sequence, its intent journal, a trace manifest, a
    lease object) exists but cannot be read back as what this program wrote: truncated, not JSON, wrong fields.

    Its message is one line: the file (full path or URL), what is wrong, and the remedy. It is an ``OSError``
    (like ``gzip.BadGzipFile``): "the store cannot give back what was written" is a storage failure, and the
    engine's answer to one (refuse to start; halt with a critical alert while running) is the same as to a disk
    that refuses writes."""

    def __init__(self, path: str, what: str, remedy: str) -> None:
        super().__init__(errno.EBADMSG, what, path)
        self.path, self.what, self.remedy = path, what, remedy

    def __str__(self) -> str:
        return f"{self.path}: {self.what}; {self.remedy}"

    def __reduce__(self) -> tuple[type["CorruptStateError"], tuple[str, str, str]]:  # pickled by Prefect's results
        return (type(self), (self.path, self.what, self.remedy))


def why_unreadable(raw: bytes, exc: BaseException) -> str:
    """What is wrong with a document that failed to parse, in a few words on one line."""
    size = f"{len(raw)} bytes"
    if not raw.strip():
        return f"empty ({size})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({size})"
    if isinstance(exc, json.JSONDecodeError):
        cut = " (truncated?)" if raw.rstrip()[-1:] not in (b"}", b"]") else ""
        return f"not valid JSON{cut}: {exc.msg} (line {exc.lineno}, column {exc.colno}; {size})"
    errors = getattr(exc, "errors", None)  # pydantic's ValidationError
    if callable(errors):
        found = errors()
        first = found[0] if found else {}
        where = ".".join(str(x) for x in first.get("loc", ())) or "document"
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return f"unexpected content: {where}: {first.get('msg', exc)}{more}"
    return f"unexpected content: {' '.join(str(exc).split())}"


def json_object(raw: bytes, where: str, remedy: str) -> dict[str, object]:
    """A persisted JSON object, or ``CorruptStateError`` naming ``where`` (the file's path or URL)."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptStateError(where, why_unreadable(raw, exc), remedy) from None
    if not isinstance(doc, dict):
        raise CorruptStateError(where, f"unexpected content: a JSON {type(doc).__name__}, not an object ({len(raw)} bytes)", remedy)
    return doc


def stamp_now() -> str:
    """A UTC time for the names of files set aside (``state.json.corrupt-20260101T120000Z``)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def is_precondition_failure(exc: BaseException) -> bool:
    """s3fs reports a failed If-None-Match as FileExistsError and a failed If-Match as an OSError (412)."""
    text = str(exc).lower()
    return isinstance(exc, FileExistsError) or "pre-condition" in text or "precondition" in text


def is_remote(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


class Store:
    """A directory of small documents: ``root`` is a local path or an fsspec URL."""

    def __init__(self, root: str, fsync: bool = True) -> None:
        self.root = str(root).rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.root)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.local = bool(set(protocols) & {"file", "local"})
        # object stores whose conditional writes (If-None-Match / If-Match on PUT) are used here; elsewhere
        # (memory://, plain HTTP) a compare-and-swap is only as good as the local lock
        self.conditional = bool(set(protocols) & {"s3", "s3a"})
        self.fsync = fsync

    def url(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def makedirs(self, rel: str = "") -> None:
        self.fs.makedirs(f"{self.path}/{rel}".rstrip("/"), exist_ok=True)

    def read(self, rel: str) -> bytes | None:
        target = f"{self.path}/{rel}"
        if not self.local:
            self.fs.invalidate_cache(target)  # another process may have written it since
        try:
            data: bytes = self.fs.cat_file(target)
            return data
        except FileNotFoundError:
            return None

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Replace a document: readers see the old version or the new one, never part of one."""
        target = f"{self.path}/{rel}"
        if self.local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.{uuid.uuid4().hex}.tmp"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    if self.fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException as exc:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                if isinstance(exc, OSError) and (named := naming(exc, target)) is not None:
                    raise named from exc
                raise
            if self.fsync:  # the rename itself is durable only once the directory is
                fd = os.open(os.path.dirname(target), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        else:  # one PUT is atomic on object stores
            self.fs.pipe_file(target, data)

    def remove(self, rel: str, recursive: bool = False) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(f"{self.path}/{rel}", recursive=recursive)

    def list(self, rel: str) -> list[str]:
        """Names directly under ``rel`` (empty when there is nothing)."""
        target = f"{self.path}/{rel}"
        if not self.local:
            self.fs.invalidate_cache(target)
        try:
            return sorted(str(n).rsplit("/", 1)[-1] for n in self.fs.ls(target, detail=False))
        except FileNotFoundError:
            return []

    def age(self, rel: str) -> float | None:
        """Seconds since a document was last written (None when the store does not say)."""
        try:
            info = self.fs.info(f"{self.path}/{rel}")
        except FileNotFoundError:
            return None
        modified = info.get("LastModified") or info.get("mtime") or info.get("created")
        if hasattr(modified, "timestamp"):
            modified = modified.timestamp()
        return time.time() - float(modified) if isinstance(modified, (int, float)) else None

    # ------------------------------------------------------------- compare-and-swap
    def read_versioned(self, rel: str) -> tuple[bytes | None, str | None]:
        """A document and its version (ETag). The version is read first: if the document changes in between,
        the data is newer than the version and a conditional write against it fails, which is the safe way round."""
        target = f"{self.path}/{rel}"
        self.fs.invalidate_cache(target)
        try:
            etag = str(self.fs.info(target).get("ETag") or "") or None
            return self.fs.cat_file(target), etag
        except FileNotFoundError:
            return None, None

    def write_if(self, rel: str, data: bytes, etag: str | None) -> str | None:
        """Write only if the document is still the version ``etag`` names (None: only if it does not exist), in one
        conditional PUT. Returns the new version; raises ConflictError when another process got there first."""
        target = f"{self.path}/{rel}"
        try:
            out = self.fs.pipe_file(target, data, mode="create") if etag is None else self.fs.pipe_file(target, data, IfMatch=etag)
        except OSError as exc:
            if is_precondition_failure(exc):
                raise ConflictError(f"{self.root}/{rel} was written by another process") from exc
            raise
        return str(out.get("ETag")) if isinstance(out, dict) and out.get("ETag") else None

    @contextlib.contextmanager
    def lock(self, rel: str) -> Iterator[None]:
        """An exclusive local lock (``<rel>.lock``) for read-modify-write on a local root; nothing elsewhere."""
        if not self.local:
            yield
            return
        path = f"{self.path}/{rel}.lock"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def update(self, rel: str, change: Callable[[bytes | None], tuple[bytes, T]], attempts: int = 100) -> T:
        """Read-modify-write of one document that cannot lose another process's update: ``change(old)`` returns
        the new bytes and a result. Local: under the lock. Object storage: a conditional PUT against the version
        read, retried from a fresh read when another process wrote in between."""
        if self.local or not self.conditional:
            with self.lock(rel):
                data, result = change(self.read(rel))
                self.write_atomic(rel, data)
                return result
        for attempt in range(attempts):
            old, etag = self.read_versioned(rel)
            data, result = change(old)
            try:
                self.write_if(rel, data, etag)
                return result
            except ConflictError:
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # back off; the other writer is done in one PUT
        raise ConflictError(f"{self.root}/{rel}: {attempts} conflicting updates in a row")

    def set_aside(self, rel: str, label: str = "corrupt") -> str | None:
        """Copy a document to ``<rel>.<label>-<UTC time>`` beside it (before it is replaced or repaired); returns
        the copy's name, None when there was nothing to copy."""
        raw = self.read(rel)
        if raw is None:
            return None
        name = f"{rel}.{label}-{stamp_now()}"
        self.write_atomic(name, raw)
        return name

    def update_json(self, rel: str, change: Callable[[dict[str, object]], T], remedy: str = "") -> T:
        """``update`` for a JSON object: ``change`` edits it in place and returns a result. A document that is not
        a JSON object raises ``CorruptStateError`` (with ``remedy``) and is left as it is."""

        def edit(old: bytes | None) -> tuple[bytes, T]:
            doc = json_object(old, self.url(rel), remedy or "it was left as it is") if old else {}
            result = change(doc)
            return json.dumps(doc, indent=1, sort_keys=True).encode(), result

        return self.update(rel, edit)


class ObjectLease:
    """A lease held as an object (``rel``) on a store with conditional writes: ``{"owner", "expires"}``, taken with
    a create-if-absent PUT, renewed and taken over with a compare-and-swap PUT (If-Match on the version read), so
    two processes can never both believe they hold it: of two conditional writes against one version, one fails.

    The holder renews it from a daemon thread every third of its time to live; a holder that dies stops renewing
    and the lease expires, after which another process may take it over. A holder that was paused past expiry and
    lost the lease finds out at its next ``hold()`` (a renewal through the same compare-and-swap, which fails) and
    must stop. ``error`` is the exception raised when the lease is someone else's."""

    def __init__(self, files: Store, rel: str, ttl: float = 30.0, error: type[Exception] = RuntimeError, run_id: str | None = None) -> None:
        self.files, self.rel, self.ttl, self.error = files, rel, ttl, error
        self.run_id = run_id
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._etag: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._expires > time.time()

    def _body(self) -> bytes:
        self._pending_expiry = time.time() + self.ttl
        return json.dumps({"owner": self.owner, "run_id": self.run_id, "expires": self._pending_expiry}).encode()

    def acquire(self) -> None:
        """Take the lease, or raise ``error`` naming the live holder."""
        with self._lock:
            raw, etag = self.files.read_versioned(self.rel)
            if raw is not None:
                held = self._holder(raw)
                if float(str(held.get("expires", 0))) > time.time():
                    raise self.error(
                        f"{self.files.root}/{self.rel} is held by {held.get('owner')} (flow run {held.get('run_id')}) until "
                        f"{time.strftime('%H:%M:%S', time.gmtime(float(str(held['expires']))))} UTC; one holder at a time"
                    )
            try:  # absent: create it; expired: take it over from exactly the version we read
                self._etag = self.files.write_if(self.rel, self._body(), etag)
            except ConflictError:
                raise self.error(f"{self.files.root}/{self.rel}: another process took the lease first; one holder at a time") from None
            self._expires = self._pending_expiry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease {self.rel}", daemon=True)
        self._thread.start()

    def _holder(self, raw: bytes) -> dict[str, object]:
        """The lease object's content. One that cannot be read says nothing about its holder: it counts as held
        until it has been left unchanged for a whole time to live (a holder whose lease it was finds the object
        changed at its next renewal, within a third of that, and stops), then it is taken over like an expired one."""
        url = self.files.url(self.rel)
        try:
            held = json_object(raw, url, "")
            float(str(held.get("expires", 0)))
            return held
        except (CorruptStateError, ValueError) as exc:
            what = exc.what if isinstance(exc, CorruptStateError) else f"unexpected content: expires is not a number ({len(raw)} bytes)"
        age = self.files.age(self.rel)
        if age is not None and age > self.ttl + 1.0:  # (+1 s: object stores give modification times to the second)
            log.warning("%s: %s; unchanged for %.0f s (> the %.0f s time to live): taken over", url, what, age, self.ttl)
            return {"expires": 0}
        wait = f"in {self.ttl + 1.0 - age:.0f} s" if age is not None else "once removed (its age is not known)"
        raise CorruptStateError(
            url, what, f"it counts as held; it is taken over {wait}, when no holder can still believe it is theirs"
        ) from None

    def _renew(self) -> None:
        with self._lock:
            try:
                self._etag = self.files.write_if(self.rel, self._body(), self._etag)
            except ConflictError:
                self._expires = 0.0
                raise self.error(f"{self.files.root}/{self.rel}: this process lost its lease to another one; it stops") from None
            self._expires = self._pending_expiry

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._renew()
            except self.error:
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
                self.files.write_if(self.rel, json.dumps({"owner": None, "expires": 0}).encode(), self._etag)
            except (ConflictError, OSError):
                pass  # lost or unreachable: it expires by itself
            self._expires = 0.0
