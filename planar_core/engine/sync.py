"""Start-up sync, reconciliation of order intents, and full account re-sync."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from ..config import ConfigError, StrategyConfig
from ..exchange.errors import ExchangeOpError, MalformedResponse, OrderNotFound, PermanentError
from ..model import AssetInstance, Order, OrderStatus, OrderType, PositionSide, Side
from ..model.clock import now_ms
from ..model.json import integer, num, opt_num, text
from ..model.types import Json
from ..model.venue import FillReport, Market, OrderRef, OrderReport, Ticker
from ..trace.replay import traced_trade
from ..trace.unresolved import PLACEMENT
from .margin import apply_position_mode, sync_funding
from .submit import lookup
from .updates import apply_order, apply_trade, find, other_strategy

if TYPE_CHECKING:
    from ..trace.unresolved import RestartIndex
    from .startup_plan import StartupPlan
    from .strategy import Strategy

PLACED_MARGIN_MS = 3_600_000  # an order's placement is traced before the exchange stamps its creation; clocks differ
log = logging.getLogger("planar.engine.sync")


async def load_markets(s: "Strategy") -> None:
    markets = await s.venue.load_markets(s.config.timeouts.market_data * 4)
    check_universe(s.config, markets)
    for asset in s.config.universe:
        if asset.symbol not in s.universe:
            s.universe[asset.symbol] = AssetInstance(asset.symbol, markets[asset.symbol], asset.max_position, asset.risk_per_trade)


def check_universe(cfg: StrategyConfig, markets: Mapping[str, Market]) -> None:
    """Every symbol of the universe is a market of the exchange, of the kind the config trades (``ConfigError``
    naming the field)."""
    if not cfg.universe:
        raise ConfigError("universe: at least one symbol is required")
    for i, asset in enumerate(cfg.universe):
        market = markets.get(asset.symbol)
        if market is None:
            raise ConfigError(f"universe.{i}.symbol: {asset.symbol!r} is not a market on {cfg.exchange}")
        if bool(market.get("contract")) != cfg.margin:
            kind = "a futures" if market.get("contract") else "a spot"
            raise ConfigError(f"universe.{i}.symbol: {asset.symbol!r} is {kind} market but margin={cfg.margin}")


async def check_live_safety(s: "Strategy") -> None:
    """Refuse a live real-money start without confirmation, or with a key that can withdraw."""
    cfg = s.config
    if cfg.mode != "live":
        return
    if not cfg.sandbox and not cfg.confirm_live_trading:
        raise ConfigError("confirm_live_trading: required for sandbox=False in live mode")
    try:
        can_withdraw = await s.venue.can_withdraw(cfg.timeouts.balance_sync)
    except ExchangeOpError as err:
        log.warning("could not read API key permissions (%s); withdrawal check skipped", type(err).__name__)
        return
    if can_withdraw:
        raise ConfigError("credentials: this API key can withdraw funds; create a trade-only key for the strategy")


async def sync_prices(s: "Strategy") -> None:
    """Last prices of the universe and of the markets that value its currencies in the main currency, so equity
    is complete from the first moment (the OHLCV watchers and the valuation watcher keep them fresh)."""
    from ..risk.metrics import valuation_markets

    symbols = [ai.symbol for ai in s.universe.values() if not ai.last_price] + valuation_markets(s)
    if not symbols:
        return
    try:
        tickers = await tickers_of(s, symbols, s.config.timeouts.market_data)
    except ExchangeOpError as err:  # valuation stays incomplete until the watchers bring prices (recorded by the breakers)
        log.warning("start-up prices: %s", err)
        return
    for sym, tk in tickers.items():
        last = tk.last
        if last is None or last <= 0:
            continue
        if sym in s.universe:
            s.universe[sym].last_price = s.universe[sym].last_price or float(last)
        else:
            s.holdings.set_conversion_prices({sym: float(last)})


TICKERS_PER_REQUEST = 100  # Binance weighs 21-100 symbols at 40, more at 80; a longer symbol list overflows the URL


async def tickers_of(s: "Strategy", symbols: Sequence[str], timeout: float) -> dict[str, Ticker]:
    """The tickers of ``symbols``, at most ``TICKERS_PER_REQUEST`` a request (a thousand-asset universe in one query
    string is refused before the exchange reads it: 400, line too long), the requests at once."""
    chunks = [symbols[i : i + TICKERS_PER_REQUEST] for i in range(0, len(symbols), TICKERS_PER_REQUEST)]
    out: dict[str, Ticker] = {}
    for part in await asyncio.gather(*(s.venue.tickers(chunk, timeout) for chunk in chunks)):
        out.update(part)
    return out


async def load_account(s: "Strategy") -> None:
    """Markets, balances, positions (margin) and prices, without watchers: what a helper process (daily reset,
    re-arm, re-sync) needs to value the account. Unlike the start-up prices, a missing price here is an error,
    because the helper acts on the equity it computes."""
    await s.load()
    await sync_balances(s)
    if s.config.margin:
        await sync_positions(s)
    symbols = [ai.symbol for ai in s.universe.values()]
    tickers = await tickers_of(s, symbols, s.config.timeouts.market_data)
    for ai in s.universe.values():
        last = tickers[ai.symbol].last if ai.symbol in tickers else None
        if last is None:
            raise MalformedResponse(f"no last price for {ai.symbol} in the exchange's tickers")
        ai.last_price = float(last)
    await sync_prices(s)


HISTORY_BARS = 100  # closed candles per asset and timeframe loaded before the logic starts (the watchers' first page)
HISTORY_CONCURRENCY = 8  # history requests in flight at once at start-up


async def load_history(s: "Strategy") -> None:
    """Each asset's recent candles of every configured timeframe, before the logic's ``on_start`` (live, paper
    and backtest alike: a strategy finds its history in ``on_start``, it does not race the candle watchers for it).
    A series the exchange does not answer is logged and left to its watcher, which keeps asking."""
    gate = asyncio.Semaphore(HISTORY_CONCURRENCY)
    timeout = s.config.ohlcv_watcher.timeout

    async def one(ai: AssetInstance, tf: str) -> None:
        async with gate:
            try:
                candles = await s.venue.ohlcv(ai.symbol, tf, HISTORY_BARS, timeout)
            except ExchangeOpError as err:
                log.warning("history of %s %s not loaded before the start (%s); its watcher keeps asking", ai.symbol, tf, err)
                return
        s.apply_ohlcv(ai, tf, candles)

    await asyncio.gather(*(one(ai, tf) for ai in s.universe.values() for tf in s.config.timeframes))


async def startup_sync(s: "Strategy") -> "StartupPlan | None":
    """Prices, balances, positions; the account's open orders, and the history and trades of the assets where
    something is unresolved (``startup_plan.py`` says which and why), several assets at once within the request
    budget; then reconcile the intent journal. Answers the plan when assets were deferred until the engine runs
    (after a power loss: ``verify_deferred``), else None."""
    from . import startup_plan

    try:
        plan = await startup_plan.prepare(s)
        await _startup_sync(s, plan)
    finally:
        startup_plan.forget(s)
    return plan if plan.deferred else None


DEFERRED_CONCURRENCY = 2  # deferred assets listed at once: reads beside a running strategy's orders


async def verify_deferred(s: "Strategy", plan: "StartupPlan") -> None:
    """After a power loss, the assets the start did not list (nothing open, holding as the trace left it): each one's
    history, and its trades where a fill is unexplained, as the start-up sync lists an asset, now that the engine
    runs. An order the journal never recorded durably that ended without a fill is found here and adopted; one
    that filled was listed before the start (its holding moved). Reads only, paced as reads (orders keep their
    headroom); an asset whose listing fails is tried again after a pause until every one is done, then
    ``startup_verified`` is recorded with what was found."""
    cfg = s.config.startup_sync
    t = s.config.timeouts.order_placement
    gate = asyncio.Semaphore(DEFERRED_CONCURRENCY)
    found: dict[str, list[str]] = {}

    async def one(sym: str) -> None:
        ai = s.universe[sym]
        async with gate:
            history = await s.venue.order_history(sym, t, limit=history_limit(cfg.closed_orders, 0)) if cfg.closed_orders > 0 else None
            before = set(ai.orders)
            earlier = None if history is None else [r for r in history if r.client_order_id not in before]
            restore_listed(s, plan, [sym], earlier)
            # the orders the engine holds open now (this run's too) as the listing says them: none is looked up again
            open_now = [r for r in history or [] if r.status is OrderStatus.OPEN]
            await sync_asset_orders(
                s, ai, recent=cfg.closed_orders, trades_since=plan.since_ms, open_now=open_now, history=history, trades_if_unexplained=True
            )
            adopted = sorted(c for c in set(ai.orders) - before if not s.ids.of_this_run(c))  # not this run's new orders
            if adopted:
                found[sym] = adopted

    remaining = list(plan.deferred)
    unverified: dict[str, str] = {}
    attempt = 0
    while remaining:
        results = await asyncio.gather(*(one(sym) for sym in remaining), return_exceptions=True)
        failed = []
        for sym, r in zip(remaining, results, strict=True):
            if isinstance(r, PermanentError):  # asking again gives the same answer: said, not retried
                unverified[sym] = f"{type(r).__name__}: {r}"[:300]
            elif isinstance(r, BaseException):
                log.warning("after the power loss, listing %s failed (%s); tried again", sym, r)
                failed.append(sym)
        remaining = failed
        if remaining:
            await asyncio.sleep(min(30.0, 2.0**attempt))
            attempt += 1
    s.sink.record("startup_verified", assets=len(plan.deferred), found=found or None, unverified=unverified or None)
    log.info("after the power loss: %d assets verified since the start; %s", len(plan.deferred), found or "nothing new")
    if unverified:
        s.alert(f"{s.name}: after a power loss, assets could not be verified: {unverified}", "warning")


async def _startup_sync(s: "Strategy", plan: "StartupPlan") -> None:
    from .startup_plan import SYNC_CONCURRENCY, add_changed_positions

    await sync_prices(s)
    await sync_balances(s)
    if s.config.margin:
        await apply_position_mode(s)  # before the positions: hedge mode keeps two sides per asset
        await sync_positions(s)
        await _default_leverage(s)
    cfg = s.config.startup_sync
    since = plan.since_ms
    restore_basis(s, plan.index)
    # the orders whose fills earlier runs booked (the codes alone): a later listing never books them again
    s.ledger.note_booked_before(plan.index.client_ids(("trade_executed",), (since - 60_000) * 1_000_000))
    add_changed_positions(s, plan)
    listed = [ai for sym, ai in s.universe.items() if sym in plan.listed]
    log.info("start-up sync: history and trades of %d of %d assets (%s)", len(listed), len(s.universe), _reasons(plan.listed))
    gate = asyncio.Semaphore(SYNC_CONCURRENCY)
    t = s.config.timeouts.order_placement

    async def history(ai: AssetInstance) -> None:  # the twin check listed it already, unless it is off
        if ai.symbol not in plan.history:
            async with gate:
                limit = history_limit(cfg.closed_orders, len(plan.open_now.get(ai.symbol, [])))
                plan.history[ai.symbol] = await s.venue.order_history(ai.symbol, t, limit=limit)

    if cfg.closed_orders > 0:
        await asyncio.gather(*(history(ai) for ai in listed))
        restore_listed(s, plan, plan.listed, [r for sym in plan.listed for r in plan.open_now.get(sym, []) + plan.history.get(sym, [])])
    else:
        restore_listed(s, plan, plan.listed, None)
    if s.config.margin:  # funding booked over the lookback, each payment recorded once across runs
        s.holdings.funding.restore((str(r.get("trade_id")) for r in plan.index.rows(("funding_paid",))), since)
        await sync_funding(s)

    async def one(ai: AssetInstance) -> None:
        async with gate:
            await sync_asset_orders(
                s,
                ai,
                recent=cfg.closed_orders,
                trades_since=since,
                open_now=plan.open_now.get(ai.symbol, []),
                history=plan.history.get(ai.symbol),
                trades_if_unexplained=True,
            )

    await asyncio.gather(*(one(ai) for ai in listed))  # an asset with open orders is always listed
    await reconcile_intents(s)
    s.journal.compact()
    await s.freshness.flush()  # fills the sync learned after reading the balances: read them again (once)


def restore_listed(s: "Strategy", plan: "StartupPlan", symbols: Collection[str], listings: list[OrderReport] | None) -> None:
    """What the trace holds of the orders a listing is about to bring in (their trades, what was asked for), and
    nothing else: an asset's trades are read again only from an order whose fills they must explain. ``listings``
    None (no history listed): trades are read over the lookback, so every traced trade of ``symbols`` is marked seen.
    The journal's intents are those the start read (``plan.journal``): ones a running engine sends meanwhile are not
    an earlier run's."""
    open_now = [r for sym in symbols for r in plan.open_now.get(sym, [])]
    if listings is not None:
        open_now += [r for r in listings if r.status is OrderStatus.OPEN]
    listed_open = {r.client_order_id: r.timestamp or 0 for r in open_now if r.client_order_id}
    if listings is None:
        restore_trades(s, plan.since_ms, plan.index, symbols)
        restore_orders(s, plan.since_ms, plan.index, symbols, journal=plan.journal, still_open=listed_open)
        return
    cids = set(plan.journal) | {r.client_order_id for r in listings if r.client_order_id}
    restore_trades(s, plan.since_ms, plan.index, cids=cids)
    restore_orders(s, plan.since_ms, plan.index, cids=cids, journal=plan.journal, still_open=listed_open)


