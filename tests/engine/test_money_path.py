"""The money path's defects found by outside testing (issue 12), one test each; every one failed before its fix.

Every comparison here looks at the engine's own view before anything repairs it (no resync, no restart).
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC
from pathlib import Path

import ccxt
import pytest

from planar_core.config import ConfigError
from planar_core.engine import strategy as build_strategy
from planar_core.engine.health import reconnect
from planar_core.exchange.limiter import RequestWindow, WindowSpent
from planar_core.model import PENDING, UNKNOWN, Order, OrderStatus, OrderType, Side, Trade
from planar_core.model.venue import OrderReport
from planar_core.risk import metrics as M
from planar_core.sandbox import Faults

from ..conftest import bid_ask, snapshot, wait_for
from ..faults.harness import verify

pytestmark = pytest.mark.venues()  # venue-independent: every test here runs on Binance and Bybit (tests/conftest.py)

SPOT2 = {"BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT"}


async def _rest(s, sandbox, n: int) -> None:
    """n resting buys 20-30 % under the market on the universe's spot symbols."""
    for i in range(n):
        sym = list(SPOT2)[i % 2]
        bid, _ = bid_ask(sandbox, SPOT2[sym])
        amount = {"BTC/USDT": 0.001, "ETH/USDT": 0.01}[sym]
        assert await s.call(sym, OrderType.GTC, Side.BUY, amount=amount, price=bid * (0.7 + i / 100), waitfor=0) is PENDING


# ----------------------------------------------------------------------------------------------- 1. e-stop honesty
@pytest.mark.parametrize(("fault", "left"), [(Faults(error_rate=1.0), 4), (Faults(malformed_rate=1.0), 0)], ids=["503", "truncated JSON"])
async def test_estop_is_never_clean_while_orders_stay_open(strategy_factory, sandbox, account, fault, left) -> None:
    """Refused (503), the cancels leave the orders open; with truncated answers they reach the exchange (the engine
    cancels what its record names before listing) but nobody saw the exchange say so: neither is clean, nothing is
    counted cancelled, and the local orders keep their status until the exchange reports how they ended."""
    s = await strategy_factory(universe=list(SPOT2), risk={"estop_budget_s": 1.0})
    await _rest(s, sandbox, 4)
    sandbox.ex.faults = fault
    report = await s.emergency_stop("exchange unreachable")
    sandbox.ex.faults = Faults()
    assert not report.clean and report.cancelled == 0
    assert {k.split(":")[0] for k in report.unverified} == set(SPOT2)  # every symbol: could not list its open orders
    assert len(snapshot(sandbox, account)["open_orders"]) == left
    statuses = lambda: [str(o.status) for ai in s.universe.values() for o in ai.orders.values()]  # noqa: E731
    # local follows the exchange: open while it lists them; cancelled once its user stream says so
    await wait_for(lambda: statuses() == (["open"] if left else ["canceled"]) * 4, timeout=10)
    assert s.halted
    recorded = s.sink.of("emergency_stop")[-1]["payload"]
    assert recorded["clean"] is False and recorded["unverified"]


