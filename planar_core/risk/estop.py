"""The emergency stop of one strategy: halt, cancel its orders, optionally flatten, alert, record. Idempotent.

Works on a running strategy and standalone (``runner.emergency_stop_standalone``), from nothing but the config and
credentials, so a fresh process can stop a strategy whose engine is dead or hung. Cancels run per asset in
parallel; every step is verified against the exchange and retried until ``risk.estop_budget_s`` runs out.

A strategy's e-stop cancels its own orders only (by id, never Binance's account-wide DELETE openOrders): the
account may carry other strategies' orders on the same symbols, and they stay open (counted in ``left_alone``).
Stopping a whole account is the account emergency stop (``risk.account_estop``).

Nothing is reported clean without the exchange's word: a symbol whose open orders could not be listed, or
whose cancels were not confirmed by a later listing, is *unverified*; a position whose size could not be read is
*unknown*, never flat. Local orders keep their status until the exchange reports how they ended. The report
says exactly what is unverified (it is in the alert, the trace, the flow artifact and the CLI's exit code), and
the strategy stays halted either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..exchange.client import CancelTarget
from ..exchange.errors import ExchangeOpError
from ..model.json import num, obj
from ..model.types import Json

if TYPE_CHECKING:
    from ..engine.strategy import Strategy
    from ..model import AssetInstance

log = logging.getLogger("planar.risk.estop")


@dataclass
class EStopReport:
    reason: str
    cancelled: int = 0  # orders seen open and confirmed no longer open
    closed: dict[str, float] = field(default_factory=dict)  # symbol -> amount sent to close
    remaining_open: dict[str, int] = field(default_factory=dict)  # symbol -> orders the exchange still lists open
    remaining_positions: dict[str, float] = field(default_factory=dict)  # symbol -> size the exchange still reports
    unverified: dict[str, str] = field(default_factory=dict)  # "symbol: what" -> why it could not be confirmed
    left_alone: dict[str, int] = field(default_factory=dict)  # symbol -> open orders on the account that are not ours
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        """True only when the exchange itself confirmed: no open order, no position left, nothing unverified."""
        return not self.remaining_open and not self.remaining_positions and not self.unverified

    def summary(self) -> str:
        others = f"; other strategies' / foreign orders left open {self.left_alone}" if self.left_alone else ""
        if self.clean:
            return f"clean: {self.cancelled} orders cancelled" + (f", closed {self.closed}" if self.closed else "") + others
        parts = not_clean_parts(self.remaining_open, self.remaining_positions, self.unverified)
        return f"NOT CLEAN after {self.seconds:.1f}s: " + "; ".join(parts) + f" (cancelled {self.cancelled})"

    def outstanding(self) -> dict[str, str]:
        """What the exchange has not confirmed settled, as persisted for re-arm to check: the unverified entries
        and the symbols still listing open orders."""
        return {**self.unverified, **{f"{sym}: still open": f"{n} order(s)" for sym, n in self.remaining_open.items()}}

    def as_dict(self) -> Json:
        return {**vars(self), "clean": self.clean}


def not_clean_parts(remaining_open: dict[str, int], remaining_positions: dict[str, float], unverified: dict[str, str]) -> list[str]:
    """What keeps an e-stop (a strategy's or an account's) from being clean, in the words its summary uses."""
    parts = []
    if remaining_open:
        parts.append(f"STILL OPEN orders {remaining_open}")
    if remaining_positions:
        parts.append(f"STILL OPEN positions {remaining_positions}")
    if unverified:
        parts.append(f"UNVERIFIED {unverified}")
    return parts


def pause(attempt: int) -> float:
    return min(2.0, 0.1 * 2**attempt)


def _target(s: "Strategy", raw: Json) -> CancelTarget:
    """How the exchange names a listed order for its cancel: by id (a futures conditional order still waiting is
    an Algo Service record, cancelled there)."""
    oid = raw.get("id")
    return CancelTarget(str(raw.get("clientOrderId")), None if oid is None else str(oid), s.client.venue.is_algo_record(raw))


def _ours(s: "Strategy", symbol: str, raw: Json) -> bool:
    """A listed order this strategy tracks once the listing was applied: its own (the id encodes its identity) or
    one it adopted by its foreign-order policy. Never another strategy's (``engine.updates`` never admits those)."""
    ai = s.universe.get(symbol)
    if ai is None:
        return False
    cid, oid = raw.get("clientOrderId"), raw.get("id")
    if cid is not None and str(cid) in ai.orders:
        return True
    return oid is not None and not s.client.venue.is_algo_record(raw) and ai.order_by_id(str(oid)) is not None