async def _default_leverage(s: "Strategy") -> None:
    """The configured leverage on every asset without a position, several at once."""
    from .startup_plan import SYNC_CONCURRENCY

    gate = asyncio.Semaphore(SYNC_CONCURRENCY)

    async def one(ai: AssetInstance) -> None:
        if ai.position.leverage == s.config.default_leverage or ai.position.contracts:
            return
        async with gate:
            try:
                await s.venue.set_leverage(ai.symbol, s.config.default_leverage, s.config.timeouts.position_sync)
                s.holdings.set_leverage(ai, s.config.default_leverage)
            except ExchangeOpError as err:
                log.warning("set_leverage on %s failed: %s", ai.symbol, err)

    await asyncio.gather(*(one(ai) for ai in s.universe.values()))


def _reasons(listed: Mapping[str, str]) -> str:
    counts: dict[str, int] = {}
    for why in listed.values():
        key = why.split(" differs")[0].split(" ", 1)[-1] if " differs" in why else why
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n}: {why}" for why, n in counts.items()) or "none"


def _listed(x: object) -> list[object]:
    return list(x) if isinstance(x, (list, tuple)) else []


def restore_trades(
    s: "Strategy",
    since_ms: int,
    index: "RestartIndex | None" = None,
    symbols: Collection[str] | None = None,
    cids: Collection[str] | None = None,
) -> int:
    """Trades the trace already holds for the sync window (an earlier run recorded them) on ``symbols`` (None:
    every asset) or of the orders ``cids``, the ones the sync lists again: marked as seen so the start-up sync does
    not record them twice, and attached to their orders when the sync brings those in."""
    index = index if index is not None else _index(s, since_ms - 60_000)
    traced = index.rows(("trade_executed",), symbols, since_ns=(since_ms - 60_000) * 1_000_000, cids=cids)
    replaced = {str(x) for r in traced for x in _listed(r.get("replaces"))}
    n = 0
    for r in traced:
        ai = s.universe.get(str(r.get("symbol") or ""))
        cid = text(r.get("client_order_id"))
        if ai is None or not cid or str(r.get("trade_id")) in replaced or other_strategy(s, cid):  # the account's trace: every strategy's
            continue
        tid = r.get("trade_id")
        if tid is not None:
            s.ledger.mark_seen(ai.symbol, str(tid))
        trade = traced_trade(ai.symbol, r)
        s.ledger.restore_trade(cid, trade)
        n += 1
    return n


