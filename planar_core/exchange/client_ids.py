"""Client order ids and the order-intent journal.

Ids are ``<name>-<epoch>-<seq>``: ``epoch`` is fixed when the store is created
(so a wiped store cannot reissue an id the exchange already has) and ``seq``
comes from blocks reserved durably before use (one fsync per block, not per
order), so ids never repeat across restarts or crashes. A block is reserved under a file lock, re-reading the
file, so processes sharing a strategy's store (the engine, an e-stop closing positions) never get the same block.

Every intent is appended to ``intents.jsonl`` and flushed to the OS before the
request is sent; after a crash, start-up reconciliation reads the intents that
have no outcome and looks them up on the exchange.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from ..model.json import integer
from ..model.types import Json
from ..storage import Store, is_remote

BLOCK = 1000


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


class ClientOrderIds:
    NAME = "client_order_seq.json"

    def __init__(self, strategy_dir: Path | str, name: str, block: int = BLOCK) -> None:
        """``strategy_dir``: a local path or an object-store URL (the sequence is shared by every worker)."""
        self.store = Store(str(strategy_dir))
        self.block = block
        self._lock = threading.Lock()
        raw = self.store.read(self.NAME)
        data = json.loads(raw) if raw else {}
        self.epoch = data.get("epoch") or _base36(int(time.time() * 1000) % 36**7)
        self.prefix = f"{name[:18]}-{self.epoch}"
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
        return f"{self.prefix}-{seq}"

    def owns(self, client_order_id: str | None) -> bool:
        return bool(client_order_id) and str(client_order_id).startswith(self.prefix.rsplit("-", 1)[0] + "-")


class IntentJournal:
    """Append-only JSON lines: ``intent`` before a request, ``outcome`` after it."""

    def __init__(self, strategy_dir: Path, fsync: bool = True) -> None:
        self.path = Path(strategy_dir) / "intents.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _append(self, record: Json, sync: bool = False) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        if sync and self.fsync:
            os.fsync(self._fd)

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

    def close(self) -> None:
        pass


def intent_journal(local_dir: Path, shared_root: str, fsync: bool = True) -> IntentJournal | ObjectJournal:
    """The strategy's journal: a local append-only file, or objects beside the shared state when the store root
    is on object storage (so a restart on another worker still knows the intents in doubt)."""
    return ObjectJournal(shared_root) if is_remote(shared_root) else IntentJournal(local_dir, fsync=fsync)
