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

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..append_log import AppendLog
from ..model.types import Json
from ..state import reset_remedy
from ..storage import CorruptStateError, Store, is_remote, json_object

log = logging.getLogger("planar.exchange")
BLOCK = 1000
LABEL_CHARS = 12
TAG_CHARS = 6
MAX_LEN = 36  # Binance's newClientOrderId limit
RUN_MARKS = ("start", "stop")  # the journal's records of a run's start (with the machine's boot id) and of a clean stop
_START = re.compile(rb'"kind"\s*:\s*"start"')
BOOT_ID = "/proc/sys/kernel/random/boot_id"  # Linux: a random id drawn at each boot of the kernel


def boot_id() -> str | None:
    """This machine's boot id (None where the OS does not give one: every unclean stop is then taken as a power
    loss). Two processes see the same id exactly when no reboot came between them."""
    try:
        with open(BOOT_ID) as fh:
            return fh.read().strip() or None
    except OSError:
        return None


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
        self.url = self.store.url(self.NAME)
        self.remedy = reset_remedy(self.store.root.rstrip("/").rsplit("/", 1)[-1])
        # unreadable: this process may still cancel and look orders up (ownership needs no epoch), never issue an id
        self.fault: CorruptStateError | None = None
        try:
            data = self.check()
        except CorruptStateError as exc:
            self.fault, data = exc, {"epoch": "?"}
        self.epoch = str(data.get("epoch") or self.fresh_epoch())
        self.name = name
        self.identity = identity_of(name)
        self.prefix = f"{self.identity}-{self.epoch}"  # every id this store issues starts with it (then "-<seq>")
        self._legacy = f"{name[:18]}-{self.epoch}-"  # the earlier format, this store's epoch only
        self._next = self._limit = 0
        self.run_start = 0  # the first seq this process may issue: earlier ones belong to earlier runs (or processes)
        if self.fault is None:
            self._reserve()
            self.run_start = self._next

    @staticmethod
    def fresh_epoch() -> str:
        """A new store's epoch: the time in ms, base 36 (7 characters), so no two stores share one by chance."""
        return _base36(int(time.time() * 1000) % 36**7)

    def check(self) -> dict[str, object]:
        """The sequence document as it is now, or ``CorruptStateError``: a sequence that cannot be read must never
        be restarted from zero or under a new epoch (ids already on the exchange would be issued again, or this
        strategy's own older orders would look like another engine's), so nothing trades until it is repaired."""
        fault = getattr(self, "fault", None)
        if fault is not None:  # unreadable when this allocator was made: it has no epoch, it never issues
            raise fault
        raw = self.store.read(self.NAME)
        return self._valid(json_object(raw, self.url, self.remedy)) if raw is not None else {}

    def _valid(self, doc: dict[str, object]) -> dict[str, object]:
        epoch, start = doc.get("epoch"), doc.get("next_block", 0)
        if epoch is not None and not (isinstance(epoch, str) and epoch.isalnum() and epoch == epoch.lower()):
            raise CorruptStateError(self.url, f"unexpected content: epoch {epoch!r} is not a base-36 word", self.remedy)
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise CorruptStateError(self.url, f"unexpected content: next_block {start!r} is not a count", self.remedy)
        if epoch is None and start:
            raise CorruptStateError(self.url, f"unexpected content: blocks up to {start} were reserved under no epoch", self.remedy)
        return doc

    def _reserve(self) -> None:
        """The next free block, from the document as it is now (another process may have reserved since)."""

        def take(doc: dict[str, object]) -> int:
            start = self._valid(doc).get("next_block", 0)
            assert isinstance(start, int)
            doc["epoch"] = doc.get("epoch") or self.epoch
            doc["next_block"] = start + self.block
            return start

        self._next = self.store.update_json(self.NAME, take, self.remedy)
        self._limit = self._next + self.block

    def next(self) -> str:
        """The next id; ``CorruptStateError`` when the sequence cannot be read (nothing is issued on a guess)."""
        with self._lock:
            if self.fault is not None:
                raise self.fault
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

    def of_the_last_block(self, client_order_id: str | None) -> bool:
        """Issued by this store from the block reserved just before this process's first one: where the run
        before it was issuing when it stopped."""
        parsed = parse(client_order_id)
        return parsed is not None and self.issued_here(client_order_id) and self.run_start - self.block <= parsed.seq < self.run_start

    def of_this_run(self, client_order_id: str | None) -> bool:
        """Issued by this process (its blocks start at ``run_start``): not an earlier run's."""
        parsed = parse(client_order_id)
        return parsed is not None and self.issued_here(client_order_id) and parsed.seq >= self.run_start

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
        self.remedy = reset_remedy(Path(strategy_dir).name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        # no run of this strategy wrote here before (no journal, or an empty one): there is no previous run to vouch for
        self.new = not self.path.exists() or self.path.stat().st_size == 0
        self.clean_stop = self._last_kind() == "stop"
        self.complete = self.clean_stop or self._crashed_in_this_boot()
        self._log = AppendLog(str(self.path), fsync=fsync)
        self._start_due = True  # "start" goes on disk (synced) before this run's first intent
        self._settled = False  # this run reconciled the journal (compact) or wrote to it: its close marks "stop"
        self._reconciled = False  # this run compacted the journal after its start-up reconciliation

    def _crashed_in_this_boot(self) -> bool:
        """The previous run did not stop cleanly, but its last "start" record was written in this boot of the
        machine by a run that had everything before it accounted for (``vouched``): every record it wrote (here and
        in the trace) reached the kernel before anything was sent, and a process's death does not take from the
        kernel what it has (append_log.py). Only a restart of the machine (a power loss, a kernel crash) can have
        lost its unsynced tail: then, or when this cannot be told (no boot id, an older journal, a run that started
        on another machine sharing the store, a process that wrote after a power loss without reconciling), False."""
        now = boot_id()
        if now is None:
            return False
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        starts = list(_START.finditer(data))
        if not starts:
            return False
        at = starts[-1].start()
        end = data.find(b"\n", at)
        try:
            rec = json.loads(data[data.rfind(b"\n", 0, at) + 1 : end if end >= 0 else len(data)])
        except ValueError:
            return False
        return isinstance(rec, dict) and rec.get("kind") == "start" and rec.get("boot") == now and rec.get("vouched") is True

    def _last_kind(self) -> str | None:
        """The kind of the journal's last whole record (``stop``: the previous run closed it cleanly)."""
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - 4096))
                tail = fh.read()
        except FileNotFoundError:
            return None
        lines = tail.split(b"\n")
        last = lines[-2] if len(lines) >= 2 else b""  # after the last newline: a torn write, not a record
        try:
            rec = json.loads(last)
        except ValueError:
            return None
        return str(rec.get("kind")) if isinstance(rec, dict) else None

    def _append(self, record: Json) -> None:
        """One whole line or nothing (append_log.py): durable against a process crash on return, synced to disk by
        the log's committer; the error names the journal's path."""
        self._log.append((json.dumps(record, separators=(",", ":")) + "\n").encode())
        self._settled = True

    def intent(self, client_order_id: str, **fields: object) -> None:
        """Written before the request is sent: a restart can always ask about it. A process crash cannot lose it
        (the kernel has it when this returns); its sync to disk is group-committed off the event loop, and a power
        loss before that sync is covered by the start-up sync, which lists the orders of every asset after a stop
        that was not clean in another boot of the machine (``complete``; docs/trace.md, "What is guaranteed")."""
        if self._start_due:  # synced first: a power loss after it never leaves the last run's "stop" as the last word
            self._append(start_record(self.complete))  # not vouched: a process writing without reconciling (an e-stop)
            self._log.sync()
            self._start_due = False
        self._append({"t": int(time.time() * 1000), "kind": "intent", "cid": client_order_id, **fields})

    def outcome(self, client_order_id: str, status: str, order_id: str | None = None, reason: str | None = None) -> None:
        """The intent's fate as the exchange told it: accepted (with its id), rejected, or failed (never booked)."""
        record: Json = {"t": int(time.time() * 1000), "kind": "outcome", "cid": client_order_id, "status": status, "id": order_id}
        if reason:
            record["reason"] = reason
        self._append(record)

    def unresolved(self) -> dict[str, Json]:
        """Intents that never got an outcome (the process died in between). A torn last line (a write cut short:
        no newline after it) is skipped, as it always was; any other line that is not a record is
        ``CorruptStateError`` naming the file and the line: an intent on it could not be asked about, and the
        start-up compaction would have dropped it for good."""
        pending: dict[str, Json] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return pending
        lines = data.split(b"\n")
        torn = lines.pop()  # after the last newline: b"" unless the last write was cut short
        for n, line in enumerate(lines, 1):
            if line.strip():
                _apply(pending, self._line(line, f"{self.path} line {n}"))
        if torn.strip():
            try:
                _apply(pending, journal_record(torn, f"{self.path} line {len(lines) + 1}", self.remedy))
            except CorruptStateError as exc:
                log.warning("%s (a torn last write, skipped)", exc.path + ": " + exc.what)
        return pending

    def _line(self, line: bytes, where: str) -> Json:
        """One line's record. A write cut short by a crash and followed by the next run's first append leaves
        ``<part of a record><a whole record>`` on one line: the part is skipped (a cut intent was never sent: the
        request goes out only after its intent is on disk), the record kept; anything else is corruption."""
        try:
            return journal_record(line, where, self.remedy)
        except CorruptStateError:
            at = line.rfind(b'{"t":')
            if at > 0:
                with contextlib.suppress(CorruptStateError):
                    rec = journal_record(line[at:], where, self.remedy)
                    log.warning("%s: %d bytes of a write cut short before a whole record, skipped", where, at)
                    return rec
            raise

    def salvage(self) -> tuple[str | None, list[str]]:
        """``planar state reset``: keep the damaged journal beside it (``intents.jsonl.corrupt-<time>``) and rewrite it
        with the unresolved intents of the lines that read; returns the copy's name and, per line that did not,
        ``line N`` (with the client order id when one can still be made out)."""
        data = self.path.read_bytes() if self.path.is_file() else b""
        pending: dict[str, Json] = {}
        bad = []
        for n, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                _apply(pending, self._line(line, f"line {n}"))
            except CorruptStateError:
                cid = re.search(rb'"cid":"([^"]+)"', line)
                bad.append(f"line {n}" + (f" (client order id {cid.group(1).decode(errors='replace')})" if cid else ""))
        store = Store(str(self.path.parent))
        copy = store.set_aside(self.path.name)
        self._rewrite(pending)
        return copy, bad

    def _rewrite(self, keep: dict[str, Json], start: bool = False) -> None:
        """The journal replaced by ``keep`` (and this run's "start" record last, when ``start``), durably."""
        records = [*keep.values(), start_record(True)] if start else list(keep.values())  # after reconciliation
        data = "".join(json.dumps(rec, separators=(",", ":")) + "\n" for rec in records)
        self._log.abandon()  # replaced below; what it held is in ``keep`` or resolved
        Store(str(self.path.parent)).write_atomic(self.path.name, data.encode())  # temp, fsync, rename, fsync the directory
        self._log = AppendLog(str(self.path), fsync=self.fsync)
        if start:
            self._start_due = False

    def compact(self) -> int:
        """Rewrite the journal with only the unresolved intents and this run's "start" record (called at start-up,
        after reconciliation, so it does not grow forever: from here on, a crash of this run in this boot of the
        machine is one whose records are all in the file); returns how many lines were dropped."""
        keep = self.unresolved()
        lines = self.path.read_bytes().count(b"\n") if self.path.is_file() else 0
        self._rewrite(keep, start=True)
        self._settled = self._reconciled = True
        return lines - len(keep)

    def check(self) -> None:
        """After a failed write, before trading again: reopen the file (the volume may have been remounted, or
        replaced, under the old descriptor) and write a probe file beside it; raises OSError if the store refuses."""
        old, self._log = self._log, AppendLog(str(self.path), fsync=self.fsync)
        old.abandon()
        probe = Store(str(self.path.parent))
        probe.write_atomic("intents.probe", b"probe\n")
        probe.remove("intents.probe")

    def close(self) -> None:
        """Mark a clean stop (the next start-up may trust the journal to name every order this run sent), sync,
        close. Only a run that reconciled the journal at its start or wrote to it marks it: a start refused before
        that leaves the file as it was; and only if the previous run is vouched for (``complete``) or this one
        reconciled it: a process that only wrote (an e-stop) after a power loss leaves the next start-up to list
        everything. Idempotent: a second close must not close the descriptor number the process has given to another
        file since (a strategy stopped twice closed the next engine's trace lock that way). A write that fails
        here leaves the stop unmarked: the next start-up then lists every asset's orders."""
        if self._log.closed:
            return
        if not self._settled:  # a run that never reconciled nor wrote (a start refused): the file is left as it was
            self._log.close()
            return
        if not (self.complete or self._reconciled):
            # a process that wrote here without reconciling (an e-stop closing positions) after a run the journal cannot
            # vouch for (a power loss): its "stop" would vouch for that run too, and the next start-up would trust it
            log.info("%s: the previous run is not reconciled yet; no clean stop recorded", self.path)
            self._log.close()
            return
        try:
            self._append({"t": int(time.time() * 1000), "kind": "stop"})
            self._log.close()
        except OSError as exc:
            log.warning("%s: the clean stop could not be recorded (%s)", self.path, exc)
            self._log.abandon()