async def test_estop_reports_an_unreadable_position_as_unknown_not_flat(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(name="perp", margin=True, universe=["BTC/USDT:USDT"], risk={"estop_budget_s": 1.0})
    assert isinstance(await s.call("BTC/USDT:USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2), Trade)
    sandbox.ex.faults = Faults(error_rate=1.0)
    report = await s.emergency_stop("close everything", close_positions=True)
    sandbox.ex.faults = Faults()
    assert not report.clean and "BTC/USDT:USDT: position" in report.unverified
    assert snapshot(sandbox, account)["futures"]["positions"]  # still open on the exchange


async def test_estop_recovers_when_the_exchange_comes_back_within_its_budget(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(universe=list(SPOT2), risk={"estop_budget_s": 20.0})
    await _rest(s, sandbox, 4)
    sandbox.ex.faults = Faults(error_rate=1.0)

    def failed_calls() -> int:
        return sum(1 for e in s.sink.of("api_call") if e.get("result") != "ok")

    async def heal() -> None:
        await wait_for(lambda: s.venue.in_flight == 0 and s.halted, timeout=5)
        before = failed_calls()
        await wait_for(lambda: failed_calls() >= before + 3, timeout=10)  # a few failed rounds first
        sandbox.ex.faults = Faults()

    healer = asyncio.create_task(heal())
    report = await s.emergency_stop("flaky exchange")
    await healer
    assert report.clean and report.cancelled == 4 and snapshot(sandbox, account)["open_orders"] == []
    assert all(o.status == "canceled" for ai in s.universe.values() for o in ai.orders.values())


# ----------------------------------------------------------------------------- 2. and 20. lost ack, invisible order
async def test_lost_ack_then_failed_lookups_leave_the_order_unknown_and_never_resent(strategy_factory, sandbox, account) -> None:
    """The order is booked and FILLED, its acknowledgement lost, and GET answers -2013 for 2 s: the engine must not
    call it failed (the strategy would send it again), nor re-send it (Binance would book it twice: the earlier id
    is no longer open, so the sandbox, like Binance, accepts the same client id again)."""
    s = await strategy_factory(order_monitoring={"absent_after": 5.0}, timeouts={"order_placement": 1.0})
    sandbox.ex.faults = Faults(lost_ack_rate=1.0, invisible_s=2.0, paused_user_stream=True)
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=0.5) is UNKNOWN  # not PENDING: unconfirmed
    (order,) = s.universe["BTC/USDT"].orders.values()
    assert order.status == "unknown" and not s.sink.of("order_failed")
    assert order.client_order_id not in {e["client_order_id"] for e in s.sink.of("order_failed")}
    sandbox.ex.faults = Faults(invisible_s=2.0)
    await wait_for(lambda: order.status == "closed", timeout=10)  # the resolver asked until the exchange could answer
    await wait_for(lambda: bool(order.trades), timeout=5)  # and its fill attached to it
    booked = snapshot(sandbox, account)["orders"]
    assert [o["client_order_id"] for o in booked] == [order.client_order_id] and booked[0]["status"] == "FILLED"
    assert order.client_order_id not in s.journal.unresolved()
    await verify(s, sandbox, account)


# Binance-specific by nature: Binance's client ids are unique among open orders only; Bybit's orderLinkId is unique
# for good (a reuse is refused: 170141 / 110072, tests/test_sandbox_bybit_trading.py)
@pytest.mark.venues("binance")
async def test_sandbox_lets_a_closed_orders_client_id_be_reused_like_binance(client, sandbox) -> None:
    bid, _ = bid_ask(sandbox)
    resting = await client.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.8, 2), params={"clientOrderId": "reuse-1"})
    with pytest.raises(ccxt.InvalidOrder):  # an open order holds the id: -2010 Duplicate order sent
        await client.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.8, 2), params={"clientOrderId": "reuse-1"})
    await client.cancel_order(resting["id"], "BTC/USDT")
    again = await client.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "reuse-1"})
    assert again["clientOrderId"] == "reuse-1" and again["id"] != resting["id"]


# ----------------------------------------------------------------------------------------- 3. status never backwards
async def test_a_stale_update_never_moves_an_order_backwards(strategy_factory, sandbox) -> None:
    s = await strategy_factory()
    trade = await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2)
    ai = s.universe["BTC/USDT"]
    order = ai.orders[trade.client_order_id]
    assert order.status == "closed"
    stale = OrderReport("BTC/USDT", order.id, order.client_order_id, OrderStatus.OPEN, Side.BUY, OrderType.MARKET, 0.01, 0.0)
    s.apply_order(stale, source="poll")
    assert order.status == "closed" and order.filled == 0.01
    refused = s.sink.of("illegal_transition")[-1]
    assert (refused["old"], refused["new"], refused["client_order_id"]) == ("closed", "open", order.client_order_id)
    # a late fill reported after a cancel is legal: the status stays, the filled amount grows
    bid, _ = bid_ask(sandbox)
    await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.02, price=bid * 0.8, waitfor=0)
    resting = ai.open_orders()[0]
    assert (await s.cancel(ai, resting)).cancelled and resting.status == "canceled"
    n_illegal = len(s.sink.of("illegal_transition"))
    s.apply_order(
        OrderReport(
            "BTC/USDT",
            resting.id,
            resting.client_order_id,
            OrderStatus.CANCELED,
            Side.BUY,
            OrderType.GTC,
            0.02,
            0.01,
            average=resting.price,
        )
    )
    assert resting.status == "canceled" and resting.filled == 0.01 and len(s.sink.of("illegal_transition")) == n_illegal