def restore_basis(s: "Strategy", index: "RestartIndex | None" = None) -> int:
    """Each position's cost basis (spot lots, futures average entry, the round trip under way) as the last fill of
    it in the trace left it (its ``trade_executed`` event carries the basis after it): however old that fill is,
    a restart keeps the cost basis. The trace is read backwards until every asset's last fill is found (or its
    start: an asset never traded). Fills the start-up sync learns next apply on top of it."""
    index = index if index is not None else _index(s, int(s.clock.time() * 1000))
    n = 0
    for (symbol, _), basis in index.bases.items():
        ai = s.universe.get(symbol)
        if ai is not None:
            s.ledger.restore_basis(ai, basis)
            n += 1
    return n


def restore_orders(
    s: "Strategy",
    since_ms: int,
    index: "RestartIndex | None" = None,
    symbols: Collection[str] | None = None,
    cids: Collection[str] | None = None,
    journal: Mapping[str, Json] | None = None,
    still_open: Mapping[str, int] | None = None,
) -> int:
    """What an earlier run knew of its orders beyond what the exchange reports (the order type it asked for, the
    trigger, the trailing distance, the exits attached to an entry, the entry an exit protects, whether its trigger
    was recorded): from the trace's ``order_placed`` / ``order_triggered`` events on ``symbols`` (None: every asset)
    or of the orders ``cids``, and the journal's unresolved intents (``journal``: as already read). Used when the
    start-up sync adopts these orders again (a futures conditional order that triggered is reported as a plain
    market or limit order; its type is what we asked for). ``still_open``: this strategy's client ids the exchange
    lists as open, with their creation time (ms; 0 unknown): those placed before the lookback are looked up further
    back, down to their creation less an hour (``trace/unresolved.placed_records``), or a trailing stop resting for a
    week would come back as a plain stop and an old exit would lose its entry. A failed look-up is logged, and
    those orders are adopted with what the exchange says."""
    index = index if index is not None else _index(s, since_ms - 60_000)
    lo = (since_ms - 60_000) * 1_000_000
    rows = index.rows(PLACEMENT, symbols, since_ns=lo, cids=cids)
    seen = {text(r.get("client_order_id")) for r in rows if r.get("kind") == "order_placed"}
    older = {c: ms for c, ms in (still_open or {}).items() if c not in seen and s.ids.owns(c)}
    if older:
        floor_ns = max(0, min(older.values()) - PLACED_MARGIN_MS) * 1_000_000
        try:
            rows = _placed_before(s, older, lo, floor_ns) + rows
        except Exception as exc:  # a damaged old segment, a trace that kept changing: start with the exchange's word
            log.warning("placements of %d open orders older than the lookback not read (%s); adopted as listed", len(older), exc)
    meta: dict[str, Json] = {}
    for r in rows:
        cid = text(r.get("client_order_id"))
        if cid and r.get("kind") == "order_placed" and not other_strategy(s, cid):  # the account's trace holds every strategy's orders
            meta[cid] = {**r, "type": r.get("order_type")}
    for cid, intent in (journal if journal is not None else s.journal.unresolved()).items():
        meta.setdefault(cid, dict(intent))
    for r in rows:
        cid = text(r.get("client_order_id"))
        if cid in meta and r.get("kind") == "order_triggered":
            meta[cid]["triggered"] = True
    s.ledger.restore_orders(meta)
    s.book.restore_bracketed(p for p in (text(m.get("parent")) for m in meta.values()) if p)  # their exits were placed
    return len(meta)