class ObjectJournal:
    """``IntentJournal`` on object storage, shared by every worker: one object per record (an append is not
    something an object store does), ``journal/<cid>.intent.json`` written (one PUT, durable) before the request
    and ``journal/<cid>.outcome.json`` after it. A restart on any worker lists the intents without an outcome."""

    clean_stop = False  # not recorded on object stores: every start-up lists every asset's orders
    complete = False

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
        """Intents without an outcome object; one that cannot be read is ``CorruptStateError`` naming it."""
        names = set(self.store.list("journal"))
        pending: dict[str, Json] = {}
        remedy = reset_remedy(self.store.root.rstrip("/").rsplit("/", 1)[-1])
        for name in sorted(names):
            if name.endswith(".intent.json") and name.replace(".intent.json", ".outcome.json") not in names:
                raw = self.store.read(f"journal/{name}")
                if raw is not None:
                    _apply(pending, journal_record(raw, self.store.url(f"journal/{name}"), remedy))
        return pending

    def salvage(self) -> tuple[str | None, list[str]]:
        """``planar state reset``: each record object that cannot be read is kept as ``<name>.corrupt-<time>`` and
        removed; returns where they went and their client order ids (the object's name says it)."""
        bad = []
        for name in sorted(self.store.list("journal")):
            if not name.endswith((".intent.json", ".outcome.json")):
                continue
            raw = self.store.read(f"journal/{name}")
            try:
                journal_record(raw or b"", name, "")
            except CorruptStateError:
                self.store.set_aside(f"journal/{name}")
                self.store.remove(f"journal/{name}")
                bad.append(f"{name} (client order id {name.rsplit('.', 2)[0]})")
        return (self.store.url("journal") if bad else None), bad

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


