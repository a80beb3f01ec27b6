"""The Strategy: configuration, exchange client, local state, watchers and the order call.

``strategy(name, mode=Live(), ...)`` builds one from a ``StrategyConfig``;
``await s.start()`` loads markets, syncs the account and starts the watchers;
``await s.call(ai, OrderType.GTC, Side.BUY, amount=..., price=...)`` trades.
The order call itself lives in ``orders.py``; start-up sync and resync in
``sync.py``; connection health in ``health.py``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..alerts import AlertDispatcher
from ..config import ConfigError, StrategyConfig, load_config
from ..exchange.registry import credential_fields
from ..model import (
    AssetInstance,
    Balance,
    CancelAllAnswer,
    CancelAnswer,
    CloseAnswer,
    LeverageAnswer,
    Order,
    OrderAnswer,
    OrderRequest,
    OrderType,
    PositionSide,
    Side,
    Trade,
)
from ..model.clock import Clock
from ..model.refusals import Refusal
from ..model.requests import OrderCall
from ..model.sink import EventSink, MemorySink
from ..model.stamp import Stamp
from ..model.types import Json
from ..model.venue import BalanceReport, FillReport, OrderReport, PositionReport, Venue
from ..state import PersistedState
from ..storage import CorruptStateError
from . import brackets as _brackets
from . import cancels as _cancels
from . import orders as _orders
from . import reducing as _reducing
from . import sync as _sync
from . import trailing as _trailing
from . import updates as _updates
from .closing import close_position
from .freshness import AccountReader
from .margin import alert_external_position_changes, explain_reductions, sync_funding, update_leverage
from .notices import BarClosed, EngineEvent, Filled
from .parts import EngineParts, build_parts, config_account, configured_alerts, engine_venue
from .store_guard import GuardedSink
from .submit import resolver
from .supervisor import TaskObserver
from .timers import Timers
from .watchers import (
    apply_cached_account,
    balance_watcher,
    cached_trades,
    fill_stream,
    ohlcv_watcher,
    order_watcher,
    position_watcher,
    read_account,
    valuation_watcher,
)

if TYPE_CHECKING:
    from ..risk.estop import EStopReport


log = logging.getLogger("planar.engine")
RiskCheck = Callable[["Strategy", AssetInstance, OrderRequest], "str | Refusal | None"]  # a sentence: a risk limit


@dataclass(frozen=True)
class Live:
    """Orders go to the exchange."""


@dataclass(frozen=True)
class Paper:
    """Live market data, orders filled locally with the sandbox's matching rules."""