# ------------------------------------------------------------------------------- 4. and 16. one equity, free margin
async def test_futures_equity_and_free_margin_do_not_depend_on_the_source(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(name="perp", margin=True, universe=["BTC/USDT:USDT"], default_leverage=5, balance_watcher={"interval": 3600})
    ai = s.universe["BTC/USDT:USDT"]
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.5, waitfor=2), Trade)
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.5))
    sandbox.ex.markets[("linear", "BTCUSDT")].shock = 1.03
    await wait_for(lambda: ai.last_price > 1.02 * ai.position.entry_price)  # the engine has seen the shock too
    await s.refresh_balances()  # REST: ccxt's total there is wallet + unrealized
    fut = snapshot(sandbox, account)["futures"]
    assert s.cash("USDT").total == pytest.approx(float(fut["wallet"]))
    eq_rest, unpriced = M.equity(s)
    assert not unpriced and eq_rest == pytest.approx(float(fut["wallet"]) + (ai.last_price - ai.position.entry_price) * 0.5)
    # a fill on the websocket: ACCOUNT_UPDATE carries the wallet only
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.SELL, amount=0.1, waitfor=2), Trade)
    fut = snapshot(sandbox, account)["futures"]
    await wait_for(lambda: s.cash("USDT").total == pytest.approx(float(fut["wallet"])))
    eq_ws, _ = M.equity(s)
    assert eq_ws == pytest.approx(float(fut["wallet"]) + (ai.last_price - ai.position.entry_price) * ai.position.contracts)
    assert s.holdings.free_margin("USDT") == pytest.approx(float(fut["available"]), rel=0.02)  # was stored as 0
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.1, waitfor=2), Trade)  # was refused: "free 0"


@pytest.mark.parametrize("margin", [False, True], ids=["spot", "futures"])
async def test_balances_keep_flowing_after_a_reconnect(strategy_factory, sandbox, account, margin) -> None:
    """reconnect() closes the websockets on purpose; the balance watcher must resubscribe, not sit out a fallback
    period polling every ``interval`` (here an hour, so nothing but the stream can bring the updates)."""
    kw = {"name": "perp", "margin": True, "universe": ["BTC/USDT:USDT"]} if margin else {}
    s = await strategy_factory(balance_watcher={"interval": 3600}, **kw)
    sym, cur = ("BTC/USDT:USDT", "USDT") if margin else ("BTC/USDT", "BTC")

    async def no_wait(_: float) -> None:
        return None

    assert await reconnect(s, sleep=no_wait)
    await wait_for(lambda: s.watcher_health()["balance"]["mode"] == "websocket")
    for _ in range(3):  # each update after the reconnect arrives, not only the first one
        assert isinstance(await s.call(sym, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2), Trade)
        snap = snapshot(sandbox, account)
        want = float(snap["futures"]["wallet"]) if margin else float(snap["spot_balances"]["BTC"]["free"])
        await wait_for(lambda want=want: s.cash(cur).total == pytest.approx(want, abs=1e-9))