async def _cancel_asset(s: "Strategy", symbol: str, deadline: float, report: EStopReport) -> None:
    """Cancel this strategy's open orders on ``symbol`` (by id, batched where the venue allows) until a listing of
    the open orders shows none of them, or the budget ends. Other strategies' orders on the account stay open."""
    loop = asyncio.get_running_loop()
    key = f"{symbol}: open orders"
    report.unverified.setdefault(key, "not listed yet")  # until the exchange lists them
    seen: set[str] = set()
    attempt = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            open_orders = await s.client.open_orders(symbol, remaining, retries=0)  # futures: conditional orders too
        except ExchangeOpError as err:
            report.unverified[key] = f"could not list open orders: {type(err).__name__}: {err}"[:300]
            report.errors.append(f"{symbol}: fetch_open_orders: {err}"[:300])
            await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
            attempt += 1
            continue
        with s.group():
            for raw in open_orders:
                s.apply_order(raw, source="estop")
        mine = [raw for raw in open_orders if _ours(s, symbol, raw)]
        others = len(open_orders) - len(mine)
        if others:
            report.left_alone[symbol] = others
        else:
            report.left_alone.pop(symbol, None)
        ids = {str(o.get("id")) for o in mine}
        report.cancelled += len(seen - ids)
        seen -= seen - ids
        report.unverified.pop(key, None)
        if not mine:
            report.remaining_open.pop(symbol, None)
            return
        seen |= ids
        report.remaining_open[symbol] = len(mine)
        result = await s.client.cancel_orders(symbol, [_target(s, raw) for raw in mine], max(0.1, deadline - loop.time()), retries=0)
        with s.group():
            for cid, raw in result.cancelled.items():
                s.apply_order({**raw, "symbol": symbol, "clientOrderId": cid, "status": raw.get("status") or "canceled"}, source="estop")
        if result.unconfirmed:  # closed meanwhile, or not reached: the next listing says
            report.errors.extend(f"{symbol}: cancel {cid}: {why}"[:300] for cid, why in list(result.unconfirmed.items())[:5])
            await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
            attempt += 1


async def _settle_local(s: "Strategy", symbol: str) -> None:
    """The exchange lists no open order on ``symbol`` any more: learn how each local one ended (one history
    request). An order it does not report keeps its status; orders without an exchange id are the resolver's."""
    ai = s.universe.get(symbol)
    left = [o for o in ai.open_orders() if o.id is not None] if ai is not None else []
    if not left:
        return
    since = min(o.timestamp for o in left) - 60_000
    try:
        history = await s.client.order_history(symbol, s.config.timeouts.order_cancellation, since=since)
    except ExchangeOpError as err:
        log.warning("after the e-stop, could not learn how the orders on %s ended: %s", symbol, err)
        return
    cids = {o.client_order_id for o in left}
    with s.group():  # one durable write for the whole batch
        for raw in history:
            if str(raw.get("clientOrderId")) in cids or s.universe[symbol].order_by_id(str(raw.get("id"))) in left:
                s.apply_order(raw, source="estop")