class Strategy:
    def __init__(self, config: StrategyConfig, parts: EngineParts) -> None:
        """A strategy coordinating ``parts`` (engine/parts.py: ``build_parts``, called by the composition root
        ``strategy_from_config`` or a test's builder)."""
        self.clock: Clock = parts.clock
        self.timers = Timers(parts.clock)  # one-shot callbacks on the engine's clock (execution.py's limit expiry)
        self.config = config
        self.name = config.name
        # every write to the trace goes through the guard: a full or read-only store halts instead of raising
        self.sink: GuardedSink = parts.sink
        self.gate = parts.gate  # whether orders may go out: the halt, the store's health, unreadable files (gate.py)
        # the exchange as the engine sees it (model/venue.py): every request and stream of the engine goes through it
        self.venue: Venue = parts.venue
        # the orders, their status and fills; unknown outcomes, other programs' orders, placed exits (order_book.py)
        self.book = parts.book
        self.dir: Path = config.store_path
        self.state_store = parts.state_store
        self.ids = parts.ids
        self.journal = parts.journal
        self.universe: dict[str, AssetInstance] = parts.universe  # filled by load(): the markets of the config's assets
        self.holdings = parts.holdings  # balances, positions, funding, valuation prices (engine/account_book.py)
        self.supervisor = parts.supervisor
        self.running = False
        self.closed = False  # stopped: its trace is closed (``stop``)
        self.driven = False  # run_driven: a driver moves the clock and delivers every report (a backtest)
        self.risk_check: RiskCheck | None = None
        self.hooks = parts.hooks  # who is told what: balance and price changes, events, e-stops, extra tasks (hooks.py)
        self.alerts: AlertDispatcher | None = parts.alerts
        self.trade_grace_s = 0.25  # wait this long for a trade event before emulating one from an order update
        self.ledger = parts.ledger  # fills applied, fills before their order, an earlier run's orders (ledger.py)
        self.ws_generation = 0  # bumped by health.reconnect when it closes the websockets on purpose
        # which report each balance and position came from; fills they include. Its reads are the engine's own
        self.freshness = parts.freshness
        self.freshness.connect(
            AccountReader(
                from_stream=partial(apply_cached_account, self),
                read=partial(read_account, self),
                stream_fills=partial(cached_trades, self),
                running=lambda: self.running,
            )
        )
        self.lease = parts.lease
        self.run_id: str | None = None  # the orchestrator's run that drives this engine, for the lease's holder text
        self.hooks.listen(partial(_brackets.on_event, self))
        self.trailer = _trailing.Trailer()  # trailing stops the engine moves where the venue has none (trailing.py)
        self.hooks.on_price(self.trailer.on_price)
        self.hooks.listen(partial(_orders.on_verdict, self))  # order_monitoring.resend_absent
        self.risk = parts.risk
        self._wire_risk()
        self.heartbeat = parts.heartbeat  # the exchange's dead-man's switch and the heartbeat record (heartbeat.py)
        if config.dead_mans_switch.enabled:
            self.hooks.add_task("heartbeat", partial(self.heartbeat.run, self))
        self.twins = parts.twins  # one engine per strategy and account across store roots (twins.py)
        if self.twins.active:
            self.hooks.add_task("twins", partial(self.twins.watch, self))

    def _wire_risk(self) -> None:
        """The risk manager is the pre-trade check, a listener on every balance and price update (the breakers are
        event-driven), a task beside the watchers and the answer to a lost connection."""
        rm = self.risk
        self.risk_check = rm.check
        self.hooks.on_balance(rm.evaluate_breakers)
        self.hooks.on_valuation(rm.evaluate_breakers)
        self.hooks.add_task("risk-monitor", partial(rm.monitor_body, self))
        self.hooks.on_connection_lost(rm.connection_lost)

    # ----------------------------------------------------------------- identity
    def __repr__(self) -> str:  # never the credentials
        return f"Strategy(name={self.name!r}, mode={self.config.mode!r}, exchange={self.config.exchange!r}, sandbox={self.config.sandbox})"

    @property
    def account(self) -> str:
        """The exchange account this strategy trades (``<exchange>-<hash of the API key>``; paper: ``paper-<name>``)."""
        return config_account(self.config)

    @property
    def state(self) -> PersistedState:
        """The persisted state as the gate sees it: a halt the store has not taken yet, or an unreadable file the
        engine acts on, reads as halted (engine/gate.py)."""
        return self.gate.state

    @property
    def last_refusal(self) -> Refusal | None:
        """Why ``call()`` last answered None, typed (model/refusals.py)."""
        return self.book.last_refusal

    @property
    def halted(self) -> bool:
        return self.gate.state.halted

    def halt(self, reason: str, by_emergency_stop: bool = False) -> None:
        """No new orders until re-armed: persisted for other processes and the next run (engine/gate.py)."""
        self.gate.halt(reason, by_emergency_stop)

    def rearm(self) -> None:
        """Allow trading again after a halt, as ``planar rearm`` does (``risk.operations.rearm``, which also asks the
        exchange about what a stop left unverified): the halt and the tripped breaker are cleared, and the breakers'
        baselines (peak and day-start equity) start again from the equity now (with no balance held yet: from the
        next valuation), so the loss that tripped a breaker does not trip it again at the next price (an outside
        trial: it did, and ran a second e-stop). Refused (``RearmRefused``) while the last emergency stop left
        something unverified (its verdict is needed: run the stop again, or ``await risk.operations.rearm``) or
        equity cannot be valued or is not positive (``risk.operations.baseline``); refused while the store cannot be written (``StoreUnwritable``) or a file the
        engine acts on cannot be read (``CorruptStateError``)."""
        from ..risk.manager import utc_day
        from ..risk.operations import RearmRefused, baseline

        unverified = self.state.estop_unverified
        if unverified:
            raise RearmRefused(
                f"{self.name}: the last emergency stop left {sorted(unverified)} unverified; run it again, or re-arm with "
                "`planar rearm` (it asks the exchange first)"
            )
        eq = baseline(self)
        known = bool(self.holdings.balances)
        self.gate.rearm(peak_equity=eq if known else None, day_start_equity=eq if known else None, day=utc_day(self.clock))

    def asset(self, ai: AssetInstance | str) -> AssetInstance:
        if isinstance(ai, AssetInstance):
            return ai
        try:
            return self.universe[ai]
        except KeyError:
            raise KeyError(f"{ai!r} is not in the universe of {self.name}: {list(self.universe)}") from None

    # ----------------------------------------------------------------- lifecycle
    async def load(self) -> None:
        """Load markets and build the universe; unknown symbols fail naming the field."""
        await _sync.load_markets(self)

    async def start(self, watchers: bool = True, takeover: bool = False, run_id: str | None = None) -> None:
        """Take the lease (one live engine per strategy and account), load, check, sync, start watchers. A failed
        start releases the lease, the trace and the connections. Another engine of this strategy trading the account
        from another store root refuses the start (``TwinEngineError``); ``takeover``: it is gone, adopt its orders.
        ``run_id``: the orchestrator's run that drives this engine (named in the lease and the heartbeat record)."""
        self.run_id = run_id if run_id is not None else self.run_id
        try:
            self.lease.acquire(self.run_id)
            self.gate.check_persisted()
            await self.load()
            self._paper_fresh()
            await _sync.check_live_safety(self)
            await self.twins.check_at_start(self, takeover)
            deferred = await _sync.startup_sync(self)
            await _sync.load_history(self)
        except BaseException:
            await self.stop()
            raise
        self.running = True
        if self.state.exits_due or any(ai.orders.open_exits() for ai in self.universe.values()):
            try:  # exits due before a crash placed, stale ones cancelled, before the strategy trades again
                await _brackets.resume(self)
            except Exception as exc:
                log.exception("checking the exits left by the previous run")
                self.alert(
                    f"{self.name}: the exits left by the previous run could not be checked ({exc}): look at its positions", "critical"
                )
        if deferred is not None:  # after a power loss: the assets with nothing unresolved, listed while the engine runs
            self.supervisor.start("verify-deferred", lambda health: _sync.verify_deferred(self, deferred))
        if watchers:
            self.start_watchers()

    def _paper_fresh(self) -> None:
        """Paper: the simulated account starts again at ``initial_cash`` with every run; what the store kept of an
        earlier paper run (the breakers' peak and day-start equity, exits due) is cleared with it, and the reset
        is said. Kept, a restart after a paper gain read the fresh account as a drawdown and ran an emergency stop
        with no loss (an outside trial, 2 of 2); a restart after a loss hid it."""
        st = self.state
        if self.config.mode != "paper" or (st.peak_equity is None and st.day_start_equity is None and not st.exits_due):
            return
        self.state_store.update(peak_equity=None, day_start_equity=None, exits_due={})
        msg = (
            f"{self.name}: paper account starts again at {self.config.initial_cash} {self.config.main_currency}; the earlier "
            f"paper run's balances, positions and orders are not carried (its peak equity {st.peak_equity} is no baseline)"
        )
        log.warning(msg)
        self.sink.record("paper_reset", reason=msg, previous_peak_equity=st.peak_equity)

    def run_unwatched(self) -> None:
        """Running as after ``start``, with no watchers: a test feeds the venue (``LogicTest``); the breakers, the
        resolver and the one-shot jobs after fills act as in a live run (they wait for ``running``)."""
        self.running = True

    def run_driven(self) -> None:
        """Running without watchers: a driver feeds the venue and its reports (a backtest over the simulated venue),
        and what acts only while the strategy runs (the breakers, one-shot jobs after fills) acts as in a live run.
        Nothing arrives while the logic waits: an order's ``waitfor`` ends at once, with what its request caused."""
        self.running = True
        self.driven = True
        self.timers.driven = True

    def start_watchers(self) -> None:
        if self.config.order_monitoring.enabled and self.config.order_monitoring.use_websocket:
            self.supervisor.start("fills", fill_stream(self))
        if self.config.balance_watcher.enabled:
            self.supervisor.start("balance", balance_watcher(self))
        if self.config.margin and self.config.position_watcher.enabled:
            self.supervisor.start("positions", position_watcher(self))
        for ai in self.universe.values():
            for tf in self.config.timeframes:
                self.supervisor.start(f"ohlcv:{ai.symbol}:{tf}", ohlcv_watcher(self, ai, tf))
            if ai.open_orders():
                self.ensure_order_tasks(ai)
        from ..risk.metrics import valuation_markets

        bridges = valuation_markets(self)
        if bridges:
            self.supervisor.start("valuation", valuation_watcher(self, bridges))
        if any(o.status == "unknown" for ai in self.universe.values() for o in ai.orders.values()):
            self.start_resolver()
        from .health import connection_monitor

        self.supervisor.start("health", connection_monitor(self))
        for name, body in self.hooks.tasks():
            self.supervisor.start(name, body)

    def ensure_order_tasks(self, ai: AssetInstance) -> None:
        if self.config.order_monitoring.enabled and self.running:
            self.supervisor.start(f"orders:{ai.symbol}", order_watcher(self, ai))

    def start_resolver(self) -> None:
        """Keep asking the exchange about orders whose outcome is unknown (ends when none is left)."""
        if self.running:
            self.supervisor.start("resolver", lambda health: resolver(self, health))

    async def reset_streams(self) -> None:
        """Drop the websockets on purpose: the watchers resubscribe at their next call (the generation tells them
        this was no failure, so they do not fall back to polling)."""
        self.ws_generation += 1
        await self.venue.reset_streams()

    def group(self) -> AbstractContextManager[None]:
        """Group commit of the trace's durable events (a context manager; a no-op for sinks without it)."""
        return self.sink.group()

    def alert(self, message: str, level: str = "warning") -> None:
        """Send an alert through the configured channels (logged when none is configured)."""
        from ..alerts.dispatcher import send_alert

        send_alert(self, message, level)

    async def emergency_stop(self, reason: str = "Manual trigger", close_positions: bool | None = None) -> "EStopReport":
        """The strategy's emergency stop: halt, cancel its orders, optionally flatten its positions, alert, record."""
        from ..risk.estop import emergency_stop

        return await emergency_stop(self, reason, close_positions)

    async def stop(self) -> None:
        """Stop watchers, flush the event sink, close connections. Safe to call twice."""
        self.running = False
        await self.supervisor.stop()
        await self.freshness.close()
        lapsing = await self.heartbeat.disarm(self)  # a clean stop leaves the open orders in place: the exchange must not cancel them
        _brackets.due_on_stop(self, lapsing)  # ... unless it cannot be stopped: the exits a restart must check
        if not self.gate.write_halt():
            log.critical("strategy %s: its halt (%s) was never written; the next start will not know it", self.name, self.gate.store_error)
        self.closed = True  # what still fires (an emulation's timer) writes nothing: the next start reads the fill
        self.sink.close()  # guarded: a store that cannot be written is logged, the rest of the stop goes on
        self.journal.close()
        await self.venue.close()
        self.lease.release()

    def watcher_health(self) -> dict[str, Json]:
        return {name: vars(h).copy() for name, h in self.supervisor.health.items()}

    # ----------------------------------------------------------------- the order call
    async def call(
        self,
        ai: AssetInstance | str,
        order_type: OrderType,
        side: Side,
        *,
        amount: float,
        price: float | None = None,
        waitfor: float | None = None,
        synced: bool = True,
        reduce_only: bool = False,
        trigger_price: float | None = None,
        trailing_percent: float | None = None,
        position_side: PositionSide | str = PositionSide.BOTH,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        **params: object,
    ) -> OrderAnswer:
        """Place an order. Returns a ``Trade`` (fills seen within ``waitfor``), ``PENDING`` (the exchange accepted it,
        no fill seen yet), ``UNKNOWN`` (the outcome is not known yet: timeout, 5xx, lost acknowledgement, the
        placement budget spent before the exchange said; the order is ``unknown`` and the resolver's verdict reaches
        ``on_order_update`` with ``order.verdict`` "found" or "absent") or ``None`` (refused locally, refused by the
        exchange, proven never booked, or its intent could not be journaled: nothing was sent). Never raises;
        ``params`` may only hold ``orders.ALLOWED_PARAMS``. ``PENDING`` and ``UNKNOWN`` are falsy singletons: test
        them with ``is``.

        Conditional types (``STOP_*``, ``TAKE_PROFIT_*``, ``TRAILING_STOP``) take ``trigger_price`` (trailing: the
        optional activation price) and ``trailing_percent``; hedge mode needs ``position_side`` (long or short);
        ``stop_loss`` / ``take_profit`` on an entry place reduce-only exits when it fills (docs/engine.md, "Orders")."""
        a = self.asset(ai)
        try:
            asked = OrderCall(
                type=OrderType(order_type),
                side=Side(side),
                amount=amount,
                price=price,
                waitfor=waitfor,
                synced=synced,
                reduce_only=reduce_only,
                trigger_price=trigger_price,
                trailing_percent=trailing_percent,
                position_side=PositionSide(position_side),
                stop_loss=stop_loss,
                take_profit=take_profit,
                params=params,
            )
        except ValueError as exc:  # wrong by itself (InvalidOrderCall): refused before any check of the market or account
            _orders.refused(self, a, _orders.invalid(exc), side, amount, price)
            return None
        return await _orders.call(self, a, asked)

    async def execute(self, ai: AssetInstance | str, side: Side | str, amount: float) -> OrderAnswer:
        """Trade ``amount`` now through the (auto-tuned) execution policy: market, or a limit that rests
        ``order_timeout`` seconds; see engine/execution.py."""
        from .execution import execute

        return await execute(self, self.asset(ai), Side(side), amount)

    async def emergency_order(
        self, ai: AssetInstance | str, side: Side | str, amount: float, position_side: PositionSide = PositionSide.BOTH
    ) -> OrderAnswer:
        """A closing market order for the emergency stop: placed even though the strategy is halted, reduce-only on
        margin assets (hedge mode: on ``position_side``, which says it closes), no risk sizing; journaled, traced
        and resolved like every other order."""
        a = self.asset(ai)
        try:
            asked = OrderCall(
                type=OrderType.MARKET,
                side=Side(side),
                amount=amount,
                waitfor=0.0,
                synced=False,
                reduce_only=a.is_margin and position_side is PositionSide.BOTH,
                position_side=position_side,
                emergency=True,
            )
        except ValueError as exc:
            _orders.refused(self, a, _orders.invalid(exc), side, amount, None)
            return None
        return await _orders.call(self, a, asked)

    async def update_leverage(self, ai: AssetInstance | str, leverage: int) -> LeverageAnswer:
        """Planar's ``UpdateLeverage``: allowed when the asset is flat with no open orders; answers applied, refused
        (with the typed reason) or unknown (see engine/margin.py)."""
        return await update_leverage(self, self.asset(ai), leverage)

    async def own_basis_outside_engine(self) -> dict[str, str]:
        """Read by a process that is not this strategy's engine (the e-stop from a fresh process): the cost basis
        its traces last recorded, and the symbols whose part of the account it cannot tell, with why
        (engine/startup_plan.own_basis_from_traces)."""
        from .startup_plan import own_basis_from_traces

        return await own_basis_from_traces(self, (trace_root(self.config), side_trace_root(self.config)))

    def orders_open_outside_engine(self) -> dict[str, set[str]]:
        """Read by a process that is not this strategy's engine: its client order ids its traces last left open, by
        symbol, on any symbol (engine/startup_plan.orders_open_in_traces)."""
        from .startup_plan import orders_open_in_traces

        return orders_open_in_traces(self, (trace_root(self.config), side_trace_root(self.config)))

    async def lookup_order(self, symbol: str, client_order_id: str, timeout: float) -> OrderReport | None:
        """The order with this client id on the exchange (a conditional one where it waits), None when the exchange
        has none; raises ExchangeOpError when it could not be asked."""
        from .submit import lookup

        return await lookup(self, symbol, client_order_id, timeout, retries=0, conditional=True)

    async def close_position(
        self, ai: AssetInstance | str, side: PositionSide | str | None = None, *, price: float | None = None, waitfor: float | None = None
    ) -> CloseAnswer[OrderAnswer]:
        """Close the position (hedge mode: one ``side`` or both): reduce-only market, or limit at ``price``."""
        return await close_position(self, self.asset(ai), None if side is None else PositionSide(side), price, waitfor)

    async def reduce_position(self, ai: AssetInstance | str, fraction: float, reason: str) -> OrderAnswer:
        """A risk action: ``fraction`` of the strategy's own part of the position sold at market, what is left still
        protected by its exits (engine/reducing.py)."""
        return await _reducing.reduce_position(self, self.asset(ai), fraction, reason)

    async def cancel(self, ai: AssetInstance | str, order: Order) -> CancelAnswer:
        """Cancel one of the strategy's orders: cancelled, already closed, refused or unknown (engine/cancels.py)."""
        return await _cancels.cancel(self, self.asset(ai), order)

    async def cancel_all(self, ai: AssetInstance | str) -> CancelAllAnswer:
        """Cancel every order the strategy has open on ``ai``, verified by a listing (engine/cancels.py)."""
        return await _cancels.cancel_all(self, self.asset(ai))

    async def fetch_open_orders(self, ai: AssetInstance | str) -> list[Order]:
        ai = self.asset(ai)
        await self.sync_asset_orders(ai, trades=False)
        return ai.open_orders()

    async def sync_asset_orders(self, ai: AssetInstance, trades: bool = True) -> None:
        await _sync.sync_asset_orders(self, ai, trades=trades)

    async def refresh_balances(self) -> None:
        """Read the balances from the exchange now (REST), e.g. after cancels that released funds."""
        await _sync.sync_balances(self)

    async def fetch_balances(self, timeout: float | None = None, retries: int = 3) -> None:
        """The one REST read of the balances (start-up, re-sync, the watcher's polls, reads after fills): the
        snapshot is stamped when its request leaves, so a stream update that arrives meanwhile is not overwritten."""
        seq = self.venue.next_seq()
        report = await self.venue.balances(self.config.market_type, timeout or self.config.timeouts.balance_sync, retries=retries)
        self.apply_balance(report, stamp=report.stamp or Stamp(seq, report.time_ms, rest=True))

    async def fetch_positions(self, timeout: float | None = None, retries: int = 3) -> None:
        """The one REST read of the positions (see ``fetch_balances``)."""
        seq = self.venue.next_seq()
        reports = await self.venue.positions(list(self.universe), timeout or self.config.timeouts.position_sync, retries=retries)
        self.apply_positions(reports, complete=True, stamp=Stamp(seq, rest=True))

    async def fill_settled(self, ai: AssetInstance, trade: Trade) -> bool:
        """Wait until the balances and positions the engine holds include this fill (the exchange's numbers, from
        its stream or a REST read); False if they could not be confirmed within ``balance_watcher.fill_wait`` plus
        one read's timeout (the fill is then shown with the balances as last known). See engine/freshness.py."""
        return await self.freshness.settled(ai, trade)

    def balance_confirmed(self, ai: AssetInstance | str, trade: Trade) -> bool:
        """Whether the balances and positions held now are known to include ``trade``."""
        return self.freshness.confirmed(self.asset(ai), trade)

    # ----------------------------------------------------------------- state updates (from watchers and responses)
    def cash(self, currency: str | None = None) -> Balance:
        return self.holdings.cash(currency)

    def apply_balance(self, report: BalanceReport, stamp: Stamp | None = None) -> None:
        """Merge a balance report into the account book (engine/account_book.py), then what follows a change: spot
        exits waiting for their entry's balance, the balance hooks (the breakers), fills the report now covers.
        ``stamp``: where a REST snapshot's request left (stream reports carry theirs)."""
        if self.config.margin and self.running and report.funding:
            self.supervisor.spawn(sync_funding(self))  # read the payment from the income history, recorded once
        if self.holdings.apply_balance(report, stamp):
            if not self.config.margin:
                for ai in self.universe.values():
                    _brackets.on_spot_balance(self, ai)
            self.hooks.balance_changed(self)
        self.freshness.check()

    def apply_positions(self, reports: Sequence[PositionReport], complete: bool = False, stamp: Stamp | None = None) -> None:
        """Merge position reports into the account book (``complete``: a full snapshot, where a position it does
        not list is flat), then what follows: a position gone flat takes its attached exits with it, a change made
        outside the engine is alerted and explained, the balance hooks run."""
        changes = self.holdings.apply_positions(reports, complete, stamp)
        if changes:
            self.holdings.rederive_free()  # a free derived from the wallet before these positions counted the old ones
        for c in changes:
            if c.closed or c.flipped:
                _brackets.on_position_closed(self, self.universe[c.symbol], c.side, c.before if c.flipped else None)
            elif c.reduced and self.running:  # its exits may now sell more than is held: refused when they trigger
                self.supervisor.spawn(_brackets.fit(self, self.universe[c.symbol], "the position was reduced"))
        if changes:
            if self.config.position_watcher.alert_on_changes:
                alert_external_position_changes(self, changes)
            explain_reductions(self, changes)
            self.hooks.balance_changed(self)
        self.freshness.check()

    def apply_ohlcv(self, ai: AssetInstance, timeframe: str, candles: list[list[float]], closed_through: int | None = None) -> None:
        """Merge candles; rows with missing or non-positive prices (a malformed answer) are dropped and counted.
        ``closed_through``: the exchange's word that candles up to this opening time are final (else a candle is
        closed once a later one exists). Each newly closed candle is announced once (``BarClosed``)."""
        good = [c for c in candles or [] if _well_formed(c)]
        if len(good) != len(candles or []):
            self.sink.record(
                "error_occurred", symbol=ai.symbol, reason=f"{len(candles or []) - len(good)} malformed {timeframe} candles dropped"
            )
        if not good:
            return
        store = ai.candles(timeframe)
        store.merge(good, closed_through)
        close = store.last_close
        ai.last_price = close if close is not None else ai.last_price
        self.sink.record("ohlcv", symbol=ai.symbol, timeframe=timeframe, price=ai.last_price)  # kept only with trace_market_data
        self.hooks.price_changed(self, ai)
        for bar in store.take_closed():
            self.notify(BarClosed(ai, timeframe, bar))

    def notify(self, event: EngineEvent) -> None:
        """Hand an event (a closed bar, an order update, a fill) to every listener: the strategy's logic host
        queues it; listeners must not block. A fill is first placed among the account's reports (its balances are
        read by REST if nothing covers it in time; the logic host waits for that before ``on_fill``)."""
        if isinstance(event, Filled):
            self.freshness.fill_known(event.ai, event.order, event.trade)
        self.hooks.deliver(event)

    def apply_order(self, report: OrderReport, source: str = "exchange") -> Order | None:
        """An order report from a watcher (``websocket``) or a REST source; fills it reveals are placed by it."""
        stamp = report.stamp if source == "websocket" else None
        with self.freshness.learning(source, stamp):
            order = _updates.apply_order(self, report, source=source)
        self.freshness.note_order(order, stamp)
        return order

    def apply_trade(self, fill: FillReport) -> Trade | None:
        """A fill report from the user stream (the order watcher's websocket path)."""
        stamp = fill.stamp
        self.freshness.note_trade(fill.symbol, fill.id, stamp)
        with self.freshness.learning("websocket", stamp):
            return _updates.apply_trade(self, fill)


