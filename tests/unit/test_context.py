"""Strategy code sees a narrow context, not the engine: read-only views and exactly seven actions; no halt, no
re-arm, no exchange client, no trace, no persisted state. ``logic.py`` and the example strategies import no engine,
and the runner hands every callback the context (and views of assets, orders and fills), in order."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from planar_core.engine.notices import BarClosed, Filled, OrderUpdated
from planar_core.logic import Logic
from planar_core.model import CancelOutcome, Candle, Order, OrderType, Side, Trade
from planar_core.model.context import StrategyContext
from planar_core.model.views import AssetView, OrderView, TradeView
from planar_core.runner import run
from planar_core.runner.context import LiveContext
from planar_core.strategies.grid import GridMaker

from .stubs import stub_strategy

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = {"call", "execute", "cancel", "cancel_all", "close_position", "update_leverage", "alert"}
READS = {
    "name",
    "params",
    "main_currency",
    "margin",
    "timeframes",
    "now",
    "universe",
    "asset",
    "balances",
    "cash",
    "free_margin",
    "positions",
    "open_orders",
    "trades",
    "equity",
    "metrics",
    "balance_confirmed",
}
# what the engine has and strategy code must not reach
ENGINE_ONLY = (
    "halt",
    "rearm",
    "venue",
    "sink",
    "state",
    "state_store",
    "emergency_stop",
    "emergency_order",
    "config",
    "risk",
    "ids",
    "journal",
    "lease",
    "supervisor",
    "hooks",
    "stop",
    "start",
    "refresh_balances",
    "fetch_open_orders",
)


def public(obj: object) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def ctx_with_orders() -> tuple[Any, LiveContext, Order, Order]:
    """A stub strategy with one own open order and one adopted (foreign client id) open order on BTC/USDT."""
    s = stub_strategy()
    ai = s.universe["BTC/USDT"]
    ai.candles("1m").merge([(60_000, 1.0, 2.0, 0.5, 1.5, 3.0), (120_000, 1.5, 2.0, 1.0, 1.8, 2.0)])
    own = Order(s.ids.next(), "BTC/USDT", Side.BUY, OrderType.GTC, 0.01, 49_000.0, id="1", status="open")
    foreign = Order("by-hand-1", "BTC/USDT", Side.SELL, OrderType.GTC, 0.01, 51_000.0, id="2", status="open")
    ai.orders[own.client_order_id] = own
    ai.orders[foreign.client_order_id] = foreign
    own.trades.append(Trade("BTC/USDT", Side.BUY, 0.001, 49_000.0, "1", own.client_order_id, 1, trade_id="t1"))
    ai.trades.extend(own.trades)
    ai.trades.append(Trade("BTC/USDT", Side.SELL, 0.001, 51_000.0, "2", foreign.client_order_id, 2, trade_id="t2"))
    return s, LiveContext(s, GridMaker.Params()), own, foreign


def test_the_context_offers_exactly_the_reads_and_the_seven_actions_and_no_engine() -> None:
    s, ctx, _, _ = ctx_with_orders()
    assert public(ctx) == READS | ACTIONS
    protocol = {n for n in vars(StrategyContext) if not n.startswith("_")}
    assert protocol == READS | ACTIONS  # the Protocol strategy code annotates with says the same
    for name in ENGINE_ONLY:
        assert hasattr(s, name), name  # the engine has it ...
        with pytest.raises(AttributeError):
            getattr(ctx, name)  # ... the strategy's context does not
    with pytest.raises(AttributeError):
        ctx.halt = s.halt  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        ctx.name = "other"  # type: ignore[misc]


def test_views_are_read_only_and_show_only_the_strategys_own_orders_and_trades() -> None:
    s, ctx, own, _ = ctx_with_orders()
    ai = ctx.universe["BTC/USDT"]
    assert isinstance(ai, AssetView) and ai.last_price == 50_000.0 and ai.base == "BTC"
    assert [o.client_order_id for o in ai.open_orders()] == [own.client_order_id]
    assert list(ai.orders) == [own.client_order_id]
    assert [t.trade_id for t in ai.trades] == ["t1"] and [t.trade_id for t in ctx.trades()] == ["t1"]
    assert ctx.open_orders() == ai.open_orders() and ctx.cash("USDT").free == 10_000.0
    (order,) = ai.open_orders()
    mutations = [
        lambda: setattr(ai, "last_price", 1.0),
        lambda: setattr(ai, "_ai", s.universe["ETH/USDT"]),
        lambda: setattr(ai.position, "contracts", 5.0),
        lambda: setattr(order, "status", "canceled"),
        lambda: setattr(order, "price", 1.0),
        lambda: setattr(order.trades[0], "amount", 9.0),
        lambda: setattr(ctx.cash("USDT"), "free", 1e9),
        lambda: ctx.balances.__setitem__("USDT", None),
        lambda: ctx.universe.__setitem__("X/USDT", ai),
        lambda: ai.orders.__setitem__("x", order),
        lambda: ai.market.__setitem__("base", "ETH"),  # type: ignore[index]
        lambda: ai.market["precision"].__setitem__("price", 1.0),  # type: ignore[index]
        lambda: ai.ohlcv.__setitem__("1m", None),
        lambda: ai.candles("1m").array.__setitem__((0, 4), 0.0),
        lambda: ai.candles("1m").merge([(180_000, 1, 1, 1, 1, 1)]),  # type: ignore[attr-defined]
        lambda: ai.candles("1m").take_closed(),  # type: ignore[attr-defined]
        lambda: setattr(ctx.metrics(), "equity", 0.0),
    ]
    for i, mutate in enumerate(mutations):
        with pytest.raises((AttributeError, TypeError, ValueError)):
            mutate()
            pytest.fail(f"mutation {i} went through")
    raw = s.universe["BTC/USDT"]
    assert raw.last_price == 50_000.0 and own.status == "open" and own.price == 49_000.0 and raw.market["base"] == "BTC"
    assert len(raw.candles("1m")) == 2 and raw.candles("1m").array[0, 4] == 1.5
    assert ai.candles("1m").closed[-1, 4] == np.float64(1.5)  # the view reads the engine's candles


async def test_a_cancel_names_only_an_order_the_engine_tracks_on_that_asset() -> None:
    """An order view made up by strategy code (another strategy's client id) is refused before the exchange is
    reached: the stub's exchange fails the test on any request."""
    _, ctx, _, _ = ctx_with_orders()
    made_up = OrderView(Order("other-strategy-7", "BTC/USDT", Side.BUY, OrderType.GTC, 1.0, 1.0, id="9", status="open"))
    answer = await ctx.cancel("BTC/USDT", made_up)
    assert answer.outcome is CancelOutcome.NOT_FOUND and answer.status is None and "nothing sent" in answer.detail


class Recorder(Logic):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, object, tuple[type, ...]]] = []

    async def on_start(self, ctx: StrategyContext) -> None:
        self.seen.append(("start", ctx, ()))

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        self.seen.append(("bar", ctx, (type(ai),)))

    async def on_order_update(self, ctx: StrategyContext, order: OrderView) -> None:
        self.seen.append(("order", ctx, (type(order),)))

    async def on_fill(self, ctx: StrategyContext, order: OrderView, trade: TradeView) -> None:
        self.seen.append(("fill", ctx, (type(order), type(trade))))

    async def on_stop(self, ctx: StrategyContext) -> None:
        self.seen.append(("stop", ctx, ()))