# --------------------------------------------------------------------------------- 5. and 9. valuation
async def test_incomplete_valuation_is_recorded_alerted_and_blocks_new_risk(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(risk={"max_daily_loss": 100}, ohlcv_watcher={"use_websocket": False, "interval": 3600})
    s.universe["ETH/USDT"].last_price = None  # ETH is held (20) and has no price now
    s.risk.evaluate_breakers(s)
    incomplete = s.sink.of("valuation_incomplete")[-1]
    assert incomplete["unpriced"] == ["ETH"] and "breakers cannot compare" in incomplete["reason"]
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None  # adds risk: refused
    assert "valuation incomplete" in s.sink.of("risk_rejected")[-1]["reason"]
    assert isinstance(await s.call("BTC/USDT", OrderType.MARKET, Side.SELL, amount=0.01, waitfor=2), Trade)  # reduces: allowed
    s.universe["ETH/USDT"].last_price = 3000.0
    s.risk.evaluate_breakers(s)
    assert s.sink.of("valuation_incomplete")[-1]["unpriced"] == []


async def test_valuation_walks_a_price_path_to_the_main_currency(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(universe=["ETH/BTC"])  # main currency USDT: no universe market prices BTC or ETH in it
    await wait_for(lambda: "BTC/USDT" in s.holdings.conversion_prices)  # the valuation market the engine found and polls
    eq, unpriced = M.equity(s)
    prices = dict(s.holdings.conversion_prices)
    btcusdt = prices["BTC/USDT"]
    eth = prices.get("ETH/USDT") or s.universe["ETH/BTC"].last_price * btcusdt  # the shortest path: ETH/USDT when listed
    assert not unpriced and eq > s.cash("USDT").total
    assert eq == pytest.approx(s.cash("USDT").total + s.cash("BTC").total * btcusdt + s.cash("ETH").total * eth)
    assert M.position_value(s, s.universe["ETH/BTC"]) == pytest.approx(s.cash("ETH").total * eth)
    s.holdings.forget_conversion_price("ETH/USDT")  # without the direct market: through ETH/BTC and BTC/USDT
    eth = s.universe["ETH/BTC"].last_price * btcusdt
    assert M.position_value(s, s.universe["ETH/BTC"]) == pytest.approx(s.cash("ETH").total * eth)


# ------------------------------------------------------------------------------- 7. websocket results never dropped
async def test_a_finished_watch_is_never_cancelled_or_dropped(strategy_factory, monkeypatch) -> None:
    s = await strategy_factory(order_monitoring={"interval": 0.2, "use_websocket": True})
    ai = s.universe["BTC/USDT"]
    order = Order("x-1", "BTC/USDT", Side.BUY, OrderType.GTC, 0.01, 100.0, id="42", status=OrderStatus.OPEN)
    ai.orders["x-1"] = order
    loop = asyncio.get_running_loop()
    orders_done: asyncio.Future[list[dict]] = loop.create_future()
    cancelled: list[str] = []
    calls = {"trades": 0}
    update = {
        "id": "42",
        "clientOrderId": "x-1",
        "symbol": "BTC/USDT",
        "status": "closed",
        "filled": 0.01,
        "cost": 1.0,
        "amount": 0.01,
        "side": "buy",
        "type": "limit",
    }

    async def watch_orders(symbol: str) -> list[dict]:
        try:
            return list(await asyncio.shield(orders_done))
        except asyncio.CancelledError:
            cancelled.append("orders")
            raise

    async def watch_my_trades(symbol: str | None = None) -> list[dict]:
        if symbol is None:  # the engine's account-wide fill stream (watchers.fill_stream), not the asset's watcher
            await asyncio.sleep(3600)
            return []
        calls["trades"] += 1
        if calls["trades"] == 1:
            # the orders watch is resolved in the same instant, just after the waiter of asyncio.wait woke up
            asyncio.current_task().add_done_callback(lambda _: orders_done.done() or orders_done.set_result([update]))
            raise ccxt.NetworkError("trades stream dropped")
        await asyncio.sleep(3600)
        return []

    monkeypatch.setattr(s.venue.ex, "watch_orders", watch_orders)
    monkeypatch.setattr(s.venue.ex, "watch_my_trades", watch_my_trades)
    monkeypatch.setattr(s, "sync_asset_orders", lambda *a, **k: asyncio.sleep(0))  # no REST rescue
    await s.supervisor.stop("orders:BTC/USDT")
    s.ensure_order_tasks(ai)
    await wait_for(lambda: order.status == "closed", timeout=10)
    assert cancelled == []


# --------------------------------------------------------------------------------------- 8. risk actions on spot
async def test_risk_close_cancels_own_orders_and_sells_what_is_free(strategy_factory, sandbox, account) -> None:
    acct = sandbox.ex.add_account({"USDT": 1000, "BTC": 0.1})
    # the account is the strategy's alone: the coins it held before are the strategy's to sell (on a shared account
    # only what its own fills bought is: tests/risk/test_estop.py)
    s = await strategy_factory(acct=acct, universe=["BTC/USDT"], risk={"exclusive_account": True})
    _, ask = bid_ask(sandbox)
    assert await s.call("BTC/USDT", OrderType.GTC, Side.SELL, amount=0.04, price=ask * 1.3, waitfor=0) is PENDING
    await wait_for(lambda: s.cash("BTC").used == pytest.approx(0.04))
    await s.risk.close_highest_risk_position(s, "test: too much leverage")
    await wait_for(lambda: float(snapshot(sandbox, acct)["spot_balances"]["BTC"]["free"]) < 0.00001)
    assert snapshot(sandbox, acct)["open_orders"] == []


async def test_volatility_sizing_comes_before_the_minimum_checks(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(universe=["BTC/USDT"], risk={"volatility_adjustment": True, "target_volatility": 1e-9})
    ai = s.universe["BTC/USDT"]
    await wait_for(lambda: len(ai.ohlcv.get("1m", [])) > 10)
    amount = 8.0 / ai.last_price  # 8 USDT: above the 5 USDT minimum, below it once scaled by 0.25
    assert await s.call(ai, OrderType.MARKET, Side.BUY, amount=amount) is None
    assert "minimum" in s.sink.of("order_failed")[-1]["reason"]
    assert not [e for e in s.sink.of("api_call") if e["endpoint"] == "create_order"]  # refused before any request


@pytest.mark.parametrize(
    ("amount", "price", "reason"),
    [(True, None, "invalid amount"), (0.01, True, "invalid price"), (0.01, 1e308, "price"), (0.01, 1e-300, "price")],
)
async def test_odd_numbers_are_refusals_not_exceptions(strategy_factory, sandbox, account, amount, price, reason) -> None:
    s = await strategy_factory()
    otype = OrderType.GTC if price is not None else OrderType.MARKET
    assert await s.call("BTC/USDT", otype, Side.BUY, amount=amount, price=price) is None
    assert reason in s.sink.of("order_failed")[-1]["reason"]
    assert snapshot(sandbox, account)["orders"] == []


# ---------------------------------------------------------------------------------- 15. exchange params
@pytest.mark.parametrize(
    "params",
    [
        {"quantity": 2},
        {"newClientOrderId": "foreign-1"},
        {"clientOrderId": "x"},
        {"quoteOrderQty": 1000},
        {"timeInForce": "GTC"},
        {"reduceOnly": True},
    ],
)
async def test_params_cannot_override_what_was_checked(strategy_factory, sandbox, account, params) -> None:
    s = await strategy_factory()
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.001, **params) is None
    assert "refused" in s.sink.of("order_failed")[-1]["reason"]
    assert snapshot(sandbox, account)["orders"] == []
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.001, waitfor=2, selfTradePreventionMode="NONE")


# --------------------------------------------------------------------------------------- 14. mode precedence
def test_mode_comes_from_the_file_and_conflicts_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "paper.toml"
    cfg.write_text('name = "p"\nmode = "paper"\nuniverse = ["BTC/USDT"]\n')
    env = {"EXCHANGE_API_KEY": "k", "EXCHANGE_API_SECRET": "s"}
    common = {"env": env, "store_root": str(tmp_path / "store"), "event_tracing": {"enabled": False}}
    assert build_strategy("p", config_path=cfg, **common).config.mode == "paper"
    assert build_strategy("q", "paper", **common).config.mode == "paper"
    assert not build_strategy("r", **common).config.mode == "paper"  # nothing says paper: live
    with pytest.raises(ConfigError, match="mode: the config file says 'paper' but the argument says 'live'"):
        from planar_core.engine import Live

        build_strategy("p", Live(), config_path=cfg, **common)
    with pytest.raises(ConfigError, match="PLANAR_MODE says 'live'"):
        build_strategy("p", config_path=cfg, **{**common, "env": {**env, "PLANAR_MODE": "live"}})


# ------------------------------------------------------------------------------------------ 18. bad input
def test_bad_config_values_are_named_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="name: String should have at most 64"):
        build_strategy("x" * 300, store_root=str(tmp_path))
    with pytest.raises(ConfigError, match=r"timeouts\.order_placement"):
        build_strategy("t", store_root=str(tmp_path), timeouts={"order_placement": math.inf})
    with pytest.raises(ConfigError, match="logic_params"):
        build_strategy("t", store_root=str(tmp_path), logic_params={"no_such": 1})