def _well_formed(row: object) -> bool:
    """A candle row the engine can use: a list or tuple of at least six finite numbers (time, open, high, low,
    close, volume) with positive prices. One plain loop: every candle of a backtest passes here."""
    if not isinstance(row, (list, tuple)) or len(row) < 6:
        return False
    for x in row[:6]:
        if not isinstance(x, (int, float)) or not math.isfinite(x):
            return False
    return bool(min(row[1:5]) > 0)


def strategy(
    name: str,
    mode: Live | Paper | str | None = None,
    exchange: str | None = None,
    sandbox: bool | None = None,
    *,
    config_path: str | Path | None = None,
    sink: EventSink | None = None,
    secrets_provider: Callable[[str], str | None] | None = None,
    env: dict[str, str] | None = None,
    **overrides: object,
) -> Strategy:
    """Build a Strategy from the config file (optional), ``PLANAR_*`` variables and keyword overrides.

    ``mode`` (``Live()``, ``Paper()``, ``"live"`` or ``"paper"``), ``exchange`` and ``sandbox`` override the file only
    when given. Mode may be set in the file, in ``PLANAR_MODE`` and here; two of them that disagree are an error
    (a strategy must never go live because one layer forgot to say paper). Default: live.
    Credentials are read from the environment variables the config names (or ``secrets_provider``).
    ``sandbox=False`` in live mode requires ``confirm_live_trading=True``.
    """
    given: Json = {"name": name}
    if mode is not None:
        given["mode"] = _mode_name(mode)
    if exchange is not None:
        given["exchange"] = exchange
    if sandbox is not None:
        given["sandbox"] = sandbox
    cfg = load_config(config_path, env=env, **given, **overrides)
    return strategy_from_config(cfg, sink=sink, secrets_provider=secrets_provider, env=env)


