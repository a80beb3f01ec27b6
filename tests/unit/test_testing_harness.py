"""``planar_core.testing.LogicTest`` on the shipped example strategies: a bar reaches ``on_bar`` and the order it
places fills as an exchange fills it, a fill reaches ``on_fill`` with the balance that includes it, futures exits
act, refusals are said, and a callback's exception fails the test (a harness that swallowed it would let every
strategy test pass)."""

from __future__ import annotations

import pytest

from planar_core.logic import Logic, LogicParams
from planar_core.model import Candle, OrderStatus, OrderType, PositionSide, RefusalReason, Side
from planar_core.model.context import StrategyContext
from planar_core.model.views import AssetView, OrderView, TradeView
from planar_core.strategies.breakout import Breakout
from planar_core.strategies.grid import GridMaker
from planar_core.strategies.ma_cross import MACross
from planar_core.testing import LogicTest, candle, candles, timeframe_ms

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"


async def test_closed_bars_drive_on_bar_and_a_market_order_fills_at_the_last_close() -> None:
    async with LogicTest(MACross, {"fast": 2, "slow": 4, "order_value": 100.0}, symbols=[SPOT], balances={"USDT": 1_000.0}) as t:
        t.history(SPOT, [100.0, 100.0, 100.0, 100.0, 99.0])
        assert t.callbacks["on_bar"] == 0  # history is no bar
        await t.bars(SPOT, [98.0, 97.0])  # the fast mean stays below: no signal
        assert t.placed() == []
        await t.bars(SPOT, [101.0, 104.0])  # crosses above: buys through the execution policy (a market order)
        assert t.callbacks["on_bar"] == 4
        (order,) = t.placed(SPOT)
        assert (order.side, order.type, order.status) == (Side.BUY, OrderType.MARKET, OrderStatus.CLOSED)
        (trade,) = t.trades()
        assert trade.price == 101.0 and trade.amount == pytest.approx(100.0 / 101.0, rel=1e-4)
        assert t.ctx.cash("BTC").total == pytest.approx(trade.amount)
        assert t.ctx.cash("USDT").total == pytest.approx(1_000.0 - trade.amount * 101.0)
        (sent,) = t.sent
        assert sent.client_order_id == order.client_order_id and sent.amount == order.amount
        assert t.callbacks["on_fill"] == 1  # MACross does not define it: the base's does nothing, and it is called
        assert t.ctx.now() == t.clock.ms and t.clock.ms % timeframe_ms("1m") == 0  # the clock stands at the last close


class RecordingGrid(GridMaker):
    """GridMaker, remembering the balances ``on_fill`` saw and the statuses ``on_order_update`` saw."""

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.seen: list[tuple[str, float, float]] = []
        self.updates: list[tuple[str, OrderStatus, float]] = []

    async def on_order_update(self, ctx: StrategyContext, order: OrderView) -> None:
        self.updates.append((order.client_order_id, order.status, order.filled))

    async def on_fill(self, ctx: StrategyContext, order: OrderView, trade: TradeView) -> None:
        self.seen.append((order.client_order_id, ctx.cash("BTC").total, ctx.cash("USDT").total))
        await super().on_fill(ctx, order, trade)


