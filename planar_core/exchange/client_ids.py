"""Client order ids and the order-intent journal.

Ids are ``<label>-<tag>-<epoch>-<seq>`` (at most 36 characters, Binance's limit):

* ``label`` is the strategy's name cut to 12 characters, for a person reading the exchange's order list;
* ``tag`` is 6 base-36 characters of a hash of the *whole* name: with the label, the strategy's identity;
* ``epoch`` is fixed when the store is created (so a wiped store cannot reissue an id the exchange already has,
  and an engine of the same strategy on another store root shows up with another epoch);
* ``seq`` (base 36) comes from blocks reserved durably before use (one fsync per block, not per order), so ids
  never repeat across restarts or crashes.

"Mine" is decided by parsing an id into these four parts and comparing the identity exactly (``owns``), never
by a prefix: strategy ``mm`` does not own ``mm-eth``'s ids, and two names that share their first 12
characters differ in their tag. Ids of the earlier format, ``<name[:18]>-<epoch>-<seq>``, are still recognised
when they carry this store's epoch, so open orders placed before an upgrade stay the strategy's own. A block is reserved under a file lock, re-reading the
file, so processes sharing a strategy's store (the engine, an e-stop closing positions) never get the same block.

Every intent is appended to ``intents.jsonl`` and flushed to the OS before the
request is sent; after a crash, start-up reconciliation reads the intents that
have no outcome and looks them up on the exchange.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..model.json import integer
from ..model.types import Json
from ..storage import Store, is_remote

BLOCK = 1000
LABEL_CHARS = 12
TAG_CHARS = 6
MAX_LEN = 36  # Binance's newClientOrderId limit


DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"
BASE36 = frozenset(DIGITS36)


def _base36(n: int) -> str:
    digits = DIGITS36
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def identity_of(name: str) -> str:
    """A strategy's identity as its ids carry it: ``<label>-<tag>``."""
    tag = _base36(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % 36**TAG_CHARS).rjust(TAG_CHARS, "0")
    return f"{name[:LABEL_CHARS]}-{tag}"


@dataclass(frozen=True)
class ParsedId:
    """A client order id of this engine's current format, taken apart."""

    identity: str  # <label>-<tag>
    epoch: str
    seq: int


def parse(client_order_id: str | None) -> ParsedId | None:
    """The parts of an id in the current format, or None (another format, another program's id)."""
    if not client_order_id:
        return None
    parts = str(client_order_id).rsplit("-", 3)
    if len(parts) != 4 or len(parts[1]) != TAG_CHARS or not all(p.isalnum() for p in parts[1:]) or not parts[0]:
        return None
    try:
        seq = int(parts[3], 36)
    except ValueError:
        return None
    return ParsedId(f"{parts[0]}-{parts[1]}", parts[2], seq)


def planar_identity(client_order_id: str | None) -> str | None:
    """The strategy identity (``<label>-<tag>``) of an id this engine issued, whichever strategy it belongs to;
    None for any other id (placed by hand, by another program, or of the earlier format).

    The id must have the current format, and where its label is a whole name (shorter than 12 characters) its tag
    must be that name's hash, so an id someone else happened to shape like ours is not taken for a strategy's."""
    parsed = parse(client_order_id)
    if parsed is None:
        return None
    label, _, tag = parsed.identity.rpartition("-")
    if not set(tag) <= BASE36 or not set(parsed.epoch) <= BASE36 or len(parsed.epoch) > 7:
        return None
    if len(label) < LABEL_CHARS and identity_of(label) != parsed.identity:
        return None
    return parsed.identity


def claimed(ids: ClientOrderIds, client_order_id: str | None, adopt_foreign: bool) -> bool:
    """Whether a strategy takes the order with this client id as its own: its id encodes the strategy's identity
    exactly, or (``adopt_foreign``, the ``adopt`` foreign-order policy) no Planar strategy placed it. Another
    strategy's order is never claimed, whatever the policy."""
    return ids.owns(client_order_id) or (adopt_foreign and planar_identity(client_order_id) is None)


