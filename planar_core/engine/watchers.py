"""Background watchers that keep a strategy's local state fresh.

Each watcher prefers the venue's stream (``Venue.watch_*``) and falls back to
polling at its configured interval: by configuration (``use_websocket=False``)
or automatically for ``fallback_s`` after the websocket fails, with a poll
right after each failure so no update is lost in the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..model.venue import FillReport
from .margin import sync_funding
from .supervisor import TaskHealth
from .updates import find

if TYPE_CHECKING:
    from ..config import WatcherConfig
    from ..model import AssetInstance
    from ..model.venue import OrderReport
    from .strategy import Strategy

log = logging.getLogger("planar.engine.watchers")
SUBSCRIBE_GRACE_S = 1.0
CACHE_READ_DELAY_S = 0.05  # a stream event is followed by a read of the venue's cache this long after it (up to twice)


class CacheReads:
    """The read of the venue's stream cache that follows stream events (``ask()`` after each event), coalesced: at
    most one read waits at a time. A read covers every event before it (it reads the cache as it is then), but the
    messages an event leaves in the cache (those that arrive before the next watch call) may come just after it, so
    an event asked while a read waits gets one more read ``delay`` after that one: each event is followed by a read
    between ``delay`` and ``2 * delay`` after it, as it was by one read exactly ``delay`` after it when each event
    scheduled its own (one read per event: a stream of orders paid a cache read and its parse per message)."""

    def __init__(self, read: Callable[[], None], delay: float = CACHE_READ_DELAY_S) -> None:
        self.read = read
        self.delay = delay
        self._pending: asyncio.TimerHandle | None = None
        self._again = False  # an event came while the read waited: read once more after it

    def ask(self) -> None:
        if self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self.delay, self._run)
        else:
            self._again = True

    def _run(self) -> None:
        self._pending = None
        again, self._again = self._again, False
        try:
            self.read()
        finally:
            if again:
                self._pending = asyncio.get_running_loop().call_later(self.delay, self._run)


async def ws_or_poll(
    health: TaskHealth,
    *,
    use_ws: bool,
    ws_step: Callable[[], Awaitable[None]],
    poll_step: Callable[[], Awaitable[None]],
    interval: float,
    fallback_s: float,
    stop_when: Callable[[], bool] | None = None,
    on_ws_failure: Callable[[], Awaitable[None]] | None = None,
    generation: Callable[[], int] | None = None,
    verify_every: float | None = None,
    stall_after: float | None = None,
    on_stall: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Drive one watcher until ``stop_when()`` is true. ``on_ws_failure`` runs after each websocket failure (the
    private streams use it to replace an expired listen key). ``generation()`` changes when the connections were
    closed on purpose (``health.reconnect``): a websocket failure caused by that is retried at once, not after the
    fallback period. While falling back, polls never sleep past the moment the websocket is tried again.
    ``verify_every``: while the websocket looks healthy, poll anyway this often. A stream can lose an update
    without failing (a message dropped by a full queue, a client-side cache that evicted the order it updates);
    the poll bounds how long such a loss can go unnoticed. ``stall_after``: a websocket that has delivered nothing
    for this long is stalled (Planar's guard): fetch now (``on_stall`` instead of ``poll_step`` when given),
    counted in ``health.stalls``, whatever ``verify_every``.

    A watch that ends *cancelled* failed too: a venue cancels the pending futures of a client it closes (the engine's
    own ``reconnect`` does), and a cancellation taken for the watcher's own would end it for good."""
    ws_blocked_until = 0.0
    next_verify = time.monotonic() + verify_every if verify_every else math.inf
    stall_at = time.monotonic() + stall_after if stall_after else math.inf
    gen = generation() if generation else 0
    pending: asyncio.Task[None] | None = None
    gap_poll_at: float | None = None  # a subscription may miss what happened while it was being set up
    gap_polled = False
    try:
        while not (stop_when and stop_when()):
            if use_ws and time.monotonic() >= ws_blocked_until:
                if pending is None:
                    pending = asyncio.ensure_future(ws_step())
                    health.mode = "websocket"
                    if gap_poll_at is None and not gap_polled:
                        gap_poll_at = time.monotonic() + SUBSCRIBE_GRACE_S
                wait = interval if gap_poll_at is None else max(0.0, min(interval, gap_poll_at - time.monotonic()))
                wait = max(0.0, min(wait, next_verify - time.monotonic(), stall_at - time.monotonic()))
                done, _ = await asyncio.wait({pending}, timeout=wait)
                if time.monotonic() >= stall_at:
                    stall_at = time.monotonic() + (stall_after or math.inf)
                    health.stalled()
                    log.info("%s: nothing from the websocket for %.0fs; fetching", health.name, stall_after)
                    await _poll(health, on_stall or poll_step, None)
                if gap_poll_at is not None and time.monotonic() >= gap_poll_at:
                    gap_poll_at, gap_polled = None, True  # once per subscription
                    await _poll(health, poll_step, None)
                if time.monotonic() >= next_verify:
                    next_verify = time.monotonic() + (verify_every or math.inf)
                    await _poll(health, poll_step, None)
                if not done:
                    continue
                task, pending = pending, None
                try:
                    if task.cancelled():  # its client was closed under it (our own loop is not being cancelled here)
                        raise WatchClosed("the websocket was closed while watching")
                    task.result()
                    health.seen("websocket")
                    stall_at = time.monotonic() + stall_after if stall_after else math.inf
                except Exception as exc:
                    health.failed(exc)
                    if generation is not None and generation() != gen:  # our own reconnect closed it: resubscribe now
                        gen = generation()
                        await _poll(health, poll_step, None)  # what happened while it was closed
                        gap_poll_at, gap_polled = None, False  # and once the new subscription is up
                        continue
                    health.mode = "polling"
                    ws_blocked_until = time.monotonic() + fallback_s
                    gap_poll_at, gap_polled = None, False
                    log.warning("%s: websocket failed (%s); polling for %.0fs", health.name, health.last_error, fallback_s)
                    if on_ws_failure is not None:
                        with contextlib.suppress(Exception):
                            await on_ws_failure()
                    await _poll(health, poll_step, "polling")
                continue
            await _poll(health, poll_step, "polling")
            await asyncio.sleep(max(0.0, min(interval, ws_blocked_until - time.monotonic())) if use_ws else interval)
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