def _index(s: "Strategy", since_ms: int) -> "RestartIndex":
    from .startup_plan import restart_index

    return restart_index(s, since_ms)


def _placed_before(s: "Strategy", cids: Collection[str], before_ns: int, after_ns: int) -> list[Json]:
    from .startup_plan import placed_before

    return placed_before(s, cids, before_ns, after_ns)


async def sync_balances(s: "Strategy") -> None:
    await s.fetch_balances(s.config.timeouts.balance_sync)


async def sync_positions(s: "Strategy") -> None:
    await s.fetch_positions(s.config.timeouts.position_sync)


async def sync_asset_orders(
    s: "Strategy",
    ai: AssetInstance,
    recent: int = 0,
    trades: bool = True,
    trades_since: int | None = None,
    open_now: list[OrderReport] | None = None,
    history: list[OrderReport] | None = None,
    trades_if_unexplained: bool = False,
) -> None:
    """Open orders (every book), the last ``recent`` closed orders, the orders we track, and (optionally) trades since
    the last one we know (or ``trades_since``). ``open_now`` / ``history``: the asset's open orders / last ``recent``
    orders as a listing just said (not asked again). ``trades_if_unexplained`` (start-up): trades are asked for only
    when the history shows a fill they would explain (``trades_needed``).

    An order the exchange does not list as open is looked up by its id to learn how it ended. Orders without an
    exchange id (being submitted, or unknown) belong to the submitter and the resolver, not to this poll. What
    one answer teaches is made durable together (group commit; a group never spans an await)."""
    t = s.config.timeouts.order_placement
    if open_now is None:
        open_now = await s.venue.open_orders(ai.symbol, t)
    limit = history_limit(recent, len(open_now))
    if recent > 0:  # the history's newest entries include the open orders: ask for that many more
        if history is None:
            history = await s.venue.order_history(ai.symbol, t, limit=limit)
        with s.group():
            for report in history:
                apply_order(s, report, source="sync")
    open_ids = set()
    with s.group():
        for report in open_now:
            order = apply_order(s, report, source="poll")
            if order is not None:
                open_ids.add(order.client_order_id)
    missing = [o for o in ai.open_orders() if o.client_order_id not in open_ids and o.id is not None]
    if len(missing) > 2:  # many closed at once (an e-stop, a burst of fills): one history request instead of one each
        first = min(o.timestamp for o in missing) - 60_000
        history = await s.venue.order_history(ai.symbol, t, since=first)
        with s.group():
            for report in history:
                if find(ai, report.client_order_id, None) is not None:
                    apply_order(s, report, source="poll")
        missing = [o for o in missing if o.is_open]
    for order in missing:
        try:  # it closed while we were not looking: learn how
            found: OrderReport | None
            if order.type.is_conditional:
                found = await lookup(s, ai.symbol, order.client_order_id, timeout=t, conditional=True)
            else:
                found = await s.venue.fetch_order(ai.symbol, OrderRef(order.client_order_id, order.id), t)
            if found is None:
                raise OrderNotFound("not found by client order id")
            apply_order(s, found, source="poll")
        except OrderNotFound:  # acknowledged, yet not found: keep what we know until the exchange says otherwise
            s.sink.record(
                "order_reconciled",
                symbol=ai.symbol,
                client_order_id=order.client_order_id,
                order_id=order.id,
                decision="kept",
                reason="acknowledged order not found by id; status kept until the exchange reports it",
            )
    if trades:
        lookback = int((s.clock.time() - s.config.startup_sync.trades_lookback_s) * 1000)
        last = max((tr.timestamp for tr in ai.trades if not tr.emulated), default=trades_since if trades_since is not None else lookback)
        last = min(last, _unreplaced_since(ai, lookback))
        if trades_if_unexplained and recent > 0 and history is not None:
            since = trades_needed(s, ai, history, limit, trades_since if trades_since is not None else lookback)
            if since is None:
                return
            last = since
        with s.group():
            for fill in await fetch_trades_since(s, ai, last):
                apply_trade(s, fill)