class ClientOrderIds:
    NAME = "client_order_seq.json"

    def __init__(self, strategy_dir: Path | str, name: str, block: int = BLOCK) -> None:
        """``strategy_dir``: a local path or an object-store URL (the sequence is shared by every worker)."""
        self.store = Store(str(strategy_dir))
        self.block = block
        self._lock = threading.Lock()
        raw = self.store.read(self.NAME)
        data = json.loads(raw) if raw else {}
        self.epoch = str(data.get("epoch") or _base36(int(time.time() * 1000) % 36**7))
        self.name = name
        self.identity = identity_of(name)
        self.prefix = f"{self.identity}-{self.epoch}"  # every id this store issues starts with it (then "-<seq>")
        self._legacy = f"{name[:18]}-{self.epoch}-"  # the earlier format, this store's epoch only
        self._next = self._limit = 0
        self._reserve()

    def _reserve(self) -> None:
        """The next free block, from the document as it is now (another process may have reserved since)."""

        def take(doc: dict[str, object]) -> int:
            start = integer(doc.get("next_block", 0))
            doc["epoch"] = doc.get("epoch") or self.epoch
            doc["next_block"] = start + self.block
            return start

        self._next = self.store.update_json(self.NAME, take)
        self._limit = self._next + self.block

    def next(self) -> str:
        with self._lock:
            if self._next >= self._limit:
                self._reserve()
            seq = self._next
            self._next += 1
        cid = f"{self.prefix}-{_base36(seq)}"
        assert len(cid) <= MAX_LEN, cid
        return cid

    def owns(self, client_order_id: str | None) -> bool:
        """True when the id encodes this strategy's identity exactly (whatever store root issued it)."""
        parsed = parse(client_order_id)
        if parsed is not None and parsed.identity == self.identity:
            return True
        return self.is_legacy(client_order_id)

    def issued_here(self, client_order_id: str | None) -> bool:
        """Owned and issued by this store (its epoch): an owned id from another epoch was issued by another store
        root, i.e. another engine of this strategy (or this store before it was wiped)."""
        parsed = parse(client_order_id)
        if parsed is not None and parsed.identity == self.identity:
            return parsed.epoch == self.epoch
        return self.is_legacy(client_order_id)

    def is_legacy(self, client_order_id: str | None) -> bool:
        """An id of the earlier ``<name[:18]>-<epoch>-<seq>`` format issued by this store."""
        cid = str(client_order_id or "")
        return cid.startswith(self._legacy) and cid[len(self._legacy) :].isdigit()


