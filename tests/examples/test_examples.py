"""The three example strategies of ``examples/`` run on the sandbox through the runner, driven by price moves.

Each loads its own config file (only the endpoint, credentials and store are replaced), runs the logic host
as ``planar run`` does, moves the sandbox's price with the admin API and waits on what the strategy should
do, comparing with the exchange's own snapshot."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from planar_core.engine.strategy import Strategy
from planar_core.logic import Logic
from planar_core.model import OrderType, Side
from planar_core.runner import RunResult, load_logic, run

from ..conftest import wait_for

pytestmark = pytest.mark.venues()  # venue-independent: every test here runs on Binance and Bybit (tests/conftest.py)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def shock(sandbox: Any, symbol: str, factor: float, kind: str = "spot") -> None:
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{sandbox.url}/admin/price", json={"symbol": symbol, "factor": factor, "kind": kind})
        assert r.status == 200, await r.text()


def exchange_view(sandbox: Any, s: Strategy) -> Any:
    """The exchange's own record of the strategy's account (its admin snapshot)."""
    key = s.config.credentials.api_key
    assert key is not None
    return sandbox.ex.snapshot()["accounts"][key.get_secret_value()]


Runner = Callable[..., Awaitable[tuple[Strategy, Logic, "asyncio.Task[RunResult]", asyncio.Event]]]


@pytest.fixture
async def example(strategy_factory: Any, sandbox: Any) -> AsyncIterator[Runner]:
    """Start an example's strategy on a fresh account (10 000 USDT, 0.05 BTC) and run its logic in the
    background; stopped at teardown."""
    running: list[tuple[asyncio.Task[RunResult], asyncio.Event]] = []

    async def start(name: str, **overrides: Any) -> tuple[Strategy, Logic, asyncio.Task[RunResult], asyncio.Event]:
        path = EXAMPLES / f"{name}.toml"
        file = tomllib.loads(path.read_text())
        params = {**file["logic_params"], **overrides.pop("logic_params", {})}
        overrides.setdefault("universe", file["universe"])
        overrides["credentials"] = {"api_key_env": "EXCHANGE_API_KEY", "api_secret_env": "EXCHANGE_API_SECRET"}  # the fixture's account
        acct = sandbox.ex.add_account({"USDT": Decimal(10_000), "BTC": Decimal("0.05")})
        s = await strategy_factory(file["name"], config_path=str(path), logic_params=params, acct=acct, **overrides)
        logic = load_logic(s.config.logic, s.config.logic_params, s.config.config_dir)
        stop = asyncio.Event()
        task = asyncio.create_task(run(s, logic, tick_interval=s.config.tick_interval, stop=stop, logic_errors="fail"))
        running.append((task, stop))
        return s, logic, task, stop

    yield start
    for task, stop in running:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.venues()
async def test_ma_cross_trades_on_closed_bars(example: Runner, sandbox: Any) -> None:
    s, logic, task, stop = await example("ma_cross", universe=["BTC/USDT"], logic_params={"fast": 2, "slow": 4})
    ai = s.universe["BTC/USDT"]
    await shock(sandbox, "BTCUSDT", 0.97)  # down first: the first signal is only remembered
    await wait_for(lambda: logic.last_signal.get("BTC/USDT") == -1, timeout=20)
    bars_before = ai.ohlcv["1s"].closed_through
    await shock(sandbox, "BTCUSDT", 1.03)
    await wait_for(lambda: any(o.side is Side.BUY for o in ai.orders.values()), timeout=20)
    buy = next(o for o in ai.orders.values() if o.side is Side.BUY)
    assert bars_before is not None and buy.timestamp >= bars_before + 1000  # decided on a bar that closed after the move
    stop.set()
    result = await task
    # at least the bar that remembered the down signal and the bar that bought (history is loaded before on_start,
    # so the averages need no warm-up bars; how many bars close before the buy depends on how fast the engine starts)
    assert result.callbacks["on_bar"] >= 2 and not result.errors
    assert result.ticks == 0  # MACross has no on_tick: the clock never woke it
    assert buy.client_order_id in {o["client_order_id"] for o in exchange_view(sandbox, s)["orders"]}


@pytest.mark.venues()
async def test_futures_breakout_enters_and_takes_profit(example: Runner, sandbox: Any) -> None:
    sym = "BTC/USDT:USDT"
    # exits 6 % from the latest price: a breakout the path makes on its own just before a 2 % shock fills after it,
    # and its exits must still be on their side of the market (the mark also swings around the last price)
    s, logic, _task, _stop = await example(
        "futures_breakout", universe=[sym], logic_params={"lookback": 3, "take_profit": 0.06, "stop_loss": 0.06}
    )
    ai = s.universe[sym]

    def exits_open() -> bool:  # both exits on the exchange, not only booked here: a shock must not overtake them
        mine = {o.client_order_id for o in ai.open_orders() if o.parent is not None}
        live = {a["client_algo_id"] for a in exchange_view(sandbox, s)["algo_orders"] if a["status"] == "NEW"}
        return len(mine) == 2 and mine <= live

    await wait_for(lambda: len(ai.candles("1s").closed) >= 4, timeout=20)
    level = 1.02
    await shock(sandbox, "BTCUSDT", level, "linear")  # above the channel: long at the next close
    await wait_for(lambda: ai.position.contracts != 0, timeout=20)
    if ai.position.contracts < 0:  # the path broke out downwards before the shock: its 6 % stop takes it out
        level *= 1.08
        await shock(sandbox, "BTCUSDT", level, "linear")
        await wait_for(lambda: ai.position.contracts > 0, timeout=20)
    await wait_for(exits_open, timeout=10)
    entry = ai.position.entry_price
    # this entry's exits, by client id: once one acts the strategy may trade again, with exits of its own
    tp_id, sl_id = (
        next(o.client_order_id for o in ai.open_orders() if o.parent is not None and o.type is kind)
        for kind in (OrderType.TAKE_PROFIT_MARKET, OrderType.STOP_MARKET)
    )
    await shock(sandbox, "BTCUSDT", level * 1.08, "linear")  # +8 % over the entry: take profit
    await wait_for(lambda: bool(ai.orders[tp_id].trades), timeout=20)
    await wait_for(lambda: ai.orders[sl_id].status.value == "canceled", timeout=10)
    await wait_for(lambda: logic.exits.get(sym) == "take_profit", timeout=10)  # type: ignore[attr-defined]  # its on_fill
    tp = ai.orders[tp_id]
    assert tp.side is Side.SELL and tp.trades[0].price > entry
    algos = {a["client_algo_id"]: a["status"] for a in exchange_view(sandbox, s)["algo_orders"]}
    assert (algos[tp_id], algos[sl_id]) == ("FINISHED", "CANCELED")  # the exchange's word: one acted, one cancelled


async def test_grid_rests_post_only_and_requotes_on_fills(example: Runner, sandbox: Any) -> None:
    s, _logic, _task, _stop = await example("grid_maker", logic_params={"levels": 2, "spacing": 0.003})
    ai = s.universe["BTC/USDT"]
    await wait_for(lambda: len(ai.open_orders()) == 4, timeout=20)
    assert all(o.type is OrderType.POST_ONLY for o in ai.orders.values())
    top_buy = max(o.price for o in ai.open_orders() if o.side is Side.BUY and o.price)
    await shock(sandbox, "BTCUSDT", 0.9955)  # through the first buy level, not the second
    await wait_for(lambda: any(o.side is Side.BUY and o.trades for o in ai.orders.values()), timeout=20)
    fill = next(o for o in ai.orders.values() if o.side is Side.BUY and o.trades).trades[0]
    assert abs(fill.price - top_buy) / top_buy < 1e-6
    target = fill.price * 1.003  # the answer to a filled buy: a sell one level above it
    await wait_for(
        lambda: any(o.side is Side.SELL and o.price and abs(o.price - target) / target < 0.0015 for o in ai.open_orders()), timeout=20
    )

    def agree() -> bool:  # the grid may be re-quoting right now: the engine's view catches up through its streams
        return {o.client_order_id for o in ai.open_orders()} == {o["client_order_id"] for o in exchange_view(sandbox, s)["open_orders"]}

    await wait_for(agree, timeout=10)  # no resync, no restart: the watchers alone must bring the two together