def _unreplaced_since(ai: AssetInstance, lookback: int) -> int:
    """Where the real trades of the asset's emulated fills (within the lookback) may be: from the earliest of their
    orders' creation. Read only from the newest real trade, a fill learned by a poll (its stream cut) kept its
    emulated stand-in for good once a later real trade (a market order's answer) moved that mark past it: fee 0,
    one fill for several (an outside soak trial: 35 of 129 fills, fees -27 %)."""
    start = 2**62
    for tr in ai.trades:
        if tr.emulated and tr.timestamp >= lookback:
            order = find(ai, tr.client_order_id, None)
            start = min(start, max(lookback, (order.timestamp if order is not None and order.timestamp else tr.timestamp) - 1000))
    return start


def history_limit(recent: int, open_orders: int) -> int:
    """The orders a history listing asks for: the last ``recent`` closed ones besides the open ones."""
    return min(1000, recent + open_orders)


def trades_needed(s: "Strategy", ai: AssetInstance, history: list[OrderReport], limit: int, since: int) -> int | None:
    """Where to start reading the asset's trades, or None when nothing needs them: every fill is an order's, and the
    history (applied just before) shows each order's filled amount. An order of the lookback whose filled amount
    its known trades (the trace's, re-attached) do not add up to needs its trades, from its creation (within the
    lookback). A full history page that does not reach back to the lookback's start cannot vouch for the orders
    beyond it: the whole lookback is read, as before."""
    oldest = min((r.timestamp or 0 for r in history), default=0)
    if len(history) >= limit and oldest > since:
        return since
    start: int | None = None
    for r in history:
        filled = r.filled or 0.0
        if filled <= 0 or max(r.updated or 0, r.timestamp or 0) < since:
            continue
        order = find(ai, r.client_order_id, None if r.conditional else r.id)
        if order is None:  # another strategy's, or a foreign order not adopted: not our fills
            continue
        known = sum(tr.amount for tr in order.trades if not tr.emulated)
        if known + 1e-12 < filled:
            start = min(start if start is not None else 2**62, max(since, (r.timestamp or since) - 1000))
    return start


