"""The engine's heartbeat and the exchange-side dead-man's switch.

A process (or a host) that dies leaves its resting orders on the exchange, unwatched. On USDⓈ-M futures Binance
offers the remedy: ``countdownCancelAll`` cancels a symbol's open orders when its countdown runs out, and every call
starts the countdown again. A running engine keeps it armed for every futures symbol of its universe, as Binance
recommends (a heartbeat every 30 s with a countdown of 120 s, ``dead_mans_switch`` in the config); once the engine
is gone, the countdown runs out and the exchange cancels the orders.

A heartbeat that fails is retried at once and again every few seconds; when the countdown could run out while the
engine is alive (which would cancel the engine's own orders under it) a critical alert says so, once per episode.
On a clean stop the countdowns are disarmed (countdown 0): a clean stop leaves the open orders in place on purpose
(a restart, a deployment), so the exchange must not cancel them behind it. The countdown is per account and symbol,
shared by every engine that trades the symbol on the account: while any of them heartbeats, nothing lapses.

Spot has no such endpoint. On every market the engine writes what an orchestrator's watchdog needs to tell a live
engine from a dead one: a ``heartbeat`` trace event per beat and ``<store_root>/<name>/heartbeat.json`` (time, pid,
host, run id, the deadline of the next beat; ``stopped`` after a clean stop). docs/engine.md describes both.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from typing import TYPE_CHECKING

from ..config import StrategyConfig
from ..exchange.errors import ExchangeOpError
from ..model.sink import EventSink
from ..model.types import Json
from ..model.venue import Venue
from ..storage import Store
from .supervisor import TaskHealth

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.heartbeat")
RECORD = "heartbeat.json"


class Heartbeat:
    """One per strategy, built by the composition root: ``run`` is its supervised task, ``disarm`` is called by a
    clean stop; both are handed the strategy whose universe they arm (they keep none)."""

    def __init__(self, config: StrategyConfig, account: str, venue: Venue, sink: EventSink) -> None:
        self.name = config.name
        self.account = account
        self.cfg = config.dead_mans_switch
        self.timeout = config.timeouts.market_data
        self.shared_root = config.shared_root
        self.venue = venue
        self.sink = sink
        self.lapses_at: dict[str, float] = {}  # symbol -> monotonic time its countdown runs out, as last armed
        self.alerted: set[str] = set()  # symbols whose failing re-arm was alerted (until it works again)
        self.beats = 0

    def symbols(self, s: "Strategy") -> list[str]:
        """The universe's symbols that have an exchange-side countdown (USDⓈ-M futures)."""
        return [sym for sym in s.universe if self.venue.has_countdown(sym)]

    async def run(self, s: "Strategy", health: TaskHealth) -> None:
        """Beat every ``heartbeat_s`` while ``s`` runs; after a failed arming, try again within a few seconds."""
        cfg = self.cfg
        start = time.monotonic()
        for sym in self.symbols(s):  # a timer an earlier run armed may still be counting down
            self.lapses_at.setdefault(sym, start + cfg.countdown_s)
        retry = max(0.2, min(cfg.heartbeat_s / 4, 5.0))
        while s.running:
            failed = await self.beat(s)
            if failed:
                health.failed(failed[0])
            else:
                health.seen("ok")
            await asyncio.sleep(retry if failed else cfg.heartbeat_s)

    async def beat(self, s: "Strategy") -> list[ExchangeOpError]:
        """One heartbeat: every countdown re-armed (concurrently), the record and the trace event written; returns
        the failures."""
        cfg = self.cfg
        symbols = self.symbols(s)
        ms = round(cfg.countdown_s * 1000)
        sent = time.monotonic()  # the exchange's countdown starts when it gets the call: count from before sending
        results = await asyncio.gather(*(self._arm(sym, ms) for sym in symbols))
        failures = {sym: err for sym, err in zip(symbols, results, strict=True) if err is not None}
        for sym in symbols:
            if sym not in failures:
                self.lapses_at[sym] = sent + cfg.countdown_s
                if sym in self.alerted:
                    self.alerted.discard(sym)
                    log.warning("dead-man's switch: %s re-armed again", sym)
        self.beats += 1
        armed = [sym for sym in symbols if sym not in failures]
        self.sink.record(
            "heartbeat",
            result="ok" if not failures else "failed",
            armed=armed or None,
            countdown_s=cfg.countdown_s if symbols else None,
            failed={sym: f"{type(err).__name__}: {err}"[:200] for sym, err in failures.items()} or None,
        )
        self.write_record(s.run_id, armed=armed)
        for sym, err in failures.items():
            self._failed(s, sym, err)
        return list(failures.values())

    async def _arm(self, symbol: str, countdown_ms: int) -> ExchangeOpError | None:
        try:
            await self.venue.arm_countdown(symbol, countdown_ms, self.timeout)
            return None
        except ExchangeOpError as err:
            return err

    def _failed(self, s: "Strategy", symbol: str, err: ExchangeOpError) -> None:
        """A countdown that could not be re-armed: logged; alerted (critical, once per episode) when it may run out
        before the next regular heartbeat could fix it, since the exchange would then cancel the live engine's
        orders."""
        cfg = self.cfg
        left = self.lapses_at.get(symbol, 0.0) - time.monotonic()
        log.warning("dead-man's switch: re-arming %s failed (%s); %.1fs left on its countdown", symbol, err, left)
        if left >= 2 * cfg.heartbeat_s or symbol in self.alerted:
            return
        self.alerted.add(symbol)
        if left > 0:
            msg = (
                f"{self.name}: the dead-man's switch of {symbol} could not be re-armed ({type(err).__name__}: {err}); "
                f"unless a heartbeat gets through within {left:.0f}s the exchange cancels every open order on {symbol} "
                "while the engine is alive"
            )
        else:
            msg = (
                f"{self.name}: the dead-man's switch of {symbol} ran out {-left:.0f}s ago without a heartbeat getting "
                f"through ({type(err).__name__}: {err}); the exchange has probably cancelled every open order on {symbol}"
            )
        self.sink.record("error_occurred", symbol=symbol, reason=msg)
        s.alert(msg, "critical")

    def write_record(self, run_id: str | None, armed: list[str], stopped: bool = False) -> None:
        """``<store_root>/<name>/heartbeat.json``: what a watchdog reads to tell a live engine from a dead one
        (``run_id``: the orchestrator's run that drives it)."""
        cfg = self.cfg
        now_ms = int(time.time() * 1000)
        record: Json = {
            "strategy": self.name,
            "account": self.account,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms / 1000)),
            "time_ms": now_ms,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": run_id,
            "heartbeat_s": cfg.heartbeat_s,
            "next_by_ms": None if stopped else now_ms + int(cfg.heartbeat_s * 1000),
            "countdown_s": cfg.countdown_s if armed else None,
            "armed": armed,
            "stopped": stopped,
        }
        try:
            Store(self.shared_root).write_atomic(RECORD, json.dumps(record).encode())
        except OSError as exc:  # the heartbeat itself goes on; a watchdog will see a stale record
            log.warning("heartbeat record %s/%s not written: %s", self.shared_root, RECORD, exc)

    async def disarm(self, s: "Strategy") -> None:
        """A clean stop: every countdown this run armed stopped (countdown 0), the record marked stopped. Never
        raises; a countdown that could not be stopped is logged and alerted (it will cancel the open orders)."""
        if not self.beats:
            return
        symbols = list(self.lapses_at)

        async def stop_one(sym: str) -> str | None:
            try:
                await self.venue.arm_countdown(sym, 0, self.timeout, retries=1)
                return None
            except Exception as exc:  # refused, unreachable, a closed client: the stop goes on
                return f"{type(exc).__name__}: {exc}"[:200]

        outcomes = await asyncio.gather(*(stop_one(sym) for sym in symbols))  # one round trip, whatever the universe
        errors = {sym: err for sym, err in zip(symbols, outcomes, strict=True) if err is not None}
        if symbols:
            self.sink.record("countdown_disarmed", symbols=[x for x in symbols if x not in errors] or None, failed=errors or None)
        if errors:
            msg = f"{self.name}: stopped, but the dead-man's switch of {sorted(errors)} could not be disarmed ({errors}); the exchange will cancel their open orders when the countdown runs out"
            log.warning(msg)
            s.alert(msg, "warning")
        self.lapses_at.clear()
        self.write_record(s.run_id, armed=[], stopped=True)