def start_record(vouched: bool) -> Json:
    """A run's first record: when, in which boot of the machine, and whether everything before it is accounted for
    (``vouched``: the run found the journal complete, or reconciled it; ``IntentJournal.complete``)."""
    return {"t": int(time.time() * 1000), "kind": "start", "boot": boot_id(), "pid": os.getpid(), "vouched": vouched}


def journal_record(raw: bytes, where: str, remedy: str) -> Json:
    """One journal record (``{"kind": "intent" | "outcome", "cid": ..., ...}``), or ``CorruptStateError``."""
    rec = json_object(raw, where, remedy)
    if rec.get("kind") in RUN_MARKS:
        return rec
    if rec.get("kind") not in ("intent", "outcome") or not isinstance(rec.get("cid"), str):
        raise CorruptStateError(where, f"unexpected content: not an intent or outcome record ({len(raw)} bytes)", remedy)
    return rec


def _apply(pending: dict[str, Json], rec: Json) -> None:
    if rec["kind"] in RUN_MARKS:
        return
    cid = str(rec["cid"])
    if rec["kind"] == "intent":
        pending[cid] = rec
    else:
        pending.pop(cid, None)


def intent_journal(local_dir: Path, shared_root: str, fsync: bool = True) -> IntentJournal | ObjectJournal:
    """The strategy's journal: a local append-only file, or objects beside the shared state when the store root
    is on object storage (so a restart on another worker still knows the intents in doubt)."""
    return ObjectJournal(shared_root) if is_remote(shared_root) else IntentJournal(local_dir, fsync=fsync)


def sequence_hints(raw: bytes | None) -> tuple[str | None, int | None]:
    """What a damaged sequence document still says (its epoch, its next block), read loosely: the evidence
    ``planar state reset`` starts from."""
    text = (raw or b"").decode(errors="replace")
    epoch = re.search(r'"epoch"\s*:\s*"([0-9a-z]+)"', text)
    block = re.search(r'"next_block"\s*:\s*(\d+)\s*[,}\n]', text)
    return (epoch.group(1) if epoch else None), (int(block.group(1)) if block else None)


def restore_sequence(strategy_dir: str, epoch: str, next_block: int) -> str | None:
    """``planar state reset``: replace the sequence document (the damaged one kept beside it) with ``epoch`` and
    ``next_block``, in one compare-and-swap against whatever is there; returns the copy's name."""
    store = Store(strategy_dir)
    copy = store.set_aside(ClientOrderIds.NAME)
    doc = json.dumps({"epoch": epoch, "next_block": next_block}, indent=1, sort_keys=True).encode()
    store.update(ClientOrderIds.NAME, lambda old: (doc, None))
    return copy