TRADE_WINDOW_MS = 24 * 3_600_000  # Binance spot: startTime..endTime at most 24 h (futures: 7 days)
TRADE_PAGE = 1000


async def fetch_trades_since(s: "Strategy", ai: AssetInstance, since: int) -> list[FillReport]:
    """Our trades on ``ai`` since ``since`` (ms), read in 24-hour windows of at most 1000 trades a page, so a
    lookback of days works under every market type's window limit."""
    t = s.config.timeouts.order_placement
    now = now_ms(s.clock)
    out: list[FillReport] = []
    start = since
    while start <= now:
        end = min(now, start + TRADE_WINDOW_MS - 1)
        page = await s.venue.my_trades(ai.symbol, t, since=start, until=end, limit=TRADE_PAGE)
        out += page
        if len(page) >= TRADE_PAGE:  # a full page: go on after its last trade in the same window
            start = max(start + 1, max(f.timestamp or 0 for f in page) + 1)
        else:
            start = end + 1
    return out


async def reconcile_intents(s: "Strategy") -> None:
    """Every journaled intent without an outcome (the process died in between, or the outcome stayed unknown) is
    settled by the exchange's word, asked by client order id for its own symbol (in the universe or not), and the
    decision is recorded with its reason. What the exchange cannot answer yet stays open for the resolver."""
    absent_after = s.config.order_monitoring.absent_after
    for cid, intent in s.journal.unresolved().items():
        symbol = str(intent.get("symbol", ""))
        ai = s.universe.get(symbol)
        local = ai.orders.get(cid) if ai is not None else None
        if local is not None and local.id is not None:  # the start-up sync found it already
            if local.status not in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
                s.journal.outcome(cid, "accepted", local.id)
            continue
        age = s.clock.time() - num(intent.get("t")) / 1000
        if symbol not in s.venue.markets:
            _decide(s, symbol, cid, "failed", f"{symbol!r} is not a market on the exchange: no order can exist there")
            continue
        try:
            found = await lookup(s, symbol, cid, conditional=OrderType(text(intent.get("type")) or "gtc").is_conditional)
        except ExchangeOpError as err:
            _decide(s, symbol, cid, None, f"look-up failed ({type(err).__name__}); asked again later")
            _track_unknown(s, ai, cid, intent)
            continue
        if found is not None:
            if ai is not None:
                apply_order(s, found, source="reconcile")
                s.journal.outcome(cid, "accepted", str(found.id))
                s.sink.record(
                    "order_reconciled",
                    symbol=symbol,
                    client_order_id=cid,
                    order_id=found.id,
                    decision="found",
                    reason="intent found on the exchange by client order id",
                )
            else:
                _decide(
                    s,
                    symbol,
                    cid,
                    "accepted",
                    f"found on the exchange ({found.status}) on a symbol outside the universe; not tracked by this strategy",
                    order_id=str(found.id),
                    alert=True,
                )
        elif age >= absent_after:
            _decide(s, symbol, cid, "failed", f"not found by client order id {age:.0f}s after the intent: never booked")
        else:
            _decide(s, symbol, cid, None, f"not found yet, {age:.1f}s after the intent (< absent_after {absent_after}s); asked again")
            _track_unknown(s, ai, cid, intent)