class IntentJournal:
    """Append-only JSON lines: ``intent`` before a request, ``outcome`` after it."""

    def __init__(self, strategy_dir: Path, fsync: bool = True) -> None:
        self.path = Path(strategy_dir) / "intents.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _append(self, record: Json, sync: bool = False) -> None:
        """One whole line or nothing: a write the disk cut short (``ENOSPC`` after part of the line) is cut back off,
        so the next record never lands on the end of a torn one; the error names the journal's path."""
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        start: int | None = None
        try:
            start = os.fstat(self._fd).st_size
            done = 0
            while done < len(data):  # os.write may write part of it and say so (no error until the next call)
                done += os.write(self._fd, data[done:])
            if sync and self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            if start is not None:
                try:
                    os.ftruncate(self._fd, start)
                except OSError:  # a read-only volume wrote nothing to cut
                    pass
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc

    def intent(self, client_order_id: str, **fields: object) -> None:
        """Durable before the request is sent (fsync'd unless disabled): a restart can always ask about it."""
        self._append({"t": int(time.time() * 1000), "kind": "intent", "cid": client_order_id, **fields}, sync=True)

    def outcome(self, client_order_id: str, status: str, order_id: str | None = None, reason: str | None = None) -> None:
        """The intent's fate as the exchange told it: accepted (with its id), rejected, or failed (never booked)."""
        record: Json = {"t": int(time.time() * 1000), "kind": "outcome", "cid": client_order_id, "status": status, "id": order_id}
        if reason:
            record["reason"] = reason
        self._append(record)

    def unresolved(self) -> dict[str, Json]:
        """Intents that never got an outcome (the process died in between)."""
        pending: dict[str, Json] = {}
        if not self.path.is_file():
            return pending
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a torn last line after a crash
                continue
            if rec.get("kind") == "intent":
                pending[rec["cid"]] = rec
            elif rec.get("kind") == "outcome":
                pending.pop(rec["cid"], None)
        return pending

    def compact(self) -> int:
        """Rewrite the journal with only the unresolved intents (called at start-up, after reconciliation,
        so it does not grow forever); returns how many lines were dropped."""
        keep = self.unresolved()
        lines = self.path.read_text().count("\n") if self.path.is_file() else 0
        data = "".join(json.dumps(rec, separators=(",", ":")) + "\n" for rec in keep.values())
        Store(str(self.path.parent)).write_atomic(self.path.name, data.encode())  # temp, fsync, rename, fsync the directory
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return lines - len(keep)

    def check(self) -> None:
        """After a failed write, before trading again: reopen the file (the volume may have been remounted, or
        replaced, under the old descriptor) and write a probe file beside it; raises OSError if the store refuses."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        old, self._fd = self._fd, fd
        try:
            os.close(old)
        except OSError:
            pass
        probe = Store(str(self.path.parent))
        probe.write_atomic("intents.probe", b"probe\n")
        probe.remove("intents.probe")

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass


class ObjectJournal:
    """``IntentJournal`` on object storage, shared by every worker: one object per record (an append is not
    something an object store does), ``journal/<cid>.intent.json`` written (one PUT, durable) before the request
    and ``journal/<cid>.outcome.json`` after it. A restart on any worker lists the intents without an outcome."""

    def __init__(self, strategy_root: str) -> None:
        self.store = Store(strategy_root)

    def intent(self, client_order_id: str, **fields: object) -> None:
        record = {"t": int(time.time() * 1000), "kind": "intent", "cid": client_order_id, **fields}
        self.store.write_atomic(f"journal/{client_order_id}.intent.json", json.dumps(record, separators=(",", ":")).encode())

    def outcome(self, client_order_id: str, status: str, order_id: str | None = None, reason: str | None = None) -> None:
        record: Json = {"t": int(time.time() * 1000), "kind": "outcome", "cid": client_order_id, "status": status, "id": order_id}
        if reason:
            record["reason"] = reason
        self.store.write_atomic(f"journal/{client_order_id}.outcome.json", json.dumps(record, separators=(",", ":")).encode())

    def unresolved(self) -> dict[str, Json]:
        names = set(self.store.list("journal"))
        pending: dict[str, Json] = {}
        for name in sorted(names):
            if name.endswith(".intent.json") and name.replace(".intent.json", ".outcome.json") not in names:
                raw = self.store.read(f"journal/{name}")
                if raw:
                    rec = json.loads(raw)
                    pending[str(rec["cid"])] = rec
        return pending

    def compact(self) -> int:
        """Remove the resolved pairs; returns how many objects went."""
        names = set(self.store.list("journal"))
        gone = 0
        for name in names:
            if name.endswith(".outcome.json") and name.replace(".outcome.json", ".intent.json") in names:
                self.store.remove(f"journal/{name.replace('.outcome.json', '.intent.json')}")
                self.store.remove(f"journal/{name}")
                gone += 2
        return gone

    def check(self) -> None:
        """Raise OSError unless the store takes a write (a probe object, removed again)."""
        self.store.write_atomic("journal/probe.json", b"{}")
        self.store.remove("journal/probe.json")

    def close(self) -> None:
        pass


def intent_journal(local_dir: Path, shared_root: str, fsync: bool = True) -> IntentJournal | ObjectJournal:
    """The strategy's journal: a local append-only file, or objects beside the shared state when the store root
    is on object storage (so a restart on another worker still knows the intents in doubt)."""
    return ObjectJournal(shared_root) if is_remote(shared_root) else IntentJournal(local_dir, fsync=fsync)