async def test_every_callback_receives_the_context_and_views_in_order() -> None:
    s, _, own, _ = ctx_with_orders()
    ai = s.universe["BTC/USDT"]
    logic, stop = Recorder(), asyncio.Event()
    task = asyncio.create_task(run(s, logic, stop=stop))
    await asyncio.sleep(0)
    s.notify(BarClosed(ai, "1m", Candle(60_000, 1.0, 1.0, 1.0, 1.0, 1.0)))
    s.notify(OrderUpdated(ai, own))
    for listen in s.hooks.listeners():  # past Strategy.notify's fill bookkeeping, which would read balances by REST
        listen(Filled(ai, own, own.trades[0]))
    stop.set()
    await task
    assert [(name, kinds) for name, _, kinds in logic.seen] == [
        ("start", ()),
        ("bar", (AssetView,)),
        ("order", (OrderView,)),
        ("fill", (OrderView, TradeView)),
        ("stop", ()),
    ]
    contexts = {id(ctx) for _, ctx, _ in logic.seen}
    assert len(contexts) == 1  # one context for the whole run
    ctx = logic.seen[0][1]
    assert isinstance(ctx, LiveContext) and ctx is not s


@pytest.mark.parametrize(
    "module",
    [
        "planar_core.logic",
        "planar_core.model.context",
        "planar_core.strategies.breakout",
        "planar_core.strategies.grid",
        "planar_core.strategies.ma_cross",
    ],
)
def test_strategy_code_and_its_context_import_no_engine_not_even_for_annotations(module: str) -> None:
    """Every import counts, ``TYPE_CHECKING`` ones included: the interface must not name the engine."""
    from planar_core.tools.imports import build

    g = build()
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(g.runtime.get(m, set()) | g.typing.get(m, set()))
    above = sorted(
        m for m in seen if m.startswith(("planar_core.engine", "planar_core.exchange", "planar_core.runner", "planar_core.risk"))
    )
    assert above == [], f"{module} reaches {above}"


def test_importing_logic_loads_no_engine_module() -> None:
    code = (
        "import sys, planar_core.logic\n"
        "print(sorted(m for m in sys.modules if m.startswith(('planar_core.engine', 'planar_core.exchange', 'ccxt'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