def _decide(
    s: "Strategy", symbol: str, cid: str, outcome: str | None, reason: str, order_id: str | None = None, alert: bool = False
) -> None:
    s.sink.record(
        "order_reconciled", symbol=symbol, client_order_id=cid, order_id=order_id, decision=outcome or "unresolved", reason=reason
    )
    if outcome is not None:
        s.journal.outcome(cid, outcome, order_id, reason)
    log.log(logging.WARNING if alert or outcome is None else logging.INFO, "intent %s on %s: %s", cid, symbol, reason)
    if alert:
        s.alert(f"intent {cid} on {symbol}: {reason}", "warning")


def _track_unknown(s: "Strategy", ai: AssetInstance | None, cid: str, intent: Json) -> None:
    """An intent whose fate the exchange has not told yet: an ``unknown`` order the resolver keeps asking about."""
    if ai is None or cid in ai.orders:
        return
    order = Order(
        cid,
        ai.symbol,
        Side(text(intent.get("side")) or "buy"),
        OrderType(text(intent.get("type")) or "gtc"),
        num(intent.get("amount")),
        opt_num(intent.get("price")),
        bool(intent.get("reduce_only")),
        timestamp=integer(intent.get("t")),
        status=OrderStatus.UNKNOWN,
        sent_at=num(intent.get("t")) / 1000,
        trigger_price=opt_num(intent.get("trigger_price")),
        trailing_percent=opt_num(intent.get("trailing_percent")),
        position_side=PositionSide(text(intent.get("position_side")) or "both"),
        brackets=(opt_num(intent.get("stop_loss")), opt_num(intent.get("take_profit"))),
        parent=text(intent.get("parent")),
    )
    s.book.add(ai, order)
    s.start_resolver()


async def resync(s: "Strategy") -> None:
    """Full re-sync after a reconnect: balances, positions, open and recent orders, trades since the last known."""
    await sync_balances(s)
    if s.config.margin:
        await sync_positions(s)
    for ai in s.universe.values():
        await sync_asset_orders(s, ai, recent=s.config.startup_sync.closed_orders)