class WatchClosed(ConnectionError):
    """A watch the venue cancelled because its websocket was closed."""


async def _poll(health: TaskHealth, poll_step: Callable[[], Awaitable[None]], mode: str | None) -> None:
    try:
        await poll_step()
        health.seen(mode)
    except Exception as exc:
        health.failed(exc)
        log.warning("%s: poll failed: %s", health.name, health.last_error)


def _fallback(interval: float) -> float:
    """How long a failed websocket is left alone (polling meanwhile) before it is tried again."""
    return min(10.0, max(5.0, 3 * interval))


def _account_stream(
    s: "Strategy", cfg: WatcherConfig, ws_step: Callable[[], Awaitable[None]], poll_step: Callable[[], Awaitable[None]]
) -> Callable[[TaskHealth], Awaitable[None]]:
    """A watcher of the account's private stream (balances, positions): websocket or polling, a listen key
    replaced when it expired, resubscribed after the engine's own reconnects, verified by a poll now and then.
    A stalled stream is the whole user stream gone quiet: balances and positions are both read (one read)."""

    async def stalled() -> None:
        s.freshness.request_refetch(force=True)

    async def body(health: TaskHealth) -> None:
        await ws_or_poll(
            health,
            use_ws=cfg.use_websocket,
            ws_step=ws_step,
            poll_step=poll_step,
            interval=cfg.interval,
            fallback_s=_fallback(cfg.interval),
            stop_when=lambda: not s.running,
            on_ws_failure=s.venue.check_user_stream,
            generation=lambda: s.ws_generation,
            verify_every=cfg.verify_interval,
            stall_after=cfg.stall_after,
            on_stall=stalled,
        )

    return body


def apply_cached_balance(s: "Strategy") -> None:
    """Apply the balance the venue holds from the user stream (its cache keeps applying messages that arrive
    while no watch is waiting, and resolves nobody); only what is newer than what is held is taken."""
    latest = s.venue.cached_balance(s.config.market_type)
    if latest is not None:
        s.apply_balance(latest)


def apply_cached_positions(s: "Strategy") -> None:
    """The positions the venue holds from the user stream (as ``apply_cached_balance``: each asset takes only a
    report newer than the one it holds, so a cache that outlived a gap in the stream takes nothing back)."""
    cached = [p for p in s.venue.cached_positions() if p.symbol in s.universe]
    if cached:
        s.apply_positions(cached)