# ------------------------------------------------------------------------------------- 13. nothing fails silently
async def test_a_failing_update_hook_is_recorded_and_alerted_and_the_breakers_still_run(strategy_factory, sandbox) -> None:
    s = await strategy_factory(risk={"max_daily_loss": 1000})

    def broken(strat) -> None:
        raise RuntimeError("hook bug")

    s.hooks.on_balance(broken, first=True)
    s.state_store.update(day_start_equity=None)
    assert isinstance(await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2), Trade)
    await wait_for(lambda: any("hook bug" in (e.get("reason") or "") for e in s.sink.of("error_occurred")))
    await wait_for(lambda: s.state.day_start_equity is not None)  # the breaker hook after it still ran


# ------------------------------------------------------------------------------- 11. tuned values reach the wire
async def test_tuned_parameters_change_what_the_engine_sends(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(universe=["BTC/USDT"])
    ai = s.universe["BTC/USDT"]
    s.state_store.update(tuned_params={"prefer_limit_orders": True, "limit_order_offset": 0.2, "order_timeout": 30.0})
    last = ai.last_price  # what execute() reads before its first await: the fill may move last_price afterwards
    await s.execute(ai, Side.BUY, 0.001)
    sent = snapshot(sandbox, account)["orders"][-1]
    assert sent["type"] == "LIMIT" and float(sent["price"]) == pytest.approx(last * 1.002, abs=0.02)
    s.state_store.update(tuned_params={"prefer_limit_orders": True, "use_market_orders_threshold": 0.1})  # 0.001 BTC < 10 % of equity
    await s.execute(ai, Side.BUY, 0.001)
    assert snapshot(sandbox, account)["orders"][-1]["type"] == "MARKET"
    s.state_store.update(tuned_params={"prefer_limit_orders": True, "limit_order_offset": 0.0, "order_timeout": 0.3})
    bid, _ = bid_ask(sandbox)
    sandbox.ex.markets[("spot", "BTCUSDT")].shock = 1.0
    ai.last_price = bid * 0.9  # a limit that cannot fill: cancelled once order_timeout passed
    await s.execute(ai, Side.BUY, 0.001)
    await wait_for(lambda: snapshot(sandbox, account)["orders"][-1]["status"] == "CANCELED")


# ------------------------------------------------------------------------------- 12. config fields that do something
async def test_watcher_timeout_and_retry_count_bound_each_poll(strategy_factory, sandbox) -> None:
    s = await strategy_factory(balance_watcher={"use_websocket": False, "interval": 0.2, "retry_count": 0, "timeout": 0.3})
    sandbox.ex.faults = Faults(latency_ms=800)  # slower than the watcher's own timeout, faster than timeouts.balance_sync
    await wait_for(lambda: s.watcher_health()["balance"]["failures"] >= 2)
    sandbox.ex.faults = Faults()
    failed = [e for e in s.sink.of("api_call") if e["endpoint"] == "fetch_balance" and e["result"] != "ok"]
    assert {e["result"] for e in failed} == {"NetworkUncertain"}
    assert len(failed) == s.watcher_health()["balance"]["failures"]  # retry_count 0: one request per failed poll


def _window_on_a_fake_clock(per_minute: int) -> tuple[RequestWindow, list[float], list[float]]:
    """A request window whose clock moves only when it sleeps: (window, [now], the sleeps it took)."""
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    return RequestWindow(per_minute, clock=lambda: now[0], sleep=fake_sleep), now, slept


async def test_requests_per_minute_caps_the_request_count() -> None:
    window, now, slept = _window_on_a_fake_clock(3)
    for t in (0.0, 10.0, 20.0, 30.0):  # the 4th request in 60 s waits until the 1st leaves the window
        now[0] = max(now[0], t)
        await window.acquire()
    assert slept == [30.0] and window.waits == 1
    with pytest.raises(WindowSpent) as spent:  # one that may wait 5 s is refused: the next place frees in 10 s
        await window.acquire(max_wait=5.0)
    assert spent.value.retry_after == 10.0 and slept == [30.0] and len(window._sent) == 3  # not counted: not sent


async def test_an_urgent_request_is_counted_by_the_request_cap_but_never_waits() -> None:
    from planar_core.exchange.limiter import urgent

    window, now, slept = _window_on_a_fake_clock(2)
    await window.acquire()
    await window.acquire()
    now[0] = 10.0
    with urgent():  # the emergency stop's: counted, never delayed
        await window.acquire()
    assert slept == [] and len(window._sent) == 3
    await window.acquire()  # any other request waits until two of the three left the window
    assert slept == [50.0]


async def test_an_order_is_refused_not_sent_late_while_the_request_cap_is_spent(strategy_factory, sandbox, account) -> None:
    """An order waits for the engine's own request cap (``requests_per_minute``) at most half its placement time,
    then is refused (RATE_LIMITED, nothing sent) instead of reaching the exchange up to a minute after the logic
    asked for it; the logic can ask again with the prices of then."""
    import time

    from planar_core.model import RefusalReason

    s = await strategy_factory(universe=["BTC/USDT"], rate_limits={"requests_per_minute": 500}, timeouts={"order_placement": 2.0})
    bid, _ = bid_ask(sandbox)
    window = s.venue.window
    window._sent.extend([time.monotonic()] * window.per_minute)  # the minute's requests spent just now
    answer = await asyncio.wait_for(s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.8, waitfor=0), 30)
    assert answer is None and s.last_refusal is not None and s.last_refusal.reason is RefusalReason.RATE_LIMITED, s.last_refusal
    assert snapshot(sandbox, account)["open_orders"] == []  # never sent


