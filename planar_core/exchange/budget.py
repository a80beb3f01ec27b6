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
BUCKETS = 64
LOCK_PATIENCE = 2.0  # seconds a busy lock is waited for before the request goes on without the shared budget
READ_SHARE = 0.8  # reads may use this share of a weight window's headroom; the rest is kept for orders and cancels
DEFAULT_MAX_WAIT = 10.0  # longest wait for budget of a request made outside ExchangeClient.call
_HEAD = struct.Struct("<4sIdII")  # magic, version, resume_at (epoch s), windows, learned (exchangeInfo seen)
# span, bucket width, slack (ms), newest bucket, exchange limit (-1 unknown, 0 none), last observed count and when
_WIN = struct.Struct("<qqqqqqq")
_COUNTS = struct.Struct(f"<{BUCKETS}q")
_FULL = struct.Struct(f"<7q{BUCKETS}q")  # a window and its buckets, read in one unpack
_FIRST, _Q, _QQ = struct.Struct("<q"), struct.Struct("<q"), struct.Struct("<qq")
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


@dataclass(slots=True)
class View:
    """One window as read at one instant (its ring moved to that instant)."""

    offset: int
    span: int
    width: int
    slack: int
    head: int
    limit: int
    counts: tuple[int, ...] | list[int]
    first: int  # the oldest bucket that may still hold a request the exchange counts
    used: int