def _mode_name(mode: Live | Paper | str) -> str:
    if isinstance(mode, Paper):
        return "paper"
    if isinstance(mode, Live):
        return "live"
    if isinstance(mode, str) and mode.lower() in ("live", "paper"):
        return mode.lower()
    raise ConfigError(f"mode: expected Live(), Paper(), 'live' or 'paper', got {mode!r}")


def strategy_from_config(
    cfg: StrategyConfig,
    sink: EventSink | None = None,
    secrets_provider: Callable[[str], str | None] | None = None,
    env: dict[str, str] | None = None,
    *,
    wrap_sink: Callable[[EventSink, AlertDispatcher | None], EventSink] | None = None,
    alerts: AlertDispatcher | None = None,
    observer: TaskObserver | None = None,
) -> Strategy:
    """The composition root: a Strategy from a loaded config, every part built here and handed in.

    Live-trading confirmation, credentials (environment or ``secrets_provider``), the account's event trace (or
    the strategy's side trace if another process writes it), ``wrap_sink`` around it (the orchestrator's event
    sink: it sees every event the engine and its exchange client record), the alert channels (``alerts``, else
    the config's), the exchange client on that sink, the observer of the engine's tasks (the orchestrator shows each
    watcher as a unit of its own), and the strategy with its risk manager."""
    if not cfg.sandbox and cfg.mode == "live" and not cfg.confirm_live_trading:
        raise ConfigError(
            "confirm_live_trading: sandbox=False in live mode trades real money; set confirm_live_trading=True "
            "(CLI: --i-understand-live-trading)"
        )
    import os

    creds = cfg.credentials.resolved(os.environ if env is None else env, secrets_provider, credential_fields(cfg.exchange))
    cfg = cfg.model_copy(update={"credentials": creds})
    if cfg.mode == "live" and (creds.api_key is None or creds.api_secret is None):
        raise ConfigError(f"credentials: live mode needs {creds.api_key_env} and {creds.api_secret_env} (environment or secrets provider)")
    damaged: list[CorruptStateError] = []
    opened = None
    if sink is None:
        sink = opened = open_trace(cfg, damaged) if cfg.event_tracing.enabled else MemorySink()
    try:
        alerts = alerts if alerts is not None else configured_alerts(cfg)
        if wrap_sink is not None:
            sink = wrap_sink(sink, alerts)
        s = Strategy(cfg, build_parts(cfg, sink=sink, venue=engine_venue(cfg, sink), alerts=alerts, observer=observer))
    except BaseException:
        from ..trace import EventTrace

        if isinstance(opened, EventTrace):  # opened here: let go of it, or this process's retry finds it held
            opened.abandon()
        raise
    s.gate.found_unreadable(damaged)  # it may stop (an e-stop may cancel); it may not start
    return s