def apply_cached_account(s: "Strategy") -> None:
    """What the venue's stream cache holds of the account (balances; positions on margin accounts)."""
    apply_cached_balance(s)
    if s.config.margin:
        apply_cached_positions(s)


async def read_account(s: "Strategy") -> bool:
    """Read balances (and positions) by REST now, for fills the stream has not covered; False if a read failed."""
    cfg = s.config.balance_watcher
    jobs = [s.fetch_balances(cfg.timeout, cfg.retry_count)]
    if s.config.margin:
        pcfg = s.config.position_watcher
        jobs.append(s.fetch_positions(pcfg.timeout, pcfg.retry_count))
    results = await asyncio.gather(*jobs, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    for err in failed:
        log.warning("reading balances/positions after fills failed: %s: %s", type(err).__name__, err)
    return not failed


def cached_trades(s: "Strategy", last: int = 200) -> list[FillReport]:
    """The newest fills the venue holds from the user stream (reports no watch may have handed over yet)."""
    out: list[FillReport] = []
    for symbol in s.universe:
        out += s.venue.cached_fills(symbol, last)
    return out


def balance_watcher(s: "Strategy") -> Callable[[TaskHealth], Awaitable[None]]:
    cfg = s.config.balance_watcher

    def apply_latest() -> None:
        if s.running:  # else the strategy stopped (its trace closed) since this was scheduled
            apply_cached_balance(s)

    later = CacheReads(apply_latest)

    async def ws_step() -> None:
        s.apply_balance(await s.venue.watch_balance(s.config.market_type))
        # the venue keeps applying balance messages that arrive before the next watch call but resolves no one:
        # read its cache once more shortly after, so an update in that gap is not left for the next event
        later.ask()

    async def poll_step() -> None:
        await s.fetch_balances(cfg.timeout, cfg.retry_count)

    return _account_stream(s, cfg, ws_step, poll_step)


def position_watcher(s: "Strategy") -> Callable[[TaskHealth], Awaitable[None]]:
    cfg = s.config.position_watcher
    symbols = list(s.universe)

    def apply_latest() -> None:
        if s.running:
            apply_cached_positions(s)

    later = CacheReads(apply_latest)

    async def ws_step() -> None:
        s.apply_positions(await s.venue.watch_positions(symbols))
        later.ask()  # a burst: the rest stays in the venue's cache

    async def poll_step() -> None:
        await s.fetch_positions(cfg.timeout, cfg.retry_count)
        await sync_funding(s)  # a funding payment the stream's notice did not bring

    return _account_stream(s, cfg, ws_step, poll_step)


def order_watcher(s: "Strategy", ai: "AssetInstance") -> Callable[[TaskHealth], Awaitable[None]]:
    """Orders and trades of one asset; ends after ``order_monitoring.timeout`` without open orders.

    The two websocket watches run as tasks that live across steps: one completing never cancels the other (a
    cancelled watch can lose the update the venue had already resolved for it), and each result is applied even when
    the other watch failed in the same step."""
    cfg = s.config.order_monitoring
    symbol = ai.symbol
    idle_since: list[float] = [time.monotonic()]
    watches: dict[str, asyncio.Future[list[OrderReport]] | asyncio.Future[list[FillReport]] | None] = {"orders": None, "trades": None}

    def idle() -> bool:
        if not s.running:
            return True
        if ai.orders.any_open():
            idle_since[0] = time.monotonic()
            return False
        return time.monotonic() - idle_since[0] > cfg.timeout

    def take_done(errors: list[BaseException]) -> None:
        with s.group():  # every update of this batch made durable together
            _take_done(errors)

    def _take_done(errors: list[BaseException]) -> None:
        for name, watch in list(watches.items()):
            if watch is None or not watch.done():
                continue
            watches[name] = None
            if watch.cancelled():
                continue
            exc = watch.exception()
            if exc is not None:
                errors.append(exc)
                continue
            for item in watch.result():
                if isinstance(item, FillReport):
                    s.apply_trade(item)
                else:
                    s.apply_order(item, source="websocket")

    def drain_cache() -> None:
        """The venue keeps applying user-stream messages that arrive between two watch calls to its caches but
        resolves nobody: a burst of fills (one price move filling several resting orders) is reported one order at a time,
        the rest only with the next message, which may never come. Read the caches shortly after each event."""
        with s.group():
            _drain_cache()

    def _drain_cache() -> None:
        for report in s.venue.cached_order_updates(symbol):
            order = find(ai, report.client_order_id, report.id)
            if order is not None and order.is_open:  # the orders we wait on (not another's, not one long settled)
                s.apply_order(report, source="websocket")
        for fill in s.venue.cached_fills(symbol, 100):
            s.apply_trade(fill)

    later = CacheReads(drain_cache)

    async def ws_step() -> None:
        if watches["orders"] is None:
            watches["orders"] = asyncio.ensure_future(s.venue.watch_orders(symbol))
        if watches["trades"] is None:
            watches["trades"] = asyncio.ensure_future(s.venue.watch_fills(symbol))
        await asyncio.wait([w for w in watches.values() if w is not None], return_when=asyncio.FIRST_COMPLETED)
        errors: list[BaseException] = []
        take_done(errors)
        later.ask()
        if errors:  # the other watch may have been resolved in the same instant: let it finish and apply it first
            await asyncio.sleep(0)
            take_done(errors)
            raise errors[0]

    async def poll_step() -> None:
        await s.sync_asset_orders(ai)

    async def body(health: TaskHealth) -> None:
        try:
            await ws_or_poll(
                health,
                use_ws=cfg.use_websocket,
                ws_step=ws_step,
                poll_step=poll_step,
                interval=cfg.interval,
                fallback_s=_fallback(cfg.interval),
                stop_when=idle,
                on_ws_failure=s.venue.check_user_stream,
                generation=lambda: s.ws_generation,
                verify_every=cfg.verify_interval,
            )
        finally:
            for name, watch in watches.items():
                if watch is not None:
                    watch.cancel()
                    with contextlib.suppress(BaseException):
                        await watch
                watches[name] = None

    return body


def ohlcv_watcher(s: "Strategy", ai: "AssetInstance", timeframe: str) -> Callable[[TaskHealth], Awaitable[None]]:
    cfg = s.config.ohlcv_watcher

    async def ws_step() -> None:
        candles = await s.venue.watch_ohlcv(ai.symbol, timeframe)
        s.apply_ohlcv(ai, timeframe, candles, s.venue.closed_through(ai.symbol, timeframe))

    async def poll_step() -> None:
        s.apply_ohlcv(ai, timeframe, await s.venue.ohlcv(ai.symbol, timeframe, 100, cfg.timeout))

    async def body(health: TaskHealth) -> None:
        await poll_step()  # history first, then live updates
        await ws_or_poll(
            health,
            use_ws=cfg.use_websocket,
            ws_step=ws_step,
            poll_step=poll_step,
            interval=cfg.interval,
            fallback_s=_fallback(cfg.interval),
            stop_when=lambda: not s.running,
            generation=lambda: s.ws_generation,
        )

    return body


def valuation_watcher(s: "Strategy", symbols: list[str]) -> Callable[[TaskHealth], Awaitable[None]]:
    """Prices of the markets that connect held currencies to the main currency when the universe does not
    (``risk.metrics.price_in_main``): polled tickers, kept by the account book (``AccountBook.conversion_prices``)."""
    cfg = s.config.ohlcv_watcher

    async def body(health: TaskHealth) -> None:
        while s.running:
            try:
                tickers = await s.venue.tickers(symbols, cfg.timeout)
                fresh = {sym: t.last for sym, t in tickers.items() if sym in symbols and t.last is not None and t.last > 0}
                if s.holdings.set_conversion_prices(fresh):
                    s.hooks.balance_changed(s)
                health.seen("polling")
            except Exception as exc:
                health.failed(exc)
                log.warning("valuation prices: %s", health.last_error)
            await asyncio.sleep(cfg.interval)

    return body


def fill_stream(s: "Strategy") -> Callable[[TaskHealth], Awaitable[None]]:
    """The account's fill stream, subscribed from the start and for as long as the engine runs. Where a venue sends
    fills on a topic of their own (Bybit's ``execution``), the subscription an asset's order watcher makes with its
    first order came too late for that order: a market order had filled before it was in force, so its fill was
    never streamed and had to be emulated (fee unknown) until a poll replaced it. This keeps it in force (renewed
    after a reconnect: the next watch subscribes again). It applies nothing: the fills land in the client's cache,
    where the order watchers read them, and a failed watch raises for the supervisor to restart it with backoff."""

    async def body(health: TaskHealth) -> None:
        while s.running:
            await s.venue.watch_fills()
            health.seen("websocket")

    return body
