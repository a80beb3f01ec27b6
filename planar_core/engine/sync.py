"""Start-up sync, reconciliation of order intents, and full account re-sync."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..config import ConfigError
from ..exchange.client import is_balance
from ..exchange.errors import ExchangeOpError, OrderNotFound
from ..model import AssetInstance
from . import orders as _orders

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.sync")


async def load_markets(s: "Strategy") -> None:
    markets = await s.client.call("load_markets", lambda: s.client.ex.load_markets(), s.config.timeouts.market_data * 4,
                                  validate=lambda m: isinstance(m, dict) and bool(m))
    if not s.config.universe:
        raise ConfigError("universe: at least one symbol is required")
    for i, asset in enumerate(s.config.universe):
        market = markets.get(asset.symbol)
        if market is None:
            raise ConfigError(f"universe.{i}.symbol: {asset.symbol!r} is not a market on {s.config.exchange}")
        if bool(market.get("contract")) != s.config.margin:
            kind = "a futures" if market.get("contract") else "a spot"
            raise ConfigError(f"universe.{i}.symbol: {asset.symbol!r} is {kind} market but margin={s.config.margin}")
        if asset.symbol not in s.universe:
            s.universe[asset.symbol] = AssetInstance(asset.symbol, market, asset.max_position, asset.risk_per_trade)


async def check_live_safety(s: "Strategy") -> None:
    """Refuse a live real-money start without confirmation, or with a key that can withdraw."""
    cfg = s.config
    if cfg.mode != "live" or s.paper:
        return
    if not cfg.sandbox and not cfg.confirm_live_trading:
        raise ConfigError("confirm_live_trading: required for sandbox=False in live mode")
    try:
        restrictions = await s.client.call("api_restrictions", lambda: s.client.ex.sapiGetAccountApiRestrictions(),
                                           cfg.timeouts.balance_sync)
    except ExchangeOpError as err:
        log.warning("could not read API key permissions (%s); withdrawal check skipped", type(err).__name__)
        return
    if isinstance(restrictions, dict) and restrictions.get("enableWithdrawals"):
        raise ConfigError("credentials: this API key can withdraw funds; create a trade-only key for the strategy")


async def startup_sync(s: "Strategy") -> None:
    """Balances, positions, open and recent orders and trades; then reconcile the intent journal."""
    await sync_balances(s)
    if s.paper:
        return
    if s.config.margin:
        await sync_positions(s)
        for ai in s.universe.values():
            if ai.position.leverage != s.config.default_leverage and not ai.position.contracts:
                try:
                    await s.client.call("set_leverage", lambda ai=ai: s.client.ex.set_leverage(s.config.default_leverage, ai.symbol),
                                        s.config.timeouts.position_sync)
                    ai.position.leverage = s.config.default_leverage
                except ExchangeOpError as err:
                    log.warning("set_leverage on %s failed: %s", ai.symbol, err)
    since = int((time.time() - s.config.sync_window_s) * 1000)
    for ai in s.universe.values():
        await sync_asset_orders(s, ai, since=since)
    await reconcile_intents(s)
    s.journal.compact()


async def sync_balances(s: "Strategy") -> None:
    if s.broker is not None:
        s.apply_balance(s.broker.balance(), complete=True)
        return
    params = {"type": "swap"} if s.config.margin else {}
    s.apply_balance(await s.client.call("fetch_balance", lambda: s.client.ex.fetch_balance(params), s.config.timeouts.balance_sync,
                                        validate=is_balance), complete=True)


async def sync_positions(s: "Strategy") -> None:
    symbols = list(s.universe)
    raw = await s.client.call("fetch_positions", lambda: s.client.ex.fetch_positions(symbols), s.config.timeouts.position_sync,
                              validate=lambda x: isinstance(x, list))
    s.apply_positions(raw, complete=True)


async def sync_asset_orders(s: "Strategy", ai: AssetInstance, since: int | None = None, trades: bool = True) -> None:
    """Open orders, the orders we track, and (optionally) trades since the last one we know."""
    if s.broker is not None:
        return
    t = s.config.timeouts.order_placement
    if since is not None:
        recent = await s.client.call("fetch_orders", lambda: s.client.ex.fetch_orders(ai.symbol, since), t, validate=lambda x: isinstance(x, list))
        for raw in recent:
            _orders.apply_order(s, raw)
    open_raw = await s.client.call("fetch_open_orders", lambda: s.client.ex.fetch_open_orders(ai.symbol), t,
                                   validate=lambda x: isinstance(x, list))
    open_ids = set()
    for raw in open_raw:
        order = _orders.apply_order(s, raw)
        if order is not None:
            open_ids.add(order.client_order_id)
    for order in [o for o in ai.open_orders() if o.client_order_id not in open_ids and o.id is not None]:
        try:  # it closed while we were not looking: learn how
            raw = await s.client.call("fetch_order", lambda o=order: s.client.ex.fetch_order(o.id, ai.symbol), t)
            _orders.apply_order(s, raw)
        except OrderNotFound:
            order.status = "failed"
    if trades:
        last = max((tr.timestamp for tr in ai.trades if not tr.emulated), default=since or int((time.time() - s.config.sync_window_s) * 1000))
        raw_trades = await s.client.call("fetch_my_trades", lambda: s.client.ex.fetch_my_trades(ai.symbol, last), t,
                                         validate=lambda x: isinstance(x, list))
        for raw in raw_trades:
            _orders.apply_trade(s, raw)


async def reconcile_intents(s: "Strategy") -> None:
    """Intent without exchange order -> failed; intent with one -> adopted (the crash came after sending)."""
    for cid, intent in s.journal.unresolved().items():
        ai = s.universe.get(intent.get("symbol", ""))
        if ai is None:
            s.journal.outcome(cid, "failed")
            continue
        if cid in ai.orders and ai.orders[cid].id is not None:
            s.journal.outcome(cid, "adopted", ai.orders[cid].id)
            continue
        raw = await _orders.lookup(s, ai, cid)
        if raw is None:
            s.journal.outcome(cid, "failed")
            s.sink.record("order_failed", symbol=ai.symbol, client_order_id=cid, reason="intent without exchange order (crash before send)")
        else:
            _orders.apply_order(s, raw)
            s.journal.outcome(cid, "adopted", str(raw.get("id")))
            s.sink.record("order_adopted", symbol=ai.symbol, client_order_id=cid, order_id=raw.get("id"))


async def resync(s: "Strategy") -> None:
    """Full re-sync after a reconnect: balances, open orders, positions and the last hour of trades."""
    await sync_balances(s)
    if s.config.margin:
        await sync_positions(s)
    since = int((time.time() - 3600) * 1000)
    for ai in s.universe.values():
        await sync_asset_orders(s, ai, since=since)