async def test_a_position_changed_outside_the_engine_is_alerted(strategy_factory, sandbox, account, client) -> None:
    s = await strategy_factory(name="perp", margin=True, universe=["ETH/USDT:USDT"], position_watcher={"interval": 0.3})
    await client.create_order("ETH/USDT:USDT", "market", "buy", 0.2)  # someone else trades the account
    await wait_for(lambda: any("changed outside the engine" in (e.get("reason") or "") for e in s.sink.of("error_occurred")))
    await wait_for(lambda: s.universe["ETH/USDT:USDT"].position.contracts == pytest.approx(0.2))


# ------------------------------------------------------------------------------------- 13. nothing swallowed (flows)
def test_a_prefect_event_that_cannot_be_emitted_is_recorded_and_alerted(monkeypatch) -> None:
    import tasks.events as common
    from planar_core.model.sink import MemorySink

    def broken(**kwargs: object) -> None:
        raise ConnectionError("events API unreachable")

    sent: list[str] = []

    class Alerts:
        def submit(self, text: str, level: str) -> bool:
            sent.append(text)
            return True

    monkeypatch.setattr(common, "emit_event", broken)
    inner = MemorySink()
    sink = common.PrefectEventSink(inner, "s1")
    sink.alerts = Alerts()
    sink.record("breaker_tripped", breaker="daily_loss", reason="test")
    assert inner.of("breaker_tripped") and "could not be emitted" in inner.of("error_occurred")[-1]["reason"]
    assert sent and "planar.breaker_tripped" in sent[0]