async def _close_asset(s: "Strategy", symbol: str, deadline: float, report: EStopReport) -> None:
    """Flatten one asset: futures with a reduce-only market order, spot by selling the free base balance; then
    read the position again until the exchange reports it flat."""
    loop = asyncio.get_running_loop()
    ai = s.universe[symbol]
    ex = s.client.ex
    key = f"{symbol}: position"
    report.unverified.setdefault(key, "not read: the budget ran out before the position could be read")
    attempt = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            if ai.is_margin:
                positions = await s.client.call(
                    "fetch_positions", lambda: ex.fetch_positions([symbol]), remaining, retries=0, validate=lambda x: isinstance(x, list)
                )
                s.apply_positions(positions, complete=True)
                amount = sum(
                    float(p.get("contracts") or 0) * (-1 if p.get("side") == "short" else 1) for p in positions if p.get("symbol") == symbol
                )
            else:
                await s.refresh_balances()
                amount = s.cash(ai.base).free
        except ExchangeOpError as err:
            report.unverified[key] = f"position size unknown: {type(err).__name__}: {err}"[:300]
            await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
            attempt += 1
            continue
        report.unverified.pop(key, None)
        if _negligible(s, ai, abs(amount)):
            report.remaining_positions.pop(symbol, None)
            return
        report.remaining_positions[symbol] = amount
        result = await s.emergency_order(ai, "sell" if amount > 0 else "buy", abs(amount))
        if result is not None:
            report.closed[symbol] = report.closed.get(symbol, 0.0) + abs(amount)
        else:
            report.errors.append(f"{symbol}: closing order not placed (see the trace)")
        await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
        attempt += 1


def _negligible(s: "Strategy", ai: "AssetInstance", qty: float) -> bool:
    """Nothing to close: zero, or below what the market lets anyone trade (dust)."""
    if qty <= 0:
        return True
    try:
        rounded = float(s.client.ex.amount_to_precision(ai.symbol, qty))
    except Exception:  # rounds to zero at the market's precision
        return True
    limits = obj(ai.market.get("limits"))
    if rounded < num(obj(limits.get("amount")).get("min")):
        return True
    min_cost = num(obj(limits.get("cost")).get("min"))
    return not ai.is_margin and bool(ai.last_price) and rounded * (ai.last_price or 0.0) < min_cost


async def emergency_stop(
    s: "Strategy", reason: str = "Manual trigger", close_positions: bool | None = None, budget_s: float | None = None
) -> EStopReport:
    """Halt (persisted), cancel this strategy's open orders on every universe asset, optionally close positions,
    alert, record."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (s.config.risk.estop_budget_s if budget_s is None else budget_s)
    close = s.config.risk.emergency_close_positions if close_positions is None else close_positions
    log.error("EMERGENCY STOP TRIGGERED: %s", reason)
    s.halt(reason, by_emergency_stop=True)
    report = EStopReport(reason)
    symbols = list(s.universe)
    await asyncio.gather(*(_cancel_asset(s, sym, deadline, report) for sym in symbols))
    if close:
        await asyncio.gather(*(_close_asset(s, sym, deadline, report) for sym in symbols))
        await asyncio.gather(*(_cancel_asset(s, sym, max(deadline, loop.time() + 2.0), report) for sym in symbols))
    await asyncio.gather(*(_settle_local(s, sym) for sym in symbols if f"{sym}: open orders" not in report.unverified))
    report.seconds = time.perf_counter() - started
    s.state_store.update(estop_unverified=report.outstanding())
    s.sink.record("emergency_stop", reason=reason, payload=report.as_dict())
    s.sink.flush()
    message = f"EMERGENCY STOP ({s.name}): {reason}. {report.summary()}"
    (log.error if report.clean else log.critical)(message)
    s.alert(message, "critical")
    for hook in list(getattr(s, "on_emergency_stop", [])):
        try:
            hook(s, report)
        except Exception:
            log.exception("emergency stop hook failed")
    return report


async def settle_symbol(s: "Strategy", symbol: str, budget_s: float, close: bool = False, reason: str = "emergency stop") -> EStopReport:
    """One symbol's part of the e-stop, on a loaded strategy: cancel (and close) until the exchange confirms or
    ``budget_s`` runs out. What an orchestrator retries per symbol after the whole e-stop left it unverified."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    deadline = loop.time() + budget_s
    report = EStopReport(reason)
    await _cancel_asset(s, symbol, deadline, report)
    if close:
        await _close_asset(s, symbol, deadline, report)
        await _cancel_asset(s, symbol, max(deadline, loop.time() + 2.0), report)
    if f"{symbol}: open orders" not in report.unverified:
        await _settle_local(s, symbol)
    report.seconds = time.perf_counter() - started
    s.sink.record("emergency_stop", reason=f"{reason} ({symbol})", symbol=symbol, payload=report.as_dict())
    return report
