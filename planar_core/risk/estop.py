"""The emergency stop: halt, cancel everything, optionally flatten, alert, record. Idempotent.

Works on a running strategy and standalone (``emergency_stop_standalone``),
from nothing but the config and credentials, so a fresh process can stop a
strategy whose engine is dead or hung. Cancels run per asset in parallel
(ccxt's throttle and the weight guard pace them); every step is verified
against the exchange and retried; whatever is still open at the end is
reported, not hidden.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..exchange.errors import ExchangeOpError, OrderNotFound

if TYPE_CHECKING:
    from ..engine.strategy import Strategy

log = logging.getLogger("planar.risk.estop")


@dataclass
class EStopReport:
    reason: str
    cancelled: int = 0
    closed: dict[str, float] = field(default_factory=dict)  # symbol -> amount closed
    remaining_open: dict[str, int] = field(default_factory=dict)  # symbol -> orders still open
    remaining_positions: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.remaining_open and not self.remaining_positions

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "clean": self.clean}


async def _cancel_asset(s: "Strategy", symbol: str, attempts: int, report: EStopReport) -> None:
    ex = s.client.ex
    t = s.config.timeouts.order_cancellation
    for attempt in range(attempts):
        try:
            open_orders = await s.client.call("fetch_open_orders", lambda: ex.fetch_open_orders(symbol), t, retries=5)
        except ExchangeOpError as err:
            report.errors.append(f"{symbol}: fetch_open_orders: {err}")
            await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))
            continue
        if not open_orders:
            report.remaining_open.pop(symbol, None)
            return
        report.remaining_open[symbol] = len(open_orders)
        try:
            await s.client.call("cancel_all_orders", lambda: ex.cancel_all_orders(symbol), t, retries=5)
            report.cancelled += len(open_orders)
        except OrderNotFound:
            pass  # they closed meanwhile
        except ExchangeOpError as err:
            report.errors.append(f"{symbol}: cancel_all_orders: {err}")
            await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))


async def _close_asset(s: "Strategy", symbol: str, attempts: int, report: EStopReport) -> None:
    """Flatten one asset: futures with a reduce-only market order, spot by selling the base holdings."""
    ai = s.universe[symbol]
    ex = s.client.ex
    t = s.config.timeouts.order_placement
    for attempt in range(attempts):
        try:
            if ai.is_margin:
                positions = await s.client.call("fetch_positions", lambda: ex.fetch_positions([symbol]), t, retries=5)
                amount = sum(float(p.get("contracts") or 0) * (-1 if p.get("side") == "short" else 1)
                             for p in positions if p.get("symbol") == symbol)
            else:
                bal = await s.client.call("fetch_balance", lambda: ex.fetch_balance(), t, retries=5)
                amount = float((bal.get(ai.base) or {}).get("free") or 0.0)
            qty = float(ex.amount_to_precision(symbol, abs(amount))) if abs(amount) > 0 else 0.0
        except ExchangeOpError as err:
            report.errors.append(f"{symbol}: reading position: {err}")
            await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))
            continue
        except Exception:  # amount_to_precision: below the market's precision -> nothing to close
            qty = 0.0
        min_cost = ((ai.market.get("limits") or {}).get("cost") or {}).get("min") or 0.0
        if qty <= 0 or (not ai.is_margin and qty * (ai.last_price or 0.0) < min_cost and ai.last_price):
            report.remaining_positions.pop(symbol, None)
            return
        report.remaining_positions[symbol] = amount
        side = "sell" if amount > 0 else "buy"
        cid = s.ids.next()
        s.journal.intent(cid, symbol=symbol, side=side, type="market", amount=qty, price=None, reduce_only=ai.is_margin, estop=True)
        s.sink.record("order_placed", symbol=symbol, client_order_id=cid, side=side, amount=qty, order_type="market", reason="emergency_stop")
        params: dict[str, Any] = {"clientOrderId": cid}
        if ai.is_margin:
            params["reduceOnly"] = True
        try:
            await s.client.call("create_order", lambda: ex.create_order(symbol, "market", side, qty, None, params), t, idempotent=False)
            s.journal.outcome(cid, "accepted")
            report.closed[symbol] = report.closed.get(symbol, 0.0) + qty
        except ExchangeOpError as err:
            s.journal.outcome(cid, "failed")
            report.errors.append(f"{symbol}: closing order: {err}")
            await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))


async def emergency_stop(s: "Strategy", reason: str = "Manual trigger", close_positions: bool | None = None,
                         attempts: int = 8) -> EStopReport:
    """Halt (persisted), cancel every open order on every universe asset, optionally close positions, alert, record."""
    started = time.perf_counter()
    close = s.config.risk.emergency_close_positions if close_positions is None else close_positions
    log.error("EMERGENCY STOP TRIGGERED: %s", reason)
    s.halt(reason, by_emergency_stop=True)
    report = EStopReport(reason)
    symbols = list(s.universe)
    await asyncio.gather(*(_cancel_asset(s, sym, attempts, report) for sym in symbols))
    if close:
        await asyncio.gather(*(_close_asset(s, sym, attempts, report) for sym in symbols))
        await asyncio.gather(*(_cancel_asset(s, sym, 2, report) for sym in symbols))
    for ai in s.universe.values():  # local state follows the exchange
        for order in ai.open_orders():
            if order.id is not None or order.status == "open":
                order.status = "canceled"
    report.seconds = time.perf_counter() - started
    s.sink.record("emergency_stop", reason=reason, payload=report.as_dict())
    s.sink.flush()
    message = (f"EMERGENCY STOP ({s.name}): {reason}. Cancelled {report.cancelled} orders"
               + (f", closed {report.closed}" if report.closed else "")
               + ("" if report.clean else f"; STILL OPEN orders {report.remaining_open} positions {report.remaining_positions}"))
    from ..alerts.dispatcher import send_alert

    send_alert(s, message, "critical")
    for hook in list(getattr(s, "on_emergency_stop", [])):
        try:
            hook(s, report)
        except Exception:
            log.exception("emergency stop hook failed")
    return report


async def emergency_stop_standalone(config: Any, reason: str, close_positions: bool | None = None, env: dict[str, str] | None = None,
                                    secrets_provider: Any = None) -> EStopReport:
    """The e-stop from a fresh process: build the strategy from its config and credentials, no watchers, no engine.

    The trace is the account's; if a live engine still holds its writer lock, the e-stop writes its events to
    the strategy's side trace instead of waiting for it."""
    from ..config import StrategyConfig, load_config
    from ..engine.strategy import strategy_from_config

    cfg = config if isinstance(config, StrategyConfig) else load_config(config, env=env)
    s = strategy_from_config(cfg, secrets_provider=secrets_provider, env=env)
    try:
        await s.load()
        return await emergency_stop(s, reason, close_positions)
    finally:
        await s.stop()
