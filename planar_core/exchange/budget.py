"""Request budgets shared by every process on a host: request weight per IP, new orders per account.

Binance counts request weight per IP (each API separately: spot ``/api``, ``/fapi``, ``/sapi``) and new orders per
account, whatever the number of processes. A per-process limiter lets N engines on one host spend N times the
budget, then a 429, then a 418 ban for the whole host. Here every process draws from one budget per key:

* weight: ``<api host:port>/<api>`` (every process on a host shares its IP, so the API base URL names the budget);
* orders: ``<account>/<api>`` (the account's name as ``config_account`` spells it, never the key).

Mechanism: one small file per budget in a host-wide directory (``$PLANAR_BUDGET_DIR``, default
``/tmp/planar-budgets-<uid>``), mapped into memory. A reservation takes the file's ``flock`` (the kernel releases it
when its holder dies, so a process killed holding it never wedges the others), reads and updates a few integers, and
lets go: no await while held, a few microseconds (``bench/budget_bench.py``). A lock held for more than
``LOCK_PATIENCE`` seconds (a stopped holder) is given up on: the request goes on paced only by this process.

Each budget keeps up to ``MAX_WINDOWS`` windows (one per interval the exchange limits: 60 s weight; 10 s and a day
of spot orders ...), each a ring of ``BUCKETS`` time buckets. A window is sliding (a reservation counts until its
interval plus a little slack has passed since it was made), which is never looser than the exchange's fixed,
clock-aligned intervals; the slack covers the time between reserving and the exchange counting.

The exchange is the truth, the reservations are the forecast: after each answer, the used weight / order counts
it reports raise the estimate where the exchange saw more than was reserved (another host on the same account,
costs higher than declared); a 429/418 with ``Retry-After`` received by any process holds every process of the
host until then (``resume_at``).
"""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import logging
import math
import mmap
import os
import re
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("planar.exchange")

MAGIC, VERSION = b"PLBG", 1
MAX_WINDOWS = 4
BUCKETS = 128
LOCK_PATIENCE = 2.0  # seconds a busy lock is waited for before the request goes on without the shared budget
READ_SHARE = 0.8  # reads may use this share of a weight window's headroom; the rest is kept for orders and cancels
DEFAULT_MAX_WAIT = 10.0  # longest wait for budget of a request made outside ExchangeClient.call
_HEAD = struct.Struct("<4sIdII")  # magic, version, resume_at (epoch s), windows, learned (exchangeInfo seen)
# span, bucket width, slack (ms), newest bucket, exchange limit (-1 unknown, 0 none), last observed count and when
_WIN = struct.Struct("<qqqqqqq")
_COUNTS = struct.Struct(f"<{BUCKETS}q")
_WIN_SIZE = _WIN.size + _COUNTS.size
SIZE = _HEAD.size + MAX_WINDOWS * _WIN_SIZE
UNKNOWN, UNLIMITED = -1, 0

# the caller's deadline (monotonic seconds) for the request being paced: ExchangeClient.call sets it, so that a
# wait for budget never eats the time the request itself needs
SEND_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("planar_send_deadline", default=None)


class BudgetHeld(Exception):
    """The request was not sent: its budget stays spent (or held after a 429/418) longer than it may wait."""

    def __init__(self, key: str, retry_after: float, why: str) -> None:
        super().__init__(f"request not sent: the host's budget {key} {why}; {retry_after:.1f}s to wait")
        self.key, self.retry_after = key, retry_after


def default_directory() -> Path:
    return Path(os.environ.get("PLANAR_BUDGET_DIR") or f"/tmp/planar-budgets-{os.getuid()}")