async def test_a_fill_reaches_on_fill_with_the_balance_that_includes_it_and_locked_funds_move() -> None:
    params = {"levels": 2, "spacing": 0.01, "order_value": 100.0}
    async with LogicTest(RecordingGrid, params, symbols=[SPOT], balances={"USDT": 1_000.0}, prices={SPOT: 100.0}) as t:
        buys = t.placed()  # on_start: two post-only buys (no BTC to sell yet)
        assert [(o.side, o.price, o.status) for o in buys] == [(Side.BUY, 99.0, OrderStatus.OPEN), (Side.BUY, 98.0, OrderStatus.OPEN)]
        locked = sum(o.amount * (o.price or 0.0) for o in buys)
        assert t.ctx.cash("USDT").used == pytest.approx(locked)  # the exchange locks what a resting buy may spend
        trade = await t.fill(buys[0])
        assert (trade.amount, trade.price) == (buys[0].amount, 99.0)
        assert t.logic.seen == [(buys[0].client_order_id, pytest.approx(buys[0].amount), pytest.approx(1_000.0 - buys[0].amount * 99.0))]
        mine = [(status, filled) for cid, status, filled in t.logic.updates if cid == buys[0].client_order_id]
        assert mine == [(OrderStatus.OPEN, 0.0), (OrderStatus.CLOSED, buys[0].amount)]  # acknowledged, then filled
        assert buys[0].status is OrderStatus.CLOSED
        # on_fill re-quoted around 99: the sell at 99.99 would take at the last price (100), and the exchange says so
        sells = [o for o in t.placed() if o.side is Side.SELL]
        assert [(o.price, o.status) for o in sells] == [(99.99, OrderStatus.REJECTED), (100.98, OrderStatus.OPEN)]
        assert [r.reason for r in t.refusals()] == [RefusalReason.EXCHANGE_REFUSED]
        assert t.ctx.cash("BTC").used == pytest.approx(sells[1].amount)  # the resting sell locks its coins


class Resting(Logic):
    """One limit buy of 1 BTC at 99, placed at start; what reaches the callbacks is kept."""

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.updates: list[tuple[OrderStatus, float]] = []
        self.fills: list[tuple[float, float, float]] = []  # amount, BTC held, USDT free at on_fill

    async def on_start(self, ctx: StrategyContext) -> None:
        await ctx.call(SPOT, OrderType.GTC, Side.BUY, amount=1.0, price=99.0)

    async def on_order_update(self, ctx: StrategyContext, order: OrderView) -> None:
        self.updates.append((order.status, order.filled))

    async def on_fill(self, ctx: StrategyContext, order: OrderView, trade: TradeView) -> None:
        self.fills.append((trade.amount, ctx.cash("BTC").total, ctx.cash("USDT").free))


async def test_a_partial_fill_is_an_update_then_a_fill_and_a_better_price_returns_the_rest_of_the_lock() -> None:
    async with LogicTest(Resting, symbols=[SPOT], balances={"USDT": 1_000.0}, prices={SPOT: 100.0}) as t:
        (buy,) = t.placed()
        assert (t.ctx.cash("USDT").free, t.ctx.cash("USDT").used) == (901.0, 99.0)
        await t.fill(buy, amount=0.5, price=98.5)
        assert buy.status is OrderStatus.OPEN and t.logic.updates == [(OrderStatus.OPEN, 0.0), (OrderStatus.OPEN, 0.5)]
        assert t.logic.fills == [(0.5, 0.5, pytest.approx(901.25))]  # 0.5 x 99 unlocked, 0.5 x 98.5 paid
        assert t.ctx.cash("USDT").used == pytest.approx(49.5)
        with pytest.raises(ValueError, match="cannot fill"):
            await t.fill(buy, amount=1.0)  # more than is left
        await t.fill(buy.client_order_id)  # the rest, at its limit
        assert buy.status is OrderStatus.CLOSED and t.logic.fills[-1] == (0.5, 1.0, pytest.approx(901.25))
        assert (t.ctx.cash("USDT").total, t.ctx.cash("USDT").used) == (pytest.approx(901.25), 0.0)


async def test_futures_entry_fills_its_exits_rest_and_the_stop_closes_the_position() -> None:
    params = {"lookback": 3, "order_value": 500.0, "stop_loss": 0.01, "take_profit": 0.02}
    async with LogicTest(Breakout, params, symbols=[PERP], balances={"USDT": 1_000.0}) as t:
        assert t.strategy.config.margin and t.strategy.config.timeframes == ["1m"]  # from the symbol and Params.timeframe
        t.history(PERP, [100.0, 100.5, 99.5, 100.0])
        await t.bar(PERP, close=102.0)  # breaks above the channel: a long with its exits
        entry, stop, take = t.placed()
        assert (entry.type, entry.status) == (OrderType.MARKET, OrderStatus.CLOSED)
        assert [(o.type, o.status, o.trigger_price) for o in (stop, take)] == [
            (OrderType.STOP_MARKET, OrderStatus.OPEN, pytest.approx(100.98)),
            (OrderType.TAKE_PROFIT_MARKET, OrderStatus.OPEN, pytest.approx(104.04)),
        ]
        assert t.ctx.positions[PERP].contracts == pytest.approx(entry.filled)
        assert t.ctx.cash("USDT").used == pytest.approx(entry.filled * 102.0)  # leverage 1: the notional is the margin
        await t.fill(stop)  # the stop triggers at its trigger price
        assert PERP not in t.ctx.positions
        assert take.status is OrderStatus.CANCELED  # the engine cancels the other exit
        assert t.logic.exits == {PERP: "stop_loss"}  # Breakout.on_fill saw its exit act
        assert t.ctx.cash("USDT").total == pytest.approx(1_000.0 - entry.filled * (102.0 - 100.98))  # the realized loss


