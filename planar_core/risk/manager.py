"""Pre-trade checks, circuit breakers and the risk monitor of one strategy.

Built by the composition root (engine/parts.py) from the risk settings, the state store and the sink; it keeps no
strategy. The engine wires it (``Strategy._wire_risk``): ``check`` is the pre-trade hook, ``evaluate_breakers``
listens to every balance, position and price update (the breakers are event-driven), ``monitor_body``
runs with the watchers and ``connection_lost`` answers a lost exchange connection. Each is handed the strategy it
acts on (its equity, its e-stop, its positions). Risk knows nothing of the engine's hook lists.

Volatility adjustment rule: when ``volatility_adjustment`` is on, the order
amount is multiplied by ``target_volatility / realized_volatility`` of the
asset's 1m returns over the last hour, bounded to [0.25, 1] (never enlarged).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..config import RiskConfig
from ..model import OrderAnswer, PositionSide, Refusal, RefusalReason, Side
from ..model.clock import Clock
from ..model.sink import EventSink
from ..model.types import Json
from ..state import StateStore
from . import metrics as M
from .estop import EStopReport, emergency_stop

if TYPE_CHECKING:
    from ..engine.strategy import Strategy
    from ..model import AssetInstance, OrderRequest
    from ..model.health import TaskHealth

log = logging.getLogger("planar.risk")
CONFIRM_S = 2.0  # the longest a breaker's trip waits for the prices that confirm it (futures positions open)
VOL_FACTOR_BOUNDS = (0.25, 1.0)


def _limit(detail: str) -> Refusal:
    return Refusal(RefusalReason.RISK_LIMIT, detail)


def utc_day(clock: Clock | None = None) -> str:
    """Today's UTC date on ``clock`` (the engine's: a backtest's days are the market's, so its daily-loss breaker
    starts each simulated day afresh), else the machine's."""
    at = clock.time() if clock is not None else time.time()
    return _day_name(int(at // 86_400))


@functools.lru_cache(maxsize=4)
def _day_name(day: int) -> str:  # the breakers ask on every price update
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


class RiskManager:
    def __init__(self, cfg: RiskConfig, state_store: StateStore, sink: EventSink, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.state_store = state_store
        self.sink = sink
        self.clock = clock
        self.last: M.RiskMetrics | None = None
        self._estop_task: asyncio.Task[object] | None = None
        self._repricing: asyncio.Task[None] | None = None  # a trip's confirmation at prices read now (_confirm)
        self.estop_reports: list[EStopReport] = []
        self.breaker_trips: list[tuple[float, str]] = []
        self._unpriced: tuple[str, ...] = ()
        self._correlated = False  # the last monitor run found the correlation risk above its limit

    async def connection_lost(self, s: "Strategy", reason: str) -> None:
        await self.trip(s, reason, kind="connection_lost")

    # ------------------------------------------------------------- pre-trade
    @staticmethod
    def _holding(s: "Strategy", ai: "AssetInstance") -> float:
        return ai.position.contracts if ai.is_margin else s.cash(ai.base).total

    def scale_amount(self, s: "Strategy", ai: "AssetInstance", side: Side, amount: float, reduce_only: bool) -> float:
        """Volatility sizing, applied by the order call *before* rounding and the market's limit checks."""
        if not self.cfg.volatility_adjustment or reduce_only:
            return amount
        held = self._holding(s, ai)
        signed = amount if side is Side.BUY else -amount
        if abs(held + signed) < abs(held) - 1e-12:
            return amount  # reducing: never shrunk
        vol = M.realized_volatility(ai)
        if math.isnan(vol) or vol <= 0:
            return amount
        factor = min(max(self.cfg.target_volatility / vol, VOL_FACTOR_BOUNDS[0]), VOL_FACTOR_BOUNDS[1])
        if factor < 1.0:
            log.info(
                "volatility %.4f > target %.4f: %s amount %g -> %g", vol, self.cfg.target_volatility, ai.symbol, amount, amount * factor
            )
        return amount * factor

    def check(self, s: "Strategy", ai: "AssetInstance", req: "OrderRequest") -> Refusal | None:
        """The pre-trade hook: why ``req`` would break a limit (a ``risk_limit`` refusal; ``valuation_incomplete``
        when equity cannot be valued and ``refuse_when_unvalued`` is on), or None.

        A limit is checked against the worst case: the holding now, plus every order of the strategy on the asset
        that may still be live and adds in the same direction (resting, being sent, of unknown outcome, a stop not
        yet triggered; ``metrics.queued``), plus this one. The order call books an order before the next call's check
        runs (no await between them), so orders sent at once see each other. In hedge mode the side the order
        opens is the position checked, and gross exposure counts the long and the short side. An order that only
        reduces (reduce-only, a spot sell, closing a hedge side, or making the worst case smaller) is never refused."""
        cfg = self.cfg
        per_asset = cfg.position_limit is not None or ai.max_position is not None or ai.risk_per_trade is not None
        gross_limits = cfg.max_total_exposure is not None or cfg.max_leverage is not None or bool(cfg.sector_limit and cfg.sectors)
        if req.reduce_only or (not ai.is_margin and req.side is Side.SELL):
            return None  # a spot sell cannot go below nothing held (the cash check), so it only reduces
        ps = req.position_side if ai.hedged else PositionSide.BOTH
        if ai.hedged and (req.side is Side.BUY) != (ps is PositionSide.LONG):
            return None  # closes its side (the cash check holds it to that side's size)
        signed = req.amount if req.side is Side.BUY else -req.amount
        before = M.holding(s, ai, ps) + (M.queued(s, ai, req.side, ps) if per_asset or gross_limits else 0.0)
        if abs(before + signed) < abs(before) - 1e-12:
            return None  # an order that reduces risk is never refused by a limit
        rates = M.Rates(s)  # one moment's prices for every figure below
        eq, unpriced = M.equity(s, rates)
        after = M.value_of(s, ai, before + signed, rates)
        if unpriced or math.isnan(after):
            missing = unpriced or [ai.symbol]
            if cfg.refuse_when_unvalued:
                detail = f"valuation incomplete: cannot value {missing} in {s.config.main_currency}; risk-increasing orders refused"
                return Refusal(RefusalReason.VALUATION_INCOMPLETE, detail)
            return None
        if eq <= 0:
            return _limit(f"equity {eq:.2f} <= 0")
        queued = " with the strategy's open orders" if abs(before - M.holding(s, ai, ps)) > 1e-12 else ""
        notional = abs(M.value_of(s, ai, signed, rates))
        if ai.risk_per_trade is not None and notional / eq > ai.risk_per_trade + 1e-12:
            return _limit(f"risk_per_trade: order {notional / eq:.4f} of equity > {ai.risk_per_trade}")
        if ai.max_position is not None and abs(after) / eq > ai.max_position + 1e-12:
            return _limit(f"max_position: {ai.symbol} would be {abs(after) / eq:.4f} of equity{queued} > {ai.max_position}")
        if cfg.position_limit is not None and abs(after) / eq > cfg.position_limit + 1e-12:
            return _limit(f"position_limit: {ai.symbol} would be {abs(after) / eq:.4f} of equity{queued} > {cfg.position_limit}")
        if gross_limits:
            exposure = {sym: M.worst_exposure(s, a, rates) for sym, a in s.universe.items() if sym != ai.symbol}
            exposure[ai.symbol] = M.worst_exposure(s, ai, rates, add=(req.side, ps, req.amount))
            gross = sum(v for v in exposure.values() if math.isfinite(v))
            if cfg.max_total_exposure is not None and gross / eq > cfg.max_total_exposure + 1e-12:
                return _limit(f"max_total_exposure: {gross / eq:.4f} (every open order filled) > {cfg.max_total_exposure}")
            if cfg.max_leverage is not None and gross / eq > cfg.max_leverage + 1e-12:
                return _limit(f"max_leverage: {gross / eq:.4f} (every open order filled) > {cfg.max_leverage}")
            sector = cfg.sectors.get(ai.base) if cfg.sector_limit is not None else None
            if cfg.sector_limit is not None and sector is not None:
                in_sector = sum(v for sym, v in exposure.items() if cfg.sectors.get(s.universe[sym].base) == sector and math.isfinite(v))
                if in_sector / eq > cfg.sector_limit + 1e-12:
                    return _limit(f"sector_limit: {sector} would be {in_sector / eq:.4f} of equity > {cfg.sector_limit}")
        if cfg.correlation_limit is not None:
            for sym, a in s.universe.items():
                v = M.position_value(s, a, rates=rates)
                if sym == ai.symbol or not math.isfinite(v) or abs(v) < 1e-9 or M.is_dust(s, a):
                    continue  # a leftover no order can trade is no position to correlate with (model/dust.py)
                c = M.correlation(ai, a)
                same_direction = (v > 0) == (after > 0)
                if not math.isnan(c) and same_direction and c > cfg.correlation_limit:
                    return _limit(f"correlation_limit: {ai.symbol} and {sym} correlate {c:.2f} > {cfg.correlation_limit}")
        return None

    # ------------------------------------------------------------- breakers
    def _day_and_peak(self, eq: float) -> tuple[float, float]:
        """Day-start and peak equity, kept in the persisted state so restarts and the daily-reset flow share them."""
        st = self.state_store.load()
        changes: Json = {}
        today = utc_day(self.clock)
        if st.day != today or st.day_start_equity is None:
            changes.update(day=today, day_start_equity=eq)
        peak = max(st.peak_equity or eq, eq)
        if st.peak_equity is None or peak > st.peak_equity * (1 + 1e-9):
            changes["peak_equity"] = peak
        if changes:
            st = self.state_store.update(**changes)
        return float(st.day_start_equity or eq), float(st.peak_equity or eq)

    def _valuation(self, s: "Strategy", unpriced: list[str]) -> bool:
        """Record (and alert) when valuation becomes incomplete or complete again; True when complete."""
        if not unpriced and not self._unpriced:  # complete, as before: the usual case, on every price update
            return True
        missing = tuple(sorted(unpriced))
        if missing != self._unpriced:
            self._unpriced = missing
            if missing:
                msg = (
                    f"{s.name}: equity cannot be computed, no price path to {s.config.main_currency} for {list(missing)}; "
                    "circuit breakers cannot compare equity and risk-increasing orders are "
                    + ("refused" if self.cfg.refuse_when_unvalued else "allowed")
                )
                s.sink.record("valuation_incomplete", unpriced=list(missing), reason=msg)
                log.error(msg)
                s.alert(msg, "error")
            else:
                s.sink.record("valuation_incomplete", unpriced=[], reason="valuation complete again")
        return not missing

    def evaluate_breakers(self, s: "Strategy", confirmed: bool = False) -> str | None:
        """Daily-loss and drawdown breakers of ``s``; called on every balance, position and price update. A trip
        with futures positions open is confirmed first at prices read from the exchange now (``_confirm``), unless
        ``confirmed``: their unrealized PnL is marked at the last price the market data brought, which can be older
        than the balance that moved. An outside margin trial: one side of a hedge liquidated, the wallet after the
        loss was added to the other side marked at the price before the move, and the drawdown breaker tripped at
        11.1 % where the exchange's equity was 5.7 % down; its e-stop then closed the surviving side (2 of 2)."""
        st = s.state
        if not s.running or st.halted or st.breaker_tripped or not s.holdings.balances:
            return None  # tripped once: later updates before the e-stop halts must not trip (and fire automations) again
        if self._repricing is not None and not self._repricing.done() and not confirmed:
            return None  # a confirmation is under way: it evaluates again with what has come meanwhile
        eq, unpriced = M.equity(s)
        if not self._valuation(s, unpriced):
            return None
        day_start, peak = self._day_and_peak(eq)  # equity at or below zero is a loss like any other (a cross wallet in debt)
        reason = None
        if self.cfg.max_daily_loss is not None and day_start - eq > self.cfg.max_daily_loss:
            reason = f"Daily loss limit exceeded: {eq - day_start:.2f} {s.config.main_currency}"
            kind = "daily_loss"
        elif self.cfg.max_drawdown is not None and peak > 0 and (peak - eq) / peak > self.cfg.max_drawdown:
            reason = f"Maximum drawdown exceeded: {(peak - eq) / peak * 100:.2f}%"
            kind = "drawdown"
        if reason is None:
            return None
        positions = [ai.symbol for ai in s.universe.values() if ai.is_margin and ai.open_positions()]
        if positions and not confirmed and not s.driven:
            self._repricing = asyncio.ensure_future(self._confirm(s, positions))
            return None
        self.breaker_trips.append((time.perf_counter(), reason))
        s.state_store.update(breaker_tripped=kind)
        s.sink.record("breaker_tripped", breaker=kind, reason=reason, equity=eq, day_start_equity=day_start, peak_equity=peak)
        log.error("circuit breaker %s tripped: %s", kind, reason)
        self._schedule_estop(s, reason)
        return reason

    async def _confirm(self, s: "Strategy", symbols: list[str]) -> None:
        """The positions' prices read from the exchange now (at most ``CONFIRM_S``), then the breakers evaluated
        again: tripped on the figure at those prices. Not read (an error, a timeout): the breakers evaluate the figure
        they have (a trip is never lost for want of a price)."""
        try:
            tickers = await asyncio.wait_for(s.venue.tickers(symbols, CONFIRM_S), CONFIRM_S)
        except Exception as exc:  # the exchange did not answer: the figure as it is
            log.warning("breakers: prices to confirm a trip could not be read (%s: %s); evaluated as they are", type(exc).__name__, exc)
        else:
            for sym, tk in tickers.items():
                if sym in s.universe and tk.last is not None and tk.last > 0:
                    s.universe[sym].last_price = float(tk.last)
        self.evaluate_breakers(s, confirmed=True)

    def _schedule_estop(self, s: "Strategy", reason: str) -> None:
        if self._estop_task is not None and not self._estop_task.done():
            return
        if self.cfg.emergency_stop:
            self._estop_task = asyncio.ensure_future(self._run_estop(s, reason))
        else:
            s.halt(reason)

    async def _run_estop(self, s: "Strategy", reason: str) -> None:
        report = await emergency_stop(s, reason)
        self.estop_reports.append(report)

    async def trip(self, s: "Strategy", reason: str, kind: str = "manual") -> EStopReport:
        """Stop ``s`` now (its emergency stop), recording which breaker asked."""
        self.sink.record("breaker_tripped", breaker=kind, reason=reason)
        report = await emergency_stop(s, reason)
        self.estop_reports.append(report)
        return report

    @property
    def estop_pending(self) -> bool:
        """A breaker's emergency stop is scheduled or running."""
        return self._estop_task is not None and not self._estop_task.done()

    async def wait_estop(self) -> EStopReport | None:
        if self._estop_task is not None:
            await self._estop_task
        return self.estop_reports[-1] if self.estop_reports else None

    # ------------------------------------------------------------- monitor
    def metrics(self, s: "Strategy") -> M.RiskMetrics:
        """The risk figures of ``s`` now (kept as ``last``)."""
        st = self.state_store.load()
        self.last = M.compute(s, st.day_start_equity, st.peak_equity)
        return self.last

    async def monitor_body(self, s: "Strategy", health: "TaskHealth") -> None:
        while s.running:  # checked at once, then every interval: a status says "ok" from the first publish
            await self.monitor_once(s)
            health.seen("ok")
            await asyncio.sleep(self.cfg.monitor_interval)

    async def monitor_once(self, s: "Strategy") -> M.RiskMetrics:
        m = self.metrics(s)
        self.sink.record("risk_metrics", payload={k: v for k, v in m.as_dict().items() if k != "positions"})
        log.info(
            "Risk status equity=%.2f daily_pnl=%.2f drawdown=%.4f exposure=%.3f leverage=%.3f corr=%.2f liq=%.4f vol=%.5f",
            m.equity,
            m.daily_pnl,
            m.drawdown,
            m.total_exposure,
            m.leverage,
            m.correlation_risk,
            m.liquidity_risk,
            m.volatility,
        )
        cfg = self.cfg
        if s.state.halted:
            return m
        if cfg.max_total_exposure is not None and m.total_exposure > cfg.max_total_exposure:
            log.error("Total exposure limit exceeded: %.3f", m.total_exposure)
            await self.reduce_all_positions(s, 0.7, f"total exposure {m.total_exposure:.3f} > {cfg.max_total_exposure}")
        if cfg.max_leverage is not None and m.leverage > cfg.max_leverage:
            log.error("Leverage limit exceeded: %.3f", m.leverage)
            await self.close_highest_risk_position(s, f"leverage {m.leverage:.3f} > {cfg.max_leverage}")
        if cfg.max_volatility_threshold is not None and not math.isnan(m.volatility) and m.volatility > cfg.max_volatility_threshold:
            log.warning("High market volatility detected: %.5f", m.volatility)
            await self.reduce_all_positions(s, 0.5, f"volatility {m.volatility:.5f} > {cfg.max_volatility_threshold}")
        self._watch_correlation(s, m.correlation_risk, cfg.correlation_limit or 0.8)
        return m

    def _watch_correlation(self, s: "Strategy", risk: float, limit: float) -> None:
        """Warn when the correlation risk crosses above its limit, once, and note when it is back under it. Why on
        the crossing: the figure stays up for as long as the positions are held, and an alert on every monitor run
        (every 30 s; its text carries the figure, so the dispatcher's duplicate filter let each through) buried
        the alerts that need a person."""
        above = risk > limit
        if above and not self._correlated:
            log.warning("High correlation risk detected: %.2f > %.2f", risk, limit)
            from ..alerts.dispatcher import send_alert

            send_alert(
                s, f"High correlation risk detected: {risk:.2f} > {limit:.2f} (no further alert until it falls back under)", "warning"
            )
        elif self._correlated and not above:
            log.info("Correlation risk back under its limit: %.2f <= %.2f", risk, limit)
        self._correlated = above

    async def reduce_all_positions(self, s: "Strategy", keep: float, reason: str) -> None:
        """Reduce every position of ``s`` to ``keep`` of its size."""
        for ai in list(s.universe.values()):
            if ai.open_positions() if ai.is_margin else self._holding(s, ai):  # a hedged pair nets to nothing
                log.warning("reducing %s by %.0f%%: %s", ai.symbol, (1 - keep) * 100, reason)
                await self.reduce_position(s, ai, 1 - keep, reason)

    async def close_highest_risk_position(self, s: "Strategy", reason: str) -> None:
        """Close the largest position by value (the strategy's own part of it: ``reduce_position``), gross: a hedge's
        long and short summed, as the leverage that asks for it is. By net value a fully hedged pair was worth 0, and
        the leverage limit stayed exceeded, logged on every run and never acted on (an outside margin trial)."""
        values = {sym: M.gross_value(s, ai) if ai.is_margin else M.position_value(s, ai) for sym, ai in s.universe.items()}
        values = {k: v for k, v in values.items() if math.isfinite(v) and v}
        if not values:
            return
        sym = max(values, key=lambda k: abs(values[k]))
        log.warning("closing highest-risk position %s: %s", sym, reason)
        await self.reduce_position(s, s.universe[sym], 1.0, reason)

    async def reduce_position(self, s: "Strategy", ai: "AssetInstance", fraction: float, reason: str) -> OrderAnswer:
        """Sell (or buy back) ``fraction`` of one position with a market order, its exits kept (engine/reducing.py);
        recorded (``risk_action``) and alerted: a position flattened by the monitor was said only in a log line."""
        msg = f"{s.name}: risk action on {ai.symbol}: {reason}: reducing the strategy's own position by {fraction:.0%}"
        self.sink.record("risk_action", symbol=ai.symbol, reason=msg)
        s.alert(msg, "warning")
        return await s.reduce_position(ai, fraction, reason)