def geometry(span_ms: int) -> tuple[int, int]:
    """(bucket width, slack) of a window: ``BUCKETS - 4`` buckets cover the span plus the slack."""
    slack = min(2000, max(250, span_ms // 40))
    return max(1, math.ceil((span_ms + slack) / (BUCKETS - 4))), slack


class Slab:
    """The bytes of one budget: a memory-mapped file under an flock (shared), or process memory (local)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd = -1
        self._pid = -1
        self.buf: mmap.mmap | bytearray = bytearray(SIZE)
        if path is None:
            _init(self.buf)
        else:
            self._open()

    def _open(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            buf = mmap.mmap(fd, SIZE)
            if _HEAD.unpack_from(buf)[:2] != (MAGIC, VERSION):
                _init(buf)  # a new file, or one written by another version or torn: start afresh
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._fd, self.buf, self._pid = fd, buf, os.getpid()

    def try_lock(self) -> bool:
        if self.path is None:
            return True
        if self._pid != os.getpid():  # a forked child shares the parent's open file, hence its lock: reopen
            self._open()
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._thread_lock.release()
            return False
        return True

    def unlock(self) -> None:
        if self.path is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


def _init(buf: mmap.mmap | bytearray) -> None:
    buf[:SIZE] = bytes(SIZE)
    _HEAD.pack_into(buf, 0, MAGIC, VERSION, 0.0, 0, 0)


@dataclass
class Budget:
    """One budget (weight of one IP and API, or new orders of one account and API). Every method but the async
    ones expects the slab locked (``Budgets.locked``)."""

    key: str
    slab: Slab
    defaults: dict[int, int] = field(default_factory=dict)  # span -> the exchange's published limit, until it says

    # ---------------------------------------------------------------- layout
    def _head(self) -> tuple[float, int, int]:
        _, _, resume_at, n, learned = _HEAD.unpack_from(self.slab.buf)
        return resume_at, min(n, MAX_WINDOWS), learned

    def _set_head(self, resume_at: float | None = None, n: int | None = None, learned: int | None = None) -> None:
        old = self._head()
        _HEAD.pack_into(
            self.slab.buf,
            0,
            MAGIC,
            VERSION,
            old[0] if resume_at is None else resume_at,
            old[1] if n is None else n,
            old[2] if learned is None else learned,
        )

    def _offsets(self) -> list[int]:
        return [_HEAD.size + i * _WIN_SIZE for i in range(self._head()[1])]

    def _window(self, span_ms: int, now_ms: int, create: bool = True) -> int | None:
        """The offset of the window of ``span_ms`` (created, seeded from the others, if missing and there is room)."""
        offsets = self._offsets()
        for o in offsets:
            if _WIN.unpack_from(self.slab.buf, o)[0] == span_ms:
                return o
        if not create or len(offsets) >= MAX_WINDOWS:
            return None
        # what the other windows hold bounds the new one: a shorter window never holds more than a longer one
        longer = [self.used(o, now_ms) for o in offsets if _WIN.unpack_from(self.slab.buf, o)[0] >= span_ms]
        seed = min(longer) if longer else max((self.used(o, now_ms) for o in offsets), default=0)
        o = _HEAD.size + len(offsets) * _WIN_SIZE
        width, slack = geometry(span_ms)
        limit = UNLIMITED if self._head()[2] else UNKNOWN  # once the exchange said its intervals, others are free
        _WIN.pack_into(self.slab.buf, o, span_ms, width, slack, now_ms // width, limit, 0, 0)
        _COUNTS.pack_into(self.slab.buf, o + _WIN.size, *([0] * BUCKETS))
        self._set_head(n=len(offsets) + 1)
        if seed:
            self._add(o, now_ms, seed)
        return o

    def _advance(self, o: int, now_ms: int) -> int:
        """Move the ring to ``now_ms`` (clearing the buckets it enters); returns the current bucket."""
        width, head = _WIN.unpack_from(self.slab.buf, o)[1:4:2]
        bucket = now_ms // width
        if bucket <= head:
            return head  # the clock went back: count into the newest bucket
        counts = o + _WIN.size
        for b in range(head + 1, min(bucket, head + BUCKETS) + 1):
            struct.pack_into("<q", self.slab.buf, counts + 8 * (b % BUCKETS), 0)
        struct.pack_into("<q", self.slab.buf, o + 24, bucket)
        return bucket

    def used(self, o: int, now_ms: int) -> int:
        """Reserved (and observed) in the window now: the buckets that may still hold a request the exchange counts."""
        span, width, slack = _WIN.unpack_from(self.slab.buf, o)[:3]
        head = self._advance(o, now_ms)
        first = max(head - BUCKETS + 1, (now_ms - span - slack) // width)
        counts = _COUNTS.unpack_from(self.slab.buf, o + _WIN.size)
        lo, hi = first % BUCKETS, head % BUCKETS
        return sum(counts[lo : hi + 1]) if lo <= hi else sum(counts[lo:]) + sum(counts[: hi + 1])

    def _add(self, o: int, now_ms: int, amount: int) -> None:
        head = self._advance(o, now_ms)
        at = o + _WIN.size + 8 * (head % BUCKETS)
        struct.pack_into("<q", self.slab.buf, at, struct.unpack_from("<q", self.slab.buf, at)[0] + amount)

    def _wait_ms(self, o: int, now_ms: int, amount: int, cap: int) -> int:
        """0 if ``amount`` fits under ``cap`` now, else the milliseconds until enough of the window has expired."""
        used = self.used(o, now_ms)
        if used + amount <= cap or used == 0:  # a request heavier than the whole cap goes alone
            return 0
        span, width, slack, head = _WIN.unpack_from(self.slab.buf, o)[:4]
        counts = _COUNTS.unpack_from(self.slab.buf, o + _WIN.size)
        first = max(head - BUCKETS + 1, (now_ms - span - slack) // width)
        for b in range(first, head + 1):
            used -= counts[b % BUCKETS]
            if used + amount <= cap or used == 0:
                return max(1, (b + 1) * width + span + slack - now_ms)
        return span + slack

    def limit(self, o: int, cap: dict[int, int] | None = None) -> int | None:
        """The window's limit for this process: the exchange's (learned, else its published default), within ``cap``."""
        span, *_, limit, _, _ = _WIN.unpack_from(self.slab.buf, o)
        out = self.defaults.get(span) if limit == UNKNOWN else None if limit == UNLIMITED else limit
        if cap and span in cap:
            out = cap[span] if out is None else min(out, cap[span])
        return out

    # ---------------------------------------------------------------- operations (slab locked)
    def resume_at(self) -> float:
        return self._head()[0]

    def hold_until(self, until: float) -> None:
        if until > self.resume_at():
            self._set_head(resume_at=until)

    def wait(self, now: float, amount: int, share: float, cap: dict[int, int] | None) -> float:
        """Seconds before ``amount`` may be reserved (0: now). ``share`` of each limit is usable."""
        now_ms = int(now * 1000)
        for span in self.defaults:
            self._window(span, now_ms)
        longest = max(0.0, self.resume_at() - now)
        for o in self._offsets():
            limit = self.limit(o, cap)
            if limit is not None:
                longest = max(longest, self._wait_ms(o, now_ms, amount, max(1, int(limit * share))) / 1000)
        return longest

    def take(self, now: float, amount: int) -> None:
        now_ms = int(now * 1000)
        for o in self._offsets():
            self._add(o, now_ms, amount)

    def observe(self, now: float, counts: dict[int, int]) -> None:
        """The exchange's count per interval: where it exceeds the forecast, the forecast is raised to it."""
        now_ms = int(now * 1000)
        for span, value in counts.items():
            o = self._window(span, now_ms)
            if o is None:
                continue
            used = self.used(o, now_ms)
            if value > used:
                self._add(o, now_ms, value - used)
            struct.pack_into("<qq", self.slab.buf, o + 40, value, now_ms)

    def learn(self, now: float, limits: dict[int, int]) -> None:
        """The exchange's published limits (exchangeInfo): its intervals are limited, any other is not."""
        if not limits:
            return
        now_ms = int(now * 1000)
        for span in limits:
            self._window(span, now_ms)
        for o in self._offsets():
            span = _WIN.unpack_from(self.slab.buf, o)[0]
            struct.pack_into("<q", self.slab.buf, o + 32, limits.get(span, UNLIMITED))
        self._set_head(learned=1)

    def snapshot(self, now: float) -> dict[str, object]:
        now_ms = int(now * 1000)
        windows = {}
        for o in self._offsets():
            span, *_, observed, at = _WIN.unpack_from(self.slab.buf, o)
            windows[span] = {"used": self.used(o, now_ms), "limit": self.limit(o), "observed": observed, "observed_ms": at}
        return {"key": self.key, "resume_at": self.resume_at(), "windows": windows}


class Budgets:
    """This process's view of the host's budgets (``directory``), or budgets of its own (``directory`` None)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._budgets: dict[str, Budget] = {}
        self._warned: set[str] = set()

    def get(self, key: str, defaults: dict[int, int]) -> Budget:
        b = self._budgets.get(key)
        if b is None:
            path = None if self.directory is None else self.directory / (re.sub(r"[^A-Za-z0-9.-]+", "_", key) + ".budget")
            b = self._budgets[key] = Budget(key, Slab(path), dict(defaults))
        return b

    def try_lock(self, budgets: list[Budget]) -> bool:
        """Lock every budget (in key order, so two processes never wait on each other crosswise) or none."""
        taken: list[Budget] = []
        for b in sorted(budgets, key=lambda b: b.key):
            if not b.slab.try_lock():
                for t in taken:
                    t.slab.unlock()
                return False
            taken.append(b)
        return True

    def unlock(self, budgets: list[Budget]) -> None:
        for b in budgets:
            b.slab.unlock()

    def run_locked(self, budgets: list[Budget], fn: Callable[[], None]) -> bool:
        """Run ``fn`` under the budgets' locks; False (not run) if a lock is busy: observations may be skipped."""
        for _ in range(50):
            if self.try_lock(budgets):
                try:
                    fn()
                finally:
                    self.unlock(budgets)
                return True
            time.sleep(0.0001)
        return False

    def warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", text)


_HOST: dict[Path, Budgets] = {}
_LOCAL = Budgets(None)


def budgets(shared: bool, directory: Path | None = None) -> Budgets:
    """The process-wide registry: the host's shared budgets under ``directory``, or this process's own."""
    if not shared:
        return _LOCAL
    d = directory or default_directory()
    if d not in _HOST:
        _HOST[d] = Budgets(d)
    return _HOST[d]


@dataclass
class Demand:
    """What one request draws: ``weight`` from a weight budget, ``orders`` new orders from an order budget;
    ``trade`` (placing or cancelling orders) may use the whole headroom, reads only ``READ_SHARE`` of it."""

    weight_key: str
    weight: int
    weight_defaults: dict[int, int]
    orders_key: str | None = None
    orders: int = 0
    orders_defaults: dict[int, int] = field(default_factory=dict)
    trade: bool = False


@dataclass
class Pacer:
    """Reserves each request's weight and order slots before it is sent, and feeds back what the exchange said.

    ``headroom``: share of each weight limit the reservations may use (the rest absorbs what they cannot see: another
    host behind the same IP, websocket connections, a cost the exchange counts higher). ``weight_cap``: this
    process's own cap per interval (the config's ``weight_per_minute``, pro rata), applied within the exchange's."""

    registry: Budgets
    headroom: float = 0.9
    weight_cap_per_minute: int | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    waited: float = 0.0  # total seconds this process waited for budget
    held: int = 0  # requests not sent because the budget stayed spent longer than they could wait

    def _cap(self, b: Budget) -> dict[int, int] | None:
        if self.weight_cap_per_minute is None:
            return None
        spans = {_WIN.unpack_from(b.slab.buf, o)[0] for o in b._offsets()} | set(b.defaults)
        return {s: max(1, self.weight_cap_per_minute * s // 60_000) for s in spans}

    def _try(self, demand: Demand, now: float) -> float | None:
        """0: reserved; > 0: seconds to wait; None: a lock is busy."""
        weight = self.registry.get(demand.weight_key, demand.weight_defaults)
        orders = self.registry.get(demand.orders_key, demand.orders_defaults) if demand.orders_key and demand.orders else None
        group = [weight] if orders is None else [weight, orders]
        if not self.registry.try_lock(group):
            return None
        try:
            share = self.headroom * (1.0 if demand.trade else READ_SHARE)
            wait = weight.wait(now, demand.weight, share, self._cap(weight))
            if orders is not None:
                wait = max(wait, orders.wait(now, demand.orders, 1.0, None))
            if wait > 0:
                return wait
            weight.take(now, demand.weight)
            if orders is not None:
                orders.take(now, demand.orders)
            return 0.0
        finally:
            self.registry.unlock(group)

    async def acquire(self, demand: Demand, max_wait: float | None = None) -> float:
        """Wait until the request may go (returns the seconds waited), or raise BudgetHeld if that would be longer
        than it may wait (``max_wait``; by default half the time left before the caller's deadline, else
        ``DEFAULT_MAX_WAIT``), so that a request is either sent in time or known not to have been sent."""
        if max_wait is None:
            deadline = SEND_DEADLINE.get()
            max_wait = DEFAULT_MAX_WAIT if deadline is None else max(0.0, (deadline - time.monotonic()) / 2)
        waited = 0.0
        busy_since: float | None = None
        while True:
            wait = self._try(demand, self.clock())
            if wait == 0.0:
                self.waited += waited
                return waited
            if wait is None:  # another process holds a lock: it lets go within microseconds unless it is stopped
                busy_since = busy_since if busy_since is not None else time.monotonic()
                if time.monotonic() - busy_since > LOCK_PATIENCE:
                    self.registry.warn_once(demand.weight_key, f"budget {demand.weight_key}: lock busy for {LOCK_PATIENCE}s; pacing alone")
                    return waited
                await self.sleep(0.0005)
                continue
            busy_since = None
            if waited + wait > max_wait:
                self.held += 1
                self.waited += waited
                raise BudgetHeld(
                    demand.weight_key if demand.orders_key is None else f"{demand.weight_key} + {demand.orders_key}", wait, "is spent"
                )
            await self.sleep(wait)
            waited += wait

    def observe(self, key: str, defaults: dict[int, int], counts: dict[int, int]) -> None:
        if counts:
            b = self.registry.get(key, defaults)
            self.registry.run_locked([b], lambda: b.observe(self.clock(), counts))

    def learn(self, key: str, defaults: dict[int, int], limits: dict[int, int]) -> None:
        if limits:
            b = self.registry.get(key, defaults)
            self.registry.run_locked([b], lambda: b.learn(self.clock(), limits))

    def hold(self, key: str, defaults: dict[int, int], seconds: float) -> None:
        """Every process of the host holds this budget's requests for ``seconds`` (a 429/418's Retry-After)."""
        b = self.registry.get(key, defaults)
        until = self.clock() + seconds
        self.registry.run_locked([b], lambda: b.hold_until(until))

    def snapshot(self, key: str, defaults: dict[int, int]) -> dict[str, object]:
        b = self.registry.get(key, defaults)
        out: dict[str, object] = {}
        self.registry.run_locked([b], lambda: out.update(b.snapshot(self.clock())))
        return out