class SpotBracket(Logic):
    """A spot buy of 1 BTC with a stop-loss 2 % under and a take-profit 3 % over the close."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not ai.orders:
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=1.0, stop_loss=bar.close * 0.98, take_profit=bar.close * 1.03)


@pytest.mark.parametrize("acts", ["take", "stop", "cancel"])
async def test_spot_exits_are_one_oco_list_as_live(acts: str) -> None:
    """A spot entry's exits are one OCO list, as on Binance (docs/strategies.md): a TAKE_PROFIT_LIMIT with its price
    and a STOP_MARKET, one lock of the coin between them; a leg that fills expires the other, a cancel cancels both.
    The harness placed two separate conditional orders that locked nothing (a newcomer's test written from the docs
    failed on the take-profit's missing price)."""
    async with LogicTest(SpotBracket, symbols=[SPOT], balances={"USDT": 1_000.0}) as t:
        await t.bar(SPOT, close=100.0)
        entry, first, second = t.placed()
        assert entry.status is OrderStatus.CLOSED
        take, stop = (first, second) if first.type is OrderType.TAKE_PROFIT_LIMIT else (second, first)
        assert (take.type, take.price, take.trigger_price) == (OrderType.TAKE_PROFIT_LIMIT, pytest.approx(103.0), pytest.approx(103.0))
        assert (stop.type, stop.trigger_price) == (OrderType.STOP_MARKET, pytest.approx(98.0))
        assert (t.ctx.cash("BTC").free, t.ctx.cash("BTC").used) == (0.0, 1.0)  # one lock for the list
        if acts == "cancel":
            await t.ctx.cancel(SPOT, take)
            await t.settle()
            assert (take.status, stop.status) == (OrderStatus.CANCELED, OrderStatus.CANCELED)
            assert (t.ctx.cash("BTC").free, t.ctx.cash("BTC").used) == (1.0, 0.0)
            return
        acted, other = (take, stop) if acts == "take" else (stop, take)
        await t.fill(acted)
        assert acted.status is OrderStatus.CLOSED and other.status is OrderStatus.EXPIRED
        assert (t.ctx.cash("BTC").total, t.ctx.cash("BTC").used) == (0.0, 0.0)
        assert t.ctx.cash("USDT").total == pytest.approx(900.0 + (103.0 if acts == "take" else 98.0))


class LongAndShort(Logic):
    async def on_start(self, ctx: StrategyContext) -> None:
        await ctx.call(PERP, OrderType.MARKET, Side.BUY, amount=1.0, position_side=PositionSide.LONG)
        await ctx.call(PERP, OrderType.MARKET, Side.SELL, amount=0.5, position_side=PositionSide.SHORT)


async def test_hedge_mode_keeps_both_sides_and_their_margin() -> None:
    async with LogicTest(LongAndShort, symbols=[PERP], hedged=True, prices={PERP: 100.0}, config={"default_leverage": 2}) as t:
        ai = t.ctx.asset(PERP)
        assert [(side, p.contracts) for side, p in ai.open_positions()] == [(PositionSide.LONG, 1.0), (PositionSide.SHORT, -0.5)]
        assert t.ctx.cash("USDT").used == pytest.approx(75.0)  # 150 of notional at leverage 2
        await t.ctx.close_position(PERP, PositionSide.LONG)  # a test may act through the context too, then settle
        await t.settle()
        assert [side for side, _ in ai.open_positions()] == [PositionSide.SHORT]
        assert (t.ctx.cash("USDT").used, t.ctx.cash("USDT").total) == (pytest.approx(25.0), pytest.approx(10_000.0))


async def test_refusals_say_why_and_nothing_reaches_the_exchange() -> None:
    async with LogicTest(MACross, {"fast": 2, "slow": 4, "order_value": 500.0}, symbols=[SPOT], balances={"USDT": 100.0}) as t:
        t.history(SPOT, [100.0, 100.0, 100.0, 99.0])
        await t.bars(SPOT, [98.0, 103.0, 106.0])
        assert t.placed() == [] and t.sent == []
        (refused,) = t.refusals(SPOT)
        assert refused.reason is RefusalReason.INSUFFICIENT_FUNDS and refused.client_order_id is None
        assert "insufficient USDT" in refused.detail and t.last_refusal is not None


async def test_the_exchange_refuses_a_post_only_order_that_would_take() -> None:
    class Taker(Logic):
        async def on_start(self, ctx: StrategyContext) -> None:
            await ctx.call(SPOT, OrderType.POST_ONLY, Side.BUY, amount=0.1, price=101.0, waitfor=0)

    async with LogicTest(Taker, symbols=[SPOT], prices={SPOT: 100.0}) as t:
        (order,) = t.placed()
        assert order.status is OrderStatus.REJECTED
        (refused,) = t.refusals()
        assert refused.reason is RefusalReason.EXCHANGE_REFUSED and refused.client_order_id == order.client_order_id


class Boom(Logic):
    class Params(LogicParams):
        below: float = 100.0

    params: Params

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.bars: list[Candle] = []
        self.stopped = False

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        self.bars.append(bar)
        if bar.close < self.params.below:
            raise ZeroDivisionError(f"bad bar {bar.close}")

    async def on_stop(self, ctx: StrategyContext) -> None:
        self.stopped = True


async def test_a_callback_exception_fails_the_test_as_it_was_raised() -> None:
    async with LogicTest(Boom, symbols=[SPOT]) as t:
        await t.bar(SPOT, close=101.0)  # no history: the series' first candle still reaches on_bar
        with pytest.raises(ZeroDivisionError, match=r"bad bar 99\.0"):
            await t.bar(SPOT, close=99.0)
    assert t.logic.stopped


async def test_errors_log_runs_the_callbacks_as_live_does() -> None:
    async with LogicTest(Boom, {"below": 100.0}, symbols=[SPOT], errors="log") as t:
        await t.bars(SPOT, [101.0, 99.0, 98.0, 102.0])
        assert t.errors == ["on_bar: ZeroDivisionError: bad bar 99.0", "on_bar: ZeroDivisionError: bad bar 98.0"]
        assert len(t.logic.bars) == 4 and not t.halted
        assert [e["callback"] for e in t.events("logic_error")] == ["on_bar", "on_bar"]
    async with LogicTest(Boom, symbols=[SPOT], errors="halt") as t:
        await t.bars(SPOT, [99.0])
        assert t.halted


async def test_bars_follow_the_history_one_timeframe_apart() -> None:
    async with LogicTest(Boom, {"below": 0.001}, symbols=[SPOT], timeframes=["5m"]) as t:
        rows = t.history(SPOT, [10.0, 11.0, 12.0])
        bar = await t.bar(SPOT, close=13.0, high=14.0, volume=3.0)
        assert [r.timestamp for r in rows] + [bar.timestamp] == [rows[0].timestamp + i * 300_000 for i in range(4)]
        assert bar == Candle(rows[-1].timestamp + 300_000, 12.0, 14.0, 12.0, 13.0, 3.0)  # it opens at the last close
        assert t.logic.bars == [bar] and t.ctx.asset(SPOT).last_price == 13.0
        assert t.clock.ms == bar.timestamp + 300_000
        with pytest.raises(ValueError, match="not one of the config's timeframes"):
            await t.bar(SPOT, close=1.0, timeframe="1m")


def test_candle_builders() -> None:
    assert candle(5.0, open=4.0) == Candle(0, 4.0, 5.0, 4.0, 5.0, 1.0)
    with pytest.raises(ValueError):
        candle(5.0, high=4.0)
    rows = candles([1.0, 2.0, 3.0], timeframe="1h", start=0)
    assert [(r.timestamp, r.open, r.close) for r in rows] == [(0, 1.0, 1.0), (3_600_000, 1.0, 2.0), (7_200_000, 2.0, 3.0)]
    with pytest.raises(ValueError, match="timeframe"):
        timeframe_ms("1x")


class BuysTen(Logic):
    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not ctx.trades():
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=10.0)


