"""The engine's heartbeat and the exchange-side dead-man's switch.

A process (or a host) that dies leaves its resting orders on the exchange, unwatched. Some exchanges offer the
remedy: a switch that cancels the open orders once the engine stops keeping it armed. The venue says which switch
covers each symbol (``Venue.switch_scope``) and how it is kept armed (``Capabilities.switch``):

* a countdown (``SwitchKind.COUNTDOWN``; USDⓈ-M ``countdownCancelAll``): one timer per symbol, which every arming
  request starts again; once the engine is gone no request comes, the countdown runs out and the exchange cancels
  the symbol's orders. A running engine re-arms it every ``heartbeat_s`` with a countdown of ``countdown_s`` (Binance
  recommends 30 s and 120 s, ``dead_mans_switch`` in the config).
* a connection switch (``SwitchKind.CONNECTION``): one switch per product of the account (every spot order, every
  derivatives order), armed while a connection of the engine subscribed to it lives; ``countdown_s`` after the last
  such connection goes (the venue's nearest window), the exchange cancels every open order of the product. Each
  heartbeat makes sure the engine's connection is subscribed (again, after a reconnect), so a dropped connection is
  covered again within ``heartbeat_s``, well inside the window.

A heartbeat that fails is retried at once and again every few seconds; when the switch could run out while the
engine is alive (which would cancel the engine's own orders under it) a critical alert says so, once per episode.
A switch is per account, shared by every engine that trades under it: while any of them keeps it armed, nothing
lapses.

A clean stop leaves the open orders in place on purpose (a restart, a deployment): a countdown is disarmed
(countdown 0), so the exchange does not cancel them behind it. A connection switch cannot be disarmed: a restart
within its window keeps the orders, a longer stop lets the exchange cancel them (the stop says when, in the trace,
the record and, when the strategy has orders there, an alert).

On every market the engine writes what an orchestrator's watchdog needs to tell a live engine from a dead one: a
``heartbeat`` trace event per beat and ``<store_root>/<name>/heartbeat.json`` (time, pid, host, run id, the deadline
of the next beat; ``stopped`` after a clean stop). docs/engine.md describes both.
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
from ..exchange.errors import ExchangeOpError, SwitchUnavailable
from ..model.sink import EventSink
from ..model.types import Json
from ..model.venue import SwitchKind, Venue
from ..storage import Store
from .supervisor import TaskHealth

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.heartbeat")
RECORD = "heartbeat.json"


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


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
        self.lapses_at: dict[str, float] = {}  # scope -> monotonic time its switch may run out, as last armed
        self.alerted: set[str] = set()  # scopes whose failing re-arm was alerted (until it works again)
        self.window_s = self.cfg.countdown_s  # the window the exchange applies (the venue's nearest to countdown_s)
        self.unavailable: dict[str, str] = {}  # scopes the exchange offers this account no switch for -> why
        self.beats = 0

    def scopes(self, s: "Strategy") -> list[str]:
        """The switches that cover the universe's orders, each once (a symbol's own countdown, or a product's
        connection switch that covers several symbols)."""
        out: list[str] = []
        for sym in s.universe:
            scope = self.venue.switch_scope(sym)
            if scope is not None and scope not in out and scope not in self.unavailable:
                out.append(scope)
        return out

    async def run(self, s: "Strategy", health: TaskHealth) -> None:
        """Beat every ``heartbeat_s`` while ``s`` runs; after a failed arming, try again within a few seconds."""
        cfg = self.cfg
        start = time.monotonic()
        for scope in self.scopes(s):  # a switch an earlier run armed may still be counting down
            self.lapses_at.setdefault(scope, start + cfg.countdown_s)
        retry = max(0.2, min(cfg.heartbeat_s / 4, 5.0))
        while s.running:
            failed = await self.beat(s)
            if failed:
                health.failed(failed[0])
            else:
                health.seen("ok")
            await asyncio.sleep(retry if failed else cfg.heartbeat_s)

    async def beat(self, s: "Strategy") -> list[ExchangeOpError]:
        """One heartbeat: every switch re-armed (concurrently), the record and the trace event written; returns the
        failures."""
        cfg = self.cfg
        scopes = self.scopes(s)
        ms = round(cfg.countdown_s * 1000)
        sent = time.monotonic()  # the exchange's countdown starts when it gets the call: count from before sending
        outcomes = dict(zip(scopes, await asyncio.gather(*(self._arm(scope, ms) for scope in scopes)), strict=True))
        for scope, r in outcomes.items():
            if isinstance(r, SwitchUnavailable):
                self._unavailable(s, scope, r)
        scopes = [scope for scope in scopes if scope not in self.unavailable]
        failures = {scope: r for scope, r in outcomes.items() if isinstance(r, ExchangeOpError) and scope in scopes}
        for scope in scopes:
            r = outcomes[scope]
            if isinstance(r, int):
                self._applied(r)
                self.lapses_at[scope] = sent + self.window_s
                if scope in self.alerted:
                    self.alerted.discard(scope)
                    log.warning("dead-man's switch: %s re-armed again", scope)
        self.beats += 1
        armed = [scope for scope in scopes if scope not in failures]
        self.sink.record(
            "heartbeat",
            result="ok" if not failures else "failed",
            armed=armed or None,
            countdown_s=self.window_s if scopes else None,
            switch=self.venue.caps.switch.value if scopes else None,
            failed={scope: f"{type(err).__name__}: {err}"[:200] for scope, err in failures.items()} or None,
            unavailable=sorted(self.unavailable) or None,
        )
        self.write_record(s.run_id, armed=armed)
        for scope, err in failures.items():
            self._failed(s, scope, err)
        return list(failures.values())

    async def _arm(self, scope: str, window_ms: int) -> int | ExchangeOpError:
        """The window the exchange applies (ms), or why the switch could not be armed."""
        try:
            return await self.venue.arm_switch(scope, window_ms, self.timeout)
        except ExchangeOpError as err:
            return err

    def _unavailable(self, s: "Strategy", scope: str, err: SwitchUnavailable) -> None:
        """The exchange offers this account no switch for ``scope`` (not a failed heartbeat: nothing armed can lapse):
        the engine goes on without it there, says so once (trace, log, a warning alert) and stops asking."""
        self.unavailable[scope] = f"{err}"[:300]
        self.lapses_at.pop(scope, None)
        msg = (
            f"{self.name}: the exchange offers this account no dead-man's switch for {scope} ({err}); the engine runs "
            f"without it: if the engine dies, its open orders on {scope} stay on the exchange"
        )
        log.warning(msg)
        self.sink.record("switch_unavailable", symbol=scope, reason=msg[:500])
        s.alert(msg, "warning")

    def _applied(self, window_ms: int) -> None:
        """The venue's window may differ from ``countdown_s`` (whole seconds, a bounded range): said once, and what
        the record, the trace and the alerts count with."""
        window_s = window_ms / 1000
        if window_s != self.window_s:
            log.warning(
                "dead-man's switch: the exchange applies a window of %.0fs (dead_mans_switch.countdown_s is %.0fs)",
                window_s,
                self.cfg.countdown_s,
            )
            self.window_s = window_s

    def _failed(self, s: "Strategy", scope: str, err: ExchangeOpError) -> None:
        """A switch that could not be re-armed: logged; alerted (critical, once per episode) when it may run out
        before the next regular heartbeat could fix it, since the exchange would then cancel the live engine's
        orders."""
        cfg = self.cfg
        left = self.lapses_at.get(scope, 0.0) - time.monotonic()
        log.warning("dead-man's switch: re-arming %s failed (%s); %.1fs left on its countdown", scope, err, left)
        if left >= 2 * cfg.heartbeat_s or scope in self.alerted:
            return
        self.alerted.add(scope)
        if left > 0:
            msg = (
                f"{self.name}: the dead-man's switch of {scope} could not be re-armed ({type(err).__name__}: {err}); "
                f"unless a heartbeat gets through within {left:.0f}s the exchange cancels every open order on {scope} "
                "while the engine is alive"
            )
        else:
            msg = (
                f"{self.name}: the dead-man's switch of {scope} ran out {-left:.0f}s ago without a heartbeat getting "
                f"through ({type(err).__name__}: {err}); the exchange has probably cancelled every open order on {scope}"
            )
        self.sink.record("error_occurred", symbol=scope, reason=msg)
        s.alert(msg, "critical")

    def write_record(self, run_id: str | None, armed: list[str], stopped: bool = False, lapsing: dict[str, int] | None = None) -> None:
        """``<store_root>/<name>/heartbeat.json``: what a watchdog reads to tell a live engine from a dead one
        (``run_id``: the orchestrator's run that drives it). ``lapsing``: after a stop, the switches left to run
        out and when (ms) the exchange will cancel their orders unless an engine arms them again."""
        cfg = self.cfg
        now_ms = int(time.time() * 1000)
        record: Json = {
            "strategy": self.name,
            "account": self.account,
            "time": _utc(now_ms),
            "time_ms": now_ms,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": run_id,
            "heartbeat_s": cfg.heartbeat_s,
            "next_by_ms": None if stopped else now_ms + int(cfg.heartbeat_s * 1000),
            "countdown_s": self.window_s if armed else None,
            "switch": self.venue.caps.switch.value if armed or lapsing else None,
            "armed": armed,
            "stopped": stopped,
        }
        if self.unavailable:
            record["unavailable"] = sorted(self.unavailable)
        if lapsing:
            record["lapsing"] = dict(lapsing)
        try:
            Store(self.shared_root).write_atomic(RECORD, json.dumps(record).encode())
        except OSError as exc:  # the heartbeat itself goes on; a watchdog will see a stale record
            log.warning("heartbeat record %s/%s not written: %s", self.shared_root, RECORD, exc)

    async def disarm(self, s: "Strategy") -> dict[str, int]:
        """A clean stop: every countdown this run armed stopped (countdown 0); a connection switch, which nothing
        stops, said to be running out; the record marked stopped. Never raises; a switch left to run out is logged
        and, where it will cancel open orders, alerted. Returns the switches left to run out (scope -> when, ms)."""
        if not self.beats:
            return {}
        scopes = list(self.lapses_at)
        if self.venue.caps.switch is SwitchKind.CONNECTION:
            lapsing = self._left_armed(s, scopes)
        else:
            lapsing = await self._disarm_countdowns(s, scopes)
        self.lapses_at.clear()
        self.write_record(s.run_id, armed=[], stopped=True, lapsing=lapsing)
        return lapsing

    async def _disarm_countdowns(self, s: "Strategy", symbols: list[str]) -> dict[str, int]:
        """Countdown 0 for each symbol, in one round trip whatever the universe; returns those left running, with
        when they run out (ms)."""

        async def stop_one(sym: str) -> str | None:
            try:
                await self.venue.disarm_switch(sym, self.timeout, retries=1)
                return None
            except Exception as exc:  # refused, unreachable, a closed client: the stop goes on
                return f"{type(exc).__name__}: {exc}"[:200]

        outcomes = await asyncio.gather(*(stop_one(sym) for sym in symbols))
        errors = {sym: err for sym, err in zip(symbols, outcomes, strict=True) if err is not None}
        if symbols:
            self.sink.record("countdown_disarmed", symbols=[x for x in symbols if x not in errors] or None, failed=errors or None)
        if errors:
            msg = f"{self.name}: stopped, but the dead-man's switch of {sorted(errors)} could not be disarmed ({errors}); the exchange will cancel their open orders when the countdown runs out"
            log.warning(msg)
            s.alert(msg, "warning")
        wall, mono = time.time() * 1000, time.monotonic()
        return {sym: int(wall + (self.lapses_at[sym] - mono) * 1000) for sym in errors}

    def _left_armed(self, s: "Strategy", scopes: list[str]) -> dict[str, int]:
        """A connection switch on a clean stop: no request stops it, and the engine's connection closes as the stop
        ends, so the window starts now. A restart within it (or another engine of the account that keeps the switch)
        keeps the orders; past it the exchange cancels every open order of the scope on the account, whoever placed
        it. Said in the trace (``switch_left_armed``), the log, and an alert when this strategy has orders there."""
        if not scopes:
            return {}
        at_ms = int(time.time() * 1000 + self.window_s * 1000)
        mine = sum(len(ai.open_orders()) for sym, ai in s.universe.items() if self.venue.switch_scope(sym) in scopes)
        self.sink.record("switch_left_armed", scopes=scopes, window_s=self.window_s, lapses_at=_utc(at_ms), open_orders=mine)
        msg = (
            f"{self.name}: stopped; the exchange's dead-man's switch of {', '.join(scopes)} cannot be disarmed on this "
            f"venue: unless an engine of the account arms it again within {self.window_s:.0f}s (this strategy restarted, or "
            f"another that keeps it), the exchange cancels every open order of {', '.join(scopes)} on the account at about "
            f"{_utc(at_ms)}"
        )
        if mine:
            msg += f", this strategy's {mine} among them"
            log.warning(msg)
            s.alert(msg, "warning")
        else:
            log.info(msg)
        return dict.fromkeys(scopes, at_ms)