def trace_root(cfg: StrategyConfig, secrets_provider: Callable[[str], str | None] | None = None) -> str:
    """One trace per exchange account: ``<store_root>/traces/<account>`` (paper: per strategy); credentials not in
    the config are resolved as ``config_account`` does."""
    if cfg.event_tracing.root:
        return cfg.event_tracing.root
    return f"{cfg.store_root.rstrip('/')}/traces/{config_account(cfg, secrets_provider)}"


def side_trace_root(cfg: StrategyConfig) -> str:
    """Where a second process (e-stop, tuning, reset) records while the live engine holds the account trace."""
    return f"{cfg.store_root.rstrip('/')}/{cfg.name}/side-trace"


def open_trace(cfg: StrategyConfig, damaged: list[CorruptStateError] | None = None) -> EventSink:
    """The account's trace; if another process is its writer, this strategy's side trace (and a warning). A trace
    whose manifest cannot be read (nor recovered from its copy) raises ``CorruptStateError``; with ``damaged``,
    the error is added to it and the side trace is used instead (an emergency stop must still cancel; the
    strategy refuses to start)."""
    from ..trace import EventTrace, TraceLockedError

    t = cfg.event_tracing
    opts = partial(
        EventTrace,
        flush_interval=t.flush_interval,
        trace_market_data=t.trace_market_data,
        trace_api_calls=t.trace_api_calls,
        fsync=t.fsync,
        background=True,  # its checkpoints off the event loop
    )

    def side() -> EventSink:
        """The side trace; if a process of this strategy writes it too (an engine that started while another
        strategy held the account trace, now hung), one of this process's own: an emergency stop must never fail
        for want of a trace to record in (an outside trial: every strategy e-stop of a frozen second engine failed
        with TraceLockedError, its orders left open)."""
        try:
            return opts(side_trace_root(cfg))
        except TraceLockedError as exc:
            own = f"{side_trace_root(cfg)}-{os.getpid()}"
            log.warning("%s; recording to %s instead", exc, own)
            return opts(own)

    try:
        return opts(trace_root(cfg))
    except TraceLockedError as exc:
        log.warning("%s; recording to %s instead", exc, side_trace_root(cfg))
        return side()
    except CorruptStateError as exc:
        if damaged is None:
            raise
        log.error("%s; recording to %s instead", exc, side_trace_root(cfg))
        damaged.append(exc)
        return side()


__all__ = ["Live", "Paper", "Strategy", "strategy", "strategy_from_config"]