async def test_a_breaker_trips_in_a_logic_test_as_it_does_live() -> None:
    """10 coins bought at 100 lose 200 at 80, past ``max_daily_loss`` 50: the strategy halts. The harness never
    set the engine running, and the breakers wait for that, so they never tripped (an outside newcomer's trial;
    docs/testing.md shows this very config)."""
    async with LogicTest(BuysTen, symbols=[SPOT], balances={"USDT": 10_000.0}, config={"risk": {"max_daily_loss": 50.0}}) as t:
        t.history(SPOT, [100.0, 100.0])
        await t.bar(SPOT, close=100.0)
        await t.bar(SPOT, close=80.0)
        assert t.halted
        (trip,) = t.events("breaker_tripped")
        assert trip["breaker"] == "daily_loss" and trip["equity"] == pytest.approx(9_800.0)


class Levers(Logic):
    async def on_start(self, ctx: StrategyContext) -> None:
        await ctx.update_leverage(PERP, 3)


@pytest.mark.parametrize("hedged", [False, True])
async def test_a_leverage_set_before_any_position_sizes_the_margin_of_the_first_order(hedged: bool) -> None:
    """Leverage 3, then 20 000 of notional on 10 000 of margin: 6 667 needed, accepted. In hedge mode the engine set
    the leverage on the net view of the flat sides and lost it: the local check used leverage 1 and refused
    ("insufficient margin: need 20000, free 10000") what the exchange accepts."""
    async with LogicTest(Levers, symbols=[PERP], balances={"USDT": 10_000.0}, prices={PERP: 100.0}, hedged=hedged) as t:
        side = {"position_side": PositionSide.LONG} if hedged else {}
        answer = await t.ctx.call(PERP, OrderType.MARKET, Side.BUY, amount=200.0, **side)
        assert t.refusals() == [] and answer is not None and answer.amount == 200.0