@dataclass
class Budget:
    """One budget (weight of one IP and API, or new orders of one account and API). Every method expects the slab
    locked (``Budgets.try_lock``); each reads a window in one unpack and writes only what changes."""

    key: str
    slab: Slab
    defaults: dict[int, int] = field(default_factory=dict)  # span -> the exchange's published limit, until it says
    _layout: tuple[int, dict[int, int]] = field(default_factory=lambda: (-1, {}))  # (windows, span -> offset) as last read

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

    def windows(self, now_ms: int) -> dict[int, int]:
        """span -> offset of every window (the published ones created on first use). Windows are only ever added, so
        the count of windows tells whether the layout read last is still the file's."""
        n = self._head()[1]
        if n != self._layout[0]:
            spans = {_FIRST.unpack_from(self.slab.buf, _HEAD.size + i * _WIN_SIZE)[0]: _HEAD.size + i * _WIN_SIZE for i in range(n)}
            self._layout = (n, spans)
            created = [span for span in self.defaults if span not in spans and self._create(span, now_ms) is not None]
            if created:
                return self.windows(now_ms)
        return self._layout[1]

    def _create(self, span_ms: int, now_ms: int) -> int | None:
        """A new window (if there is room), seeded from the others: a shorter window never holds more than a longer."""
        n = self._head()[1]
        if n >= MAX_WINDOWS:
            return None
        others = [self.read(_HEAD.size + i * _WIN_SIZE, now_ms) for i in range(n)]
        longer = [v.used for v in others if v.span >= span_ms]
        seed = min(longer) if longer else max((v.used for v in others), default=0)
        o = _HEAD.size + n * _WIN_SIZE
        width, slack = geometry(span_ms)
        limit = UNLIMITED if self._head()[2] else UNKNOWN  # once the exchange said its intervals, others are free
        _FULL.pack_into(self.slab.buf, o, span_ms, width, slack, now_ms // width, limit, 0, 0, *([0] * BUCKETS))
        self._set_head(n=n + 1)
        if seed:
            self._add(self.read(o, now_ms), seed)
        return o

    def _window(self, span_ms: int, now_ms: int) -> int | None:
        o = self.windows(now_ms).get(span_ms)
        if o is None and self._create(span_ms, now_ms) is not None:
            o = self.windows(now_ms).get(span_ms)
        return o

    def read(self, o: int, now_ms: int) -> View:
        """The window at ``o`` at ``now_ms``: its ring moved there (buckets it enters cleared), what it holds now."""
        w = _FULL.unpack_from(self.slab.buf, o)
        span, width, slack, head, limit = w[:5]
        counts: tuple[int, ...] | list[int] = w[7:]
        bucket = now_ms // width
        if bucket > head:  # (a clock that went back counts into the newest bucket)
            cleared = list(counts)
            for b in range(head + 1, min(bucket, head + BUCKETS) + 1):
                i = b % BUCKETS
                if cleared[i]:
                    cleared[i] = 0
                    _Q.pack_into(self.slab.buf, o + _WIN.size + 8 * i, 0)
            _Q.pack_into(self.slab.buf, o + 24, bucket)
            counts, head = cleared, bucket
        first = max(head - BUCKETS + 1, (now_ms - span - slack) // width)
        lo, hi = first % BUCKETS, head % BUCKETS
        used = sum(counts[lo : hi + 1]) if lo <= hi else sum(counts[lo:]) + sum(counts[: hi + 1])
        return View(o, span, width, slack, head, limit, counts, first, used)

    def used(self, o: int, now_ms: int) -> int:
        return self.read(o, now_ms).used

    def covers(self, now: float, counts: dict[int, int]) -> bool:
        """Whether the forecast already holds at least what the exchange counted, read without the lock and without
        writing (the common case after an answer: nothing to correct, no lock taken). A read torn by a concurrent
        writer can only under-count, which sends the caller to the locked path."""
        n, spans = self._layout
        if n != self._head()[1]:
            return False
        now_ms = int(now * 1000)
        for span, value in counts.items():
            o = spans.get(span)
            if o is None:
                return False
            w = _FULL.unpack_from(self.slab.buf, o)
            span_, width, slack, head = w[:4]
            last = min(head, now_ms // width)  # buckets past the head are empty, whatever the file still holds there
            first = max(head - BUCKETS + 1, (now_ms - span_ - slack) // width)
            if first > last:
                return value <= 0
            lo, hi = first % BUCKETS + 7, last % BUCKETS + 7
            used = sum(w[lo : hi + 1]) if lo <= hi else sum(w[lo:]) + sum(w[7 : hi + 1])
            if value > used:
                return False
        return True

    def _add(self, v: View, amount: int) -> None:
        i = v.head % BUCKETS
        _Q.pack_into(self.slab.buf, v.offset + _WIN.size + 8 * i, v.counts[i] + amount)

    @staticmethod
    def _wait_ms(v: View, now_ms: int, amount: int, cap: int) -> int:
        """0 if ``amount`` fits under ``cap`` now, else the milliseconds until enough of the window has expired."""
        used = v.used
        if used + amount <= cap or used == 0:  # a request heavier than the whole cap goes alone
            return 0
        for b in range(v.first, v.head + 1):
            used -= v.counts[b % BUCKETS]
            if used + amount <= cap or used == 0:
                return max(1, (b + 1) * v.width + v.span + v.slack - now_ms)
        return v.span + v.slack

    def limit(self, v: View, cap: dict[int, int] | None = None) -> int | None:
        """The window's limit for this process: the exchange's (learned, else its published default), within ``cap``."""
        out = self.defaults.get(v.span) if v.limit == UNKNOWN else None if v.limit == UNLIMITED else v.limit
        if cap and v.span in cap:
            out = cap[v.span] if out is None else min(out, cap[v.span])
        return out

    # ---------------------------------------------------------------- operations (slab locked)
    def resume_at(self) -> float:
        return self._head()[0]

    def hold_until(self, until: float) -> None:
        if until > self.resume_at():
            self._set_head(resume_at=until)

    def check(self, now: float, amount: int, share: float, cap: dict[int, int] | None) -> tuple[float, list[View]]:
        """(seconds before ``amount`` fits under ``share`` of every window's limit (0.0: now), the windows read)."""
        now_ms = int(now * 1000)
        views = [self.read(o, now_ms) for o in self.windows(now_ms).values()]
        longest = max(0.0, self.resume_at() - now)
        for v in views:
            limit = self.limit(v, cap)
            if limit is not None:
                longest = max(longest, self._wait_ms(v, now_ms, amount, max(1, int(limit * share))) / 1000)
        return longest, views

    def commit(self, views: list[View], amount: int) -> None:
        for v in views:
            self._add(v, amount)

    def observe(self, now: float, counts: dict[int, int]) -> None:
        """The exchange's count per interval: where it exceeds the forecast, the forecast is raised to it."""
        now_ms = int(now * 1000)
        for span, value in counts.items():
            o = self._window(span, now_ms)
            if o is None:
                continue
            v = self.read(o, now_ms)
            if value > v.used:
                self._add(v, value - v.used)
            _QQ.pack_into(self.slab.buf, o + 40, value, now_ms)

    def learn(self, now: float, limits: dict[int, int]) -> None:
        """The exchange's published limits (exchangeInfo): its intervals are limited, any other is not."""
        if not limits:
            return
        now_ms = int(now * 1000)
        for span in limits:
            self._window(span, now_ms)
        for span, o in self.windows(now_ms).items():
            _Q.pack_into(self.slab.buf, o + 32, limits.get(span, UNLIMITED))
        self._set_head(learned=1)

    def snapshot(self, now: float) -> dict[str, object]:
        now_ms = int(now * 1000)
        windows = {}
        for span, o in self.windows(now_ms).items():
            v = self.read(o, now_ms)
            observed, at = _QQ.unpack_from(self.slab.buf, o + 40)
            windows[span] = {"used": v.used, "limit": self.limit(v), "observed": observed, "observed_ms": at}
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
    _caps: tuple[tuple[int, tuple[int, ...]] | None, dict[int, int]] = field(default_factory=lambda: (None, {}))

    def _cap(self, b: Budget, now_ms: int) -> dict[int, int] | None:
        if self.weight_cap_per_minute is None:
            return None
        spans = tuple(b.windows(now_ms))
        if self._caps[0] != (self.weight_cap_per_minute, spans):
            self._caps = ((self.weight_cap_per_minute, spans), {s: max(1, self.weight_cap_per_minute * s // 60_000) for s in spans})
        return self._caps[1]

    def _try(self, demand: Demand, now: float) -> float | None:
        """0: reserved; > 0: seconds to wait; None: a lock is busy."""
        weight = self.registry.get(demand.weight_key, demand.weight_defaults)
        orders = self.registry.get(demand.orders_key, demand.orders_defaults) if demand.orders_key and demand.orders else None
        group = [weight] if orders is None else [weight, orders]
        if not self.registry.try_lock(group):
            return None
        try:
            share = self.headroom * (1.0 if demand.trade else READ_SHARE)
            wait, views = weight.check(now, demand.weight, share, self._cap(weight, int(now * 1000)))
            if orders is not None:
                wait_orders, order_views = orders.check(now, demand.orders, 1.0, None)
                wait = max(wait, wait_orders)
            if wait > 0:
                return wait
            weight.commit(views, demand.weight)
            if orders is not None:
                orders.commit(order_views, demand.orders)
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
        """The exchange's counts from an answer: where they exceed the host's forecast, the forecast is raised."""
        if counts:
            b = self.registry.get(key, defaults)
            now = self.clock()
            if not b.covers(now, counts):
                self.registry.run_locked([b], lambda: b.observe(now, counts))

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