async def test_failed_reads_of_the_flow_run_are_recorded_then_alerted(strategy_factory, monkeypatch) -> None:
    from datetime import datetime

    import flows.control as control

    s = await strategy_factory()
    sent: list[str] = []
    monkeypatch.setattr(s, "alert", lambda text, level="warning": sent.append(text))

    class Client:
        async def __aenter__(self) -> "Client":
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def read_flow_run(self, run_id: object) -> None:
            raise ConnectionError("API down")

    async def no_api(*args: object, **kwargs: object) -> list[object]:
        raise ConnectionError("API down")

    class Run:
        id = "00000000-0000-0000-0000-000000000001"

    monkeypatch.setattr(control, "get_client", lambda: Client())
    monkeypatch.setattr(control, "flow_runs", no_api)
    monkeypatch.setattr(control, "flow_run", Run())
    stop = asyncio.Event()
    task = asyncio.create_task(control.EngineControl(s, stop, datetime.now(UTC), every=0.01, alert_after=3).watch())
    await wait_for(lambda: len(sent) == 1)
    stop.set()
    await task
    reads = [e for e in s.sink.of("error_occurred") if "a stop could be missed" in (e.get("reason") or "")]
    assert len(reads) >= 3 and "3 reads failed in a row" in sent[0]


async def test_a_bug_after_the_request_left_leaves_the_order_unknown_not_failed(strategy_factory, sandbox, account, monkeypatch) -> None:
    """Any exception once the request may have reached the exchange, our own bugs included, means 'outcome
    unknown': the order is booked here, the engine must find it, not call it failed."""
    s = await strategy_factory(timeouts={"order_placement": 1.0})
    real = s.venue.ex.create_order

    async def sent_then_crashed(*args, **kwargs):
        await real(*args, **kwargs)
        raise KeyError("a bug while parsing the answer")

    monkeypatch.setattr(s.venue.ex, "create_order", sent_then_crashed)
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=0.5) is not None
    (order,) = s.universe["BTC/USDT"].orders.values()
    await wait_for(lambda: order.status == "closed")
    assert len(snapshot(sandbox, account)["orders"]) == 1 and not s.sink.of("order_failed")