class ReadsAtStart(Logic):
    seen: list[object] = []

    async def on_start(self, ctx: StrategyContext) -> None:
        ai = ctx.asset(SPOT)
        self.seen = [len(ai.ohlcv["5m"]), sorted(ai.ohlcv), ai.amount_step, ai.min_notional, ai.price_step]


async def test_candles_of_a_configured_timeframe_are_there_empty_and_another_is_named() -> None:
    """A newcomer's trial: ``ai.ohlcv["5m"]`` of a configured timeframe raised a bare ``KeyError`` in ``on_start``
    (no candle yet), ``ai.ohlcv["5m"]`` of one not configured said ``KeyError: '5m'`` and ``ai.candles("5m")`` gave
    nothing at all; sizing read ``ai.market["precision"]["amount"]``, which mypy --strict refuses (untyped)."""
    async with LogicTest(ReadsAtStart, symbols=[SPOT], timeframes=["1m", "5m"]) as t:
        count, frames, step, notional, tick = t.logic.seen
        assert count == 0 and frames == ["1m", "5m"] and step > 0 and notional > 0 and tick > 0
    async with LogicTest(Logic, symbols=[SPOT], timeframes=["1m"]) as t:
        ai = t.ctx.asset(SPOT)
        with pytest.raises(KeyError, match=r"'5m' is not one of the config's timeframes \['1m'\]"):
            ai.ohlcv["5m"]
        with pytest.raises(KeyError, match="not one of the config's timeframes"):
            ai.candles("5m")
        with pytest.raises(KeyError, match="not in the universe"):  # a bug in the logic, said (docs/strategies.md)
            await t.ctx.call("SOL/USDT", OrderType.MARKET, Side.BUY, amount=1.0)
