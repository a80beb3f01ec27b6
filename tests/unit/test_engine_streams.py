"""The engine's watchers and syncs on the in-memory venue: stream reports fed from queues the test controls reach
the engine's state; REST syncs (open orders, look-ups of orders that left the book, trade pages, prices, markets)
go through the venue. No socket; waits are on conditions, with timeouts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from planar_core.config import ConfigError
from planar_core.engine import sync
from planar_core.engine.watchers import balance_watcher, cached_trades, ohlcv_watcher, order_watcher, position_watcher
from planar_core.model import Order, OrderStatus, OrderType, PositionSide, Side
from planar_core.model.health import TaskHealth
from planar_core.model.venue import AssetBalance, BalanceReport, FillReport, OrderReport, PositionReport

from .fake_venue import started
from .stubs import sink_of

S = OrderStatus
SYM = "BTC/USDT"


async def until(cond: Callable[[], object], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running(s, body: Callable[[TaskHealth], Awaitable[None]]):
    s.running = True
    task = asyncio.ensure_future(body(TaskHealth("test")))
    try:
        yield task
    finally:
        s.running = False
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def tracked(s, cid: str = "c1", oid: str | None = "9") -> Order:
    o = Order(cid, SYM, Side.BUY, OrderType.GTC, 1.0, 50_000.0, False, id=oid, status=S.OPEN)
    s.universe[SYM].orders[cid] = o
    return o


async def test_the_order_watcher_applies_streamed_orders_and_fills() -> None:
    s, venue, _ = await started()
    o = tracked(s)
    async with running(s, order_watcher(s, s.universe[SYM])):
        venue.push_order(OrderReport(SYM, "9", "c1", S.CLOSED, filled=1.0, average=50_000.0))
        venue.push_fill(FillReport(SYM, "t1", "9", "c1", Side.BUY, 1.0, 50_000.0, 1))
        await until(lambda: o.status is S.CLOSED and o.trades)
    assert [(t.trade_id, t.emulated) for t in o.trades] == [("t1", False)]


async def test_the_order_watcher_ignores_other_symbols() -> None:
    s, venue, _ = await started()
    o = tracked(s)
    async with running(s, order_watcher(s, s.universe[SYM])):
        venue.push_order(OrderReport("ETH/USDT", "9", "c1", S.CANCELED))
        venue.push_order(OrderReport(SYM, "9", "c1", S.OPEN, filled=0.1, average=50_000.0))
        await until(lambda: o.filled > 0)
    assert o.status is S.OPEN


async def test_the_stream_cache_catches_up_orders_no_watch_handed_over() -> None:
    s, venue, _ = await started()
    a, b = tracked(s, "c1", "1"), tracked(s, "c2", "2")
    async with running(s, order_watcher(s, s.universe[SYM])):
        venue.push_order(OrderReport(SYM, "1", "c1", S.CANCELED))
        venue.cache_order(OrderReport(SYM, "2", "c2", S.CANCELED))  # in the cache only
        await until(lambda: a.status is S.CANCELED and b.status is S.CANCELED)


async def test_the_balance_watcher_applies_streamed_balances() -> None:
    s, venue, _ = await started()
    async with running(s, balance_watcher(s)):
        venue.push_balance(BalanceReport("spot", {"BTC": AssetBalance(1.5, 0.0, 1.5)}, complete=False))
        await until(lambda: s.cash("BTC").free == 1.5)


async def test_the_position_watcher_applies_streamed_positions() -> None:
    s, venue, _ = await started(("BTC/USDT:USDT",), margin=True)
    ai = s.universe["BTC/USDT:USDT"]
    async with running(s, position_watcher(s)):
        venue.push_positions(PositionReport(ai.symbol, PositionSide.SHORT, 0.2, entry_price=10.0))
        await until(lambda: ai.position.contracts == pytest.approx(-0.2))


async def test_the_ohlcv_watcher_reads_history_then_the_stream() -> None:
    s, venue, _ = await started()
    ai = s.universe[SYM]
    venue.candles[(SYM, "1m")] = [[60_000, 1, 2, 0.5, 1.5, 10], [120_000, 1.5, 2, 1, 1.8, 10]]
    async with running(s, ohlcv_watcher(s, ai, "1m")):
        await until(lambda: ai.last_price == 1.8)
        venue.push_ohlcv(SYM, "1m", [[180_000, 1.8, 2, 1, 1.9, 5]])
        await until(lambda: ai.last_price == 1.9)


async def test_cached_trades_are_the_venues_stream_fills_of_the_universe() -> None:
    s, venue, _ = await started()
    venue.push_fill(FillReport(SYM, "t1", "9", "c1", Side.BUY, 1.0, 1.0, 1), FillReport("SOL/USDT", "t2", "8", None, None, 1.0, 1.0, 1))
    assert [f.id for f in cached_trades(s)] == ["t1"]


# ------------------------------------------------------------------ REST syncs
async def test_load_builds_the_universe_from_the_venues_markets() -> None:
    s, venue, _ = await started()
    assert set(s.universe) == {"BTC/USDT", "ETH/USDT"} and venue.ops("load_markets")


async def test_a_symbol_the_venue_lacks_fails_the_load_naming_the_field() -> None:
    from .fake_venue import engine_on_fake

    s, venue, _ = engine_on_fake()
    del venue._markets["ETH/USDT"]
    with pytest.raises(ConfigError, match=r"universe.1.symbol: 'ETH/USDT' is not a market"):
        await s.load()


async def test_sync_adopts_open_orders_and_asks_how_a_missing_one_ended() -> None:
    s, venue, _ = await started()
    gone = tracked(s, "c1", None)
    booked = venue.book(OrderReport(SYM, None, "c1", S.CLOSED, Side.BUY, OrderType.GTC, 1.0, 1.0, 50_000.0, 50_000.0))
    gone.id = booked.id
    await s.sync_asset_orders(s.universe[SYM], trades=False)
    assert gone.status is S.CLOSED
    assert [ref.order_id for _, ref in venue.ops("fetch_order")] == [booked.id]  # type: ignore[attr-defined]


async def test_sync_keeps_an_acknowledged_order_the_exchange_cannot_find() -> None:
    s, _venue, _ = await started()
    o = tracked(s, "c1", "404")
    await s.sync_asset_orders(s.universe[SYM], trades=False)
    assert o.status is S.OPEN
    assert sink_of(s).of("order_reconciled")[-1]["decision"] == "kept"


async def test_sync_reads_the_fills_since_the_last_one_known() -> None:
    s, venue, _ = await started()
    booked = venue.book(OrderReport(SYM, None, "c1", S.OPEN, Side.BUY, OrderType.GTC, 1.0, 0.0, 50_000.0))
    o = tracked(s, "c1", booked.id)
    assert booked.id is not None
    venue.fill(booked.id, 0.4, 50_000.0)
    await s.sync_asset_orders(s.universe[SYM])
    assert [t.amount for t in o.trades if not t.emulated] == [0.4]


async def test_trade_pages_are_read_until_a_page_is_not_full(monkeypatch: pytest.MonkeyPatch) -> None:
    s, venue, clock = await started()
    monkeypatch.setattr(sync, "TRADE_PAGE", 2)
    booked = venue.book(OrderReport(SYM, None, "c1", S.OPEN, Side.BUY, OrderType.GTC, 10.0, 0.0, 1.0))
    assert booked.id is not None
    for _ in range(5):
        venue.fill(booked.id, 1.0, 1.0)
        clock.advance(1)
    fills = await sync.fetch_trades_since(s, s.universe[SYM], clock.ms - 3_600_000)
    assert [f.id for f in fills] == ["t1", "t2", "t3", "t4", "t5"] and len(venue.ops("my_trades")) == 3


async def test_start_up_prices_come_from_the_venues_tickers() -> None:
    s, venue, _ = await started()
    venue.prices.update({SYM: 50_000.0, "ETH/USDT": 3_000.0})
    await sync.sync_prices(s)
    assert s.universe[SYM].last_price == 50_000.0 and s.universe["ETH/USDT"].last_price == 3_000.0


async def test_a_helpers_account_load_needs_every_price() -> None:
    from planar_core.exchange.errors import MalformedResponse

    s, venue, _ = await started()
    venue.prices[SYM] = 50_000.0
    with pytest.raises(MalformedResponse, match="no last price for ETH/USDT"):
        await sync.load_account(s)


async def test_a_key_that_can_withdraw_refuses_the_start() -> None:
    s, venue, _ = await started()
    venue.withdraw = True
    with pytest.raises(ConfigError, match="can withdraw"):
        await sync.check_live_safety(s)


async def test_an_intent_for_a_symbol_the_venue_lacks_is_decided_failed() -> None:
    s, _, _ = await started()
    s.journal.intent("c9", symbol="DOGE/USDT", side="buy", type="gtc", amount=1.0, t=0)
    await sync.reconcile_intents(s)
    assert sink_of(s).of("order_reconciled")[-1]["decision"] == "failed"


async def test_the_health_check_asks_the_venues_time_and_reconnect_resets_its_streams() -> None:
    from planar_core.engine.health import check, reconnect

    s, venue, _ = await started()
    assert await check(s) and venue.ops("server_time")

    async def no_wait(_: float) -> None:
        return None

    assert await reconnect(s, sleep=no_wait)
    assert venue.stream_resets == 1 and s.ws_generation == 1
