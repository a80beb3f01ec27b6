"""Margin end to end on the sandbox: margin mode set before the first order, leverage only when flat, closing a
position, hedge mode, liquidation seen as a forced close, funding in PnL; each compared with the exchange's own
snapshot before anything re-syncs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from planar_core.model import LeverageOutcome, PositionSide, RefusalReason, Side, Trade
from planar_core.model import OrderType as T
from planar_core.runner.host import status

from ..conftest import user_subscribed, wait_for
from .test_conditional import account_view, shock

PERP = "BTC/USDT:USDT"


def futures(sandbox: Any, s: Any) -> Any:
    return account_view(sandbox, s)["futures"]


def kinds(s: Any) -> list[str]:
    return [e["kind"] for e in s.sink.events]


async def test_margin_mode_is_set_before_the_first_order_and_leverage_only_when_flat(
    strategy_factory: Any, sandbox: Any, account: Any
) -> None:
    s = await strategy_factory(
        name="perp", margin=True, universe=[{"symbol": PERP, "margin_mode": "isolated"}], event_tracing={"enabled": False}
    )
    ai = s.universe[PERP]
    assert not sandbox.ex.isolated(account, "BTCUSDT")  # the account's default until the first order
    assert isinstance(await s.call(ai, T.MARKET, Side.BUY, amount=0.01, waitfor=5), Trade)
    k = kinds(s)
    assert k.index("margin_mode_set") < k.index("order_placed")
    assert sandbox.ex.isolated(account, "BTCUSDT") and ai.margin_mode == "isolated"
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.01), timeout=10)

    refused = await s.update_leverage(ai, 7)
    assert refused.outcome is LeverageOutcome.REFUSED and refused.refusal is not None and "open position" in refused.refusal.detail
    assert sandbox.ex.leverage_of(account, "BTCUSDT") == 1  # nothing was sent

    closed = await s.close_position(ai)
    assert closed.sides == (PositionSide.BOTH,) and isinstance(closed[PositionSide.BOTH], Trade)
    await wait_for(lambda: not ai.position.contracts, timeout=10)
    assert "BTCUSDT" not in futures(sandbox, s)["positions"]
    assert (await s.update_leverage(ai, 7)).applied
    assert sandbox.ex.leverage_of(account, "BTCUSDT") == 7 and ai.position.leverage == 7


async def test_hedge_mode_keeps_long_and_short_apart(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    s = await strategy_factory(name="perp", margin=True, universe=[PERP], position_mode="hedge", event_tracing={"enabled": False})
    ai = s.universe[PERP]
    assert account.hedge_mode and ai.hedged and "position_mode_set" in kinds(s)
    assert await s.call(ai, T.MARKET, Side.BUY, amount=0.01, waitfor=0) is None  # which side? refused by name
    assert "hedge mode" in s.sink.events[-1]["reason"]
    assert isinstance(await s.call(ai, T.MARKET, Side.BUY, amount=0.01, position_side="long", waitfor=5), Trade)
    assert isinstance(await s.call(ai, T.MARKET, Side.SELL, amount=0.02, position_side="short", waitfor=5), Trade)
    await wait_for(lambda: ai.position_of(PositionSide.SHORT).contracts == pytest.approx(-0.02), timeout=10)
    await wait_for(lambda: ai.position_of(PositionSide.LONG).contracts == pytest.approx(0.01), timeout=10)
    positions = futures(sandbox, s)["positions"]
    assert Decimal(positions["BTCUSDT:LONG"]["amount"]) == Decimal("0.01")
    assert Decimal(positions["BTCUSDT:SHORT"]["amount"]) == Decimal("-0.02")
    assert ai.position.contracts == pytest.approx(-0.01)  # the net view
    other = await strategy_factory(name="other", margin=True, universe=[PERP], position_mode="hedge", event_tracing={"enabled": False})
    sides = other.universe[PERP]  # a fresh start-up sync fills both sides from the exchange
    assert sides.position_of(PositionSide.LONG).contracts == pytest.approx(0.01)
    assert sides.position_of(PositionSide.SHORT).contracts == pytest.approx(-0.02)
    await other.stop()

    closed = await s.close_position(ai, "long")
    assert closed.sides == (PositionSide.LONG,) and isinstance(closed[PositionSide.LONG], Trade)
    await wait_for(lambda: not ai.position_of(PositionSide.LONG).contracts, timeout=10)
    positions = futures(sandbox, s)["positions"]
    assert "BTCUSDT:LONG" not in positions and Decimal(positions["BTCUSDT:SHORT"]["amount"]) == Decimal("-0.02")
    assert ai.position_of(PositionSide.SHORT).contracts == pytest.approx(-0.02)
    assert isinstance(await s.call(ai, T.MARKET, Side.BUY, amount=0.01, position_side="long", waitfor=5), Trade)
    report = await s.emergency_stop("close both sides", close_positions=True)  # each side closed on its own
    assert report.clean, report
    assert futures(sandbox, s)["positions"] == {}


async def test_isolated_liquidation_is_a_forced_close_the_breakers_see(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    s = await strategy_factory(
        name="perp",
        margin=True,
        universe=[PERP],
        margin_mode="isolated",
        default_leverage=50,
        order_monitoring={"enabled": False},  # no order task: the positions watcher must notice it alone
        risk={"max_daily_loss": 20.0},
        event_tracing={"enabled": False},
    )
    ai = s.universe[PERP]
    await wait_for(lambda: user_subscribed(sandbox, account, "linear"), timeout=10)
    ai.last_price = await shock(sandbox, "BTCUSDT", 1.0, "linear")
    assert isinstance(await s.call(ai, T.MARKET, Side.BUY, amount=0.05, waitfor=5), Trade)
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.05), timeout=10)
    await shock(sandbox, "BTCUSDT", 0.97, "linear")  # 3 % down at 50x isolated: past maintenance
    await wait_for(lambda: "forced_close" in kinds(s), timeout=15)
    forced = next(e for e in s.sink.events if e["kind"] == "forced_close")
    view = account_view(sandbox, s)
    liq = next(o for o in view["orders"] if o["type"] == "LIQUIDATION")
    assert forced["client_order_id"] == liq["client_order_id"] and forced["reason"] == "liquidation"
    assert "BTCUSDT" not in view["futures"]["positions"]
    await wait_for(lambda: not ai.position.contracts, timeout=10)
    await wait_for(lambda: s.halted, timeout=10)  # the daily-loss breaker saw the loss
    assert "loss" in (s.state.halt_reason or "").lower()


async def test_funding_payments_are_recorded_once_and_counted(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    s = await strategy_factory(name="perp", margin=True, universe=[PERP], event_tracing={"enabled": False})
    ai = s.universe[PERP]
    await wait_for(lambda: user_subscribed(sandbox, account, "linear"), timeout=10)
    assert isinstance(await s.call(ai, T.MARKET, Side.BUY, amount=0.02, waitfor=5), Trade)
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.02), timeout=10)
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{sandbox.url}/admin/funding", json={"symbol": "BTCUSDT", "rate": 0.001})
        assert r.status == 200, await r.text()
    income = [i for i in account.income if i.kind == "FUNDING_FEE"]
    assert len(income) == 1 and income[0].amount < 0  # a long pays a positive rate
    await wait_for(lambda: "funding_paid" in kinds(s), timeout=10)
    paid = [e for e in s.sink.events if e["kind"] == "funding_paid"]
    assert len(paid) == 1 and paid[0]["amount"] == pytest.approx(float(income[0].amount))
    assert s.holdings.funding.by_symbol[PERP] == pytest.approx(float(income[0].amount))
    assert status(s)["funding"] == pytest.approx(float(income[0].amount))
    from planar_core.engine.margin import sync_funding

    assert await sync_funding(s) == 0  # asked again: nothing recorded twice
    await wait_for(lambda: s.cash("USDT").total == pytest.approx(float(futures(sandbox, s)["wallet"])), timeout=10)


@pytest.mark.parametrize("policy", ["adopt", "ignore", "cancel"])
async def test_orders_placed_by_hand_follow_the_foreign_order_policy(
    strategy_factory: Any, sandbox: Any, account: Any, client: Any, policy: str
) -> None:
    last = await shock(sandbox, "BTCUSDT", 1.0)
    for _ in range(3):  # filled history, by hand
        await client.create_order("BTC/USDT", "market", "buy", 0.001)
    hand = await client.create_order("BTC/USDT", "limit", "buy", 0.001, round(last * 0.9, 2))
    s = await strategy_factory(universe=["BTC/USDT"], startup_sync={"foreign_orders": policy, "closed_orders": 2})
    ai = s.universe["BTC/USDT"]
    foreign = [e for e in s.sink.events if e["kind"] == "order_foreign"]
    if policy == "adopt":
        assert foreign == [] and hand["clientOrderId"] in ai.orders
        assert len(ai.orders) == 3  # the last two closed orders and the open one: not the whole history
    else:
        assert ai.orders == {} and {e["decision"] for e in foreign} - {"cancelled"} == {policy}
    if policy == "cancel":
        await wait_for(lambda: account_view(sandbox, s)["open_orders"] == [], timeout=10)
        await wait_for(lambda: any(e.get("decision") == "cancelled" for e in s.sink.events), timeout=5)
    else:
        assert [o["client_order_id"] for o in account_view(sandbox, s)["open_orders"]] == [hand["clientOrderId"]]


async def test_a_cross_liquidation_that_leaves_a_negative_wallet_is_seen_and_trips_the_breaker(strategy_factory: Any, sandbox: Any) -> None:
    """An outside risk trial: a gap past bankruptcy left the cross wallet at -104 USDT on the exchange; the engine
    dropped the figure as "an impossible balance", every REST read after it failed as a malformed response, it kept
    showing the equity before the gap (990.85), and the daily-loss breaker never tripped (it also skipped any equity
    at or below zero)."""
    acct = sandbox.ex.add_account({"USDT": 1000})
    s = await strategy_factory(
        name="perp",
        acct=acct,
        margin=True,
        universe=[PERP],
        default_leverage=20,
        risk={"max_daily_loss": 100.0},
        event_tracing={"enabled": False},
    )
    ai = s.universe[PERP]
    await wait_for(lambda: user_subscribed(sandbox, acct, "linear"), timeout=10)
    ai.last_price = await shock(sandbox, "BTCUSDT", 1.0, "linear")
    size = round(800 * 20 / ai.last_price, 3)  # 800 of the 1000 as margin at 20x
    assert isinstance(await s.call(ai, T.MARKET, Side.BUY, amount=size, waitfor=5), Trade)
    await wait_for(lambda: ai.position.contracts == pytest.approx(size), timeout=10)
    await shock(sandbox, "BTCUSDT", 0.92, "linear")  # 8 % down at 20x: a loss of 1.6x the wallet
    await wait_for(lambda: "BTCUSDT" not in futures(sandbox, s)["positions"], timeout=15)
    wallet = Decimal(str(futures(sandbox, s)["wallet"]))
    assert wallet < 0  # the exchange's figure: the engine's view is compared with it before anything re-reads
    await wait_for(lambda: s.cash("USDT").total < 0, timeout=10)
    assert s.cash("USDT").total == pytest.approx(float(wallet), abs=1e-6)
    await wait_for(lambda: s.halted, timeout=10)
    assert s.state.breaker_tripped == "daily_loss"
    await s.refresh_balances()  # a REST read of the negative wallet is taken, not refused as malformed
    assert s.cash("USDT").total == pytest.approx(float(wallet), abs=1e-6)
    # re-arming in debt is refused: the drawdown breaker measures from a positive peak (re-armed at -104 it was off)
    from planar_core.risk.operations import RearmRefused, rearm

    await s.risk.wait_estop()
    with pytest.raises(RearmRefused, match="equity is -"):
        s.rearm()
    with pytest.raises(RearmRefused, match="equity is -"):
        await rearm(s, "test: in debt", "test")
    assert s.halted


async def test_a_restart_never_books_an_earlier_runs_fills_again(strategy_factory: Any, sandbox: Any) -> None:
    """An outside audit (7 of 7 restarts followed by a trigger): after a restart, a listing that brought the earlier
    run's orders back (a futures reduction explained from the recent orders; a reconnect's re-sync) booked their
    fills again: realised PnL and fees doubled, and the basis held a phantom position that made ``close_position``
    answer "nothing to close" while the exchange held 0.02. The engine's figures are compared with the exchange's
    own fills before anything re-reads."""
    from planar_core.engine.sync import resync

    acct = sandbox.ex.add_account({"USDT": 10_000})

    async def run(sizes: list[tuple[Side, float]]) -> Any:
        s = await strategy_factory(name="audit", acct=acct, margin=True, universe=[PERP], default_leverage=5)
        ai = s.universe[PERP]
        await wait_for(lambda: user_subscribed(sandbox, acct, "linear"), timeout=10)
        held = ai.position.contracts
        for side, amount in sizes:
            assert isinstance(await s.call(ai, T.MARKET, side, amount=amount, waitfor=5), Trade), s.last_refusal
            held += amount if side is Side.BUY else -amount
            await wait_for(
                lambda held=held: ai.position.contracts == pytest.approx(held) and not any(o.is_open for o in ai.orders.values())
            )
        return s

    first = await run([(Side.BUY, 0.02), (Side.SELL, 0.02)])  # a round trip: flat
    await first.stop()
    again = await run([(Side.BUY, 0.02), (Side.SELL, 0.01)])  # the reduction is explained from the recent orders
    ai = again.universe[PERP]
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.01), timeout=10)
    await resync(again)  # what a reconnect does: the recent orders listed again

    fills = [f for f in sandbox.ex.snapshot()["accounts"][acct.api_key]["fills"] if f["symbol"] == "BTCUSDT"]
    realized = sum(Decimal(f["realized_pnl"]) for f in fills)
    booked = [e for e in again.sink.of("trade_executed") if e.get("symbol") == PERP]
    assert len(booked) == len(fills) == 4, [e.get("trade_id") for e in booked]
    assert sum(e["realized_pnl"] for e in booked) == pytest.approx(float(realized), abs=1e-6)
    basis = again.ledger.bases()
    assert sum(b.contracts for b in basis.values()) == pytest.approx(0.01)  # the strategy's own part: what it holds
    closed = await again.close_position(ai)
    assert isinstance(closed[PositionSide.BOTH], Trade)
    await wait_for(lambda: "BTCUSDT" not in futures(sandbox, again)["positions"], timeout=10)


async def test_a_reconnect_after_a_restart_never_books_an_earlier_runs_spot_fills_again(strategy_factory: Any, sandbox: Any) -> None:
    """The same audit's spot case (3 of 3): a reconnect's re-sync after a restart listed the earlier run's orders and
    their trades, and booked the trades again under their own ids: realised PnL and fees doubled, the lots held twice
    the coins the account had."""
    from planar_core.engine.sync import resync

    acct = sandbox.ex.add_account({"USDT": 10_000})
    first = await strategy_factory(name="spotaudit", acct=acct, universe=["BTC/USDT"])
    ai = first.universe["BTC/USDT"]
    for side, amount in ((Side.BUY, 0.02), (Side.SELL, 0.01)):
        assert isinstance(await first.call(ai, T.MARKET, side, amount=amount, waitfor=5), Trade), first.last_refusal
    await first.stop()
    again = await strategy_factory(name="spotaudit", acct=acct, universe=["BTC/USDT"])
    await resync(again)  # what a reconnect does: the recent orders and trades listed again
    await resync(again)
    fills = [f for f in sandbox.ex.snapshot()["accounts"][acct.api_key]["fills"] if f["symbol"] == "BTCUSDT"]
    booked = [e for e in again.sink.of("trade_executed") if e.get("symbol") == "BTC/USDT"]
    assert len(booked) == len(fills) == 2, [e.get("trade_id") for e in booked]
    lots = sum(b.size for b in again.ledger.bases().values())
    assert lots == pytest.approx(again.cash("BTC").total, rel=0.02)  # the strategy's lots: what the account holds


async def isolated_hedge(
    strategy_factory: Any, sandbox: Any, acct: Any, leverage: int, long: float, short: float, **config: Any
) -> tuple[Any, Any]:
    """A hedge-mode, isolated perpetual strategy on ``acct`` holding ``long`` and ``short``, at the path's price."""
    s = await strategy_factory(
        name="perp",
        acct=acct,
        margin=True,
        universe=[PERP],
        position_mode="hedge",
        margin_mode="isolated",
        default_leverage=leverage,
        event_tracing={"enabled": False},
        **config,
    )
    ai = s.universe[PERP]
    await wait_for(lambda: user_subscribed(sandbox, acct, "linear"), timeout=10)
    ai.last_price = await shock(sandbox, "BTCUSDT", 1.0, "linear")
    assert isinstance(await s.call(ai, T.MARKET, Side.BUY, amount=long, position_side=PositionSide.LONG, waitfor=5), Trade)
    assert isinstance(await s.call(ai, T.MARKET, Side.SELL, amount=short, position_side=PositionSide.SHORT, waitfor=5), Trade)
    await wait_for(lambda: ai.position_of(PositionSide.SHORT).contracts == pytest.approx(-short), timeout=10)
    await wait_for(lambda: ai.position_of(PositionSide.LONG).contracts == pytest.approx(long), timeout=10)
    return s, ai


async def test_a_hedge_mode_liquidation_is_booked_on_its_side(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    """An outside margin trial (5 of 6 runs, Binance and Bybit): the exchange's liquidation order names its side
    (LONG), and the engine adopted it on no side: its loss was missing from the realised PnL, and the long's basis
    kept the liquidated 0.05, pricing the next trade of that side against it. The adopted order takes the side the
    exchange names, and the long's basis is flat with the exchange's loss in it."""
    s, ai = await isolated_hedge(strategy_factory, sandbox, account, 50, 0.05, 0.03)
    await shock(sandbox, "BTCUSDT", 0.97, "linear")  # 3 % down at 50x isolated: the long is liquidated
    await wait_for(lambda: "forced_close" in kinds(s), timeout=15)
    forced = next(e for e in s.sink.events if e["kind"] == "forced_close")
    await wait_for(lambda: ai.orders[forced["client_order_id"]].booked >= 0.05 - 1e-12, timeout=15)
    assert ai.orders[forced["client_order_id"]].position_side is PositionSide.LONG
    long_basis = s.ledger.basis(ai, PositionSide.LONG)
    assert long_basis.size == pytest.approx(0.0, abs=1e-12)
    assert long_basis.totals.realized < 0  # the liquidation's loss, on the long


async def test_a_reducing_order_is_not_refused_for_a_margin_mode_the_exchange_will_not_switch(
    strategy_factory: Any, sandbox: Any, account: Any
) -> None:
    """An outside margin trial (2 of 2): configured isolated while the account's position was cross, every order on
    the asset was refused (Binance refuses the switch while a position is open, -4048): protective stops, closes and
    the risk monitor's reductions too. The mode is set for orders that can add; one that only reduces goes in the
    position's mode. An order that adds is still refused, with the exchange's reason."""
    cross = await strategy_factory(name="crossed", margin=True, universe=[PERP], event_tracing={"enabled": False})
    ai = cross.universe[PERP]
    await wait_for(lambda: user_subscribed(sandbox, account, "linear"), timeout=10)
    last = ai.last_price = await shock(sandbox, "BTCUSDT", 1.0, "linear")
    assert isinstance(await cross.call(ai, T.MARKET, Side.BUY, amount=0.05, waitfor=5), Trade)
    iso = await strategy_factory(
        name="iso", margin=True, universe=[{"symbol": PERP, "margin_mode": "isolated"}], event_tracing={"enabled": False}
    )
    bi = iso.universe[PERP]
    bi.last_price = last
    stop = await iso.call(bi, T.STOP_MARKET, Side.SELL, amount=0.01, trigger_price=last * 0.9, reduce_only=True, waitfor=0)
    assert stop is not None, iso.last_refusal
    assert not sandbox.ex.isolated(account, "BTCUSDT")
    assert await iso.call(bi, T.MARKET, Side.BUY, amount=0.01, waitfor=5) is None
    assert iso.last_refusal is not None and iso.last_refusal.reason is RefusalReason.MARGIN_SETUP and "-4048" in iso.last_refusal.detail


async def test_a_hedge_sides_liquidation_does_not_trip_the_drawdown_breaker_on_a_stale_mark(strategy_factory: Any, sandbox: Any) -> None:
    """An outside margin trial (2 of 2): hedge mode, isolated; a 6 % fall liquidated the long. The wallet after the
    loss came before the new price, and the short was marked at the price before the fall: the drawdown breaker
    tripped at 11.1 % where the exchange's equity was 5.7 % down (limit 8 %), and its e-stop closed the short. A
    trip with futures positions open is confirmed at prices read from the exchange first."""
    acct = sandbox.ex.add_account({"USDT": 1000})
    s, ai = await isolated_hedge(strategy_factory, sandbox, acct, 20, 0.03, 0.015, risk={"max_drawdown": 0.08})
    fell = await shock(sandbox, "BTCUSDT", 0.94, "linear")  # the long is liquidated
    await wait_for(lambda: "forced_close" in kinds(s), timeout=15)
    await wait_for(lambda: ai.last_price == pytest.approx(fell, rel=1e-3), timeout=15)
    await wait_for(lambda: (task := getattr(s.risk, "_repricing", None)) is None or task.done(), timeout=10)  # a confirmation's end
    fut = account_view(sandbox, s)["futures"]
    assert "breaker_tripped" not in kinds(s) and not s.halted, [e for e in s.sink.events if e["kind"] == "breaker_tripped"]
    assert fut["positions"]  # the short is still open


async def test_the_leverage_limit_acts_on_a_fully_hedged_pair(strategy_factory: Any, sandbox: Any, account: Any, monkeypatch: Any) -> None:
    """An outside margin trial (2 of 2): hedge mode, long 0.02 and short 0.02, leverage 2.44 over a limit of 2: the
    monitor measured the gross figure but chose what to close by net value, 0 for the pair: the limit stayed
    exceeded, logged every run, never acted on. It closes the largest gross position, and says so."""
    s = await strategy_factory(name="perp", margin=True, universe=[PERP], position_mode="hedge", event_tracing={"enabled": False})
    ai = s.universe[PERP]
    await wait_for(lambda: user_subscribed(sandbox, account, "linear"), timeout=10)
    ai.last_price = await shock(sandbox, "BTCUSDT", 1.0, "linear")
    for side, ps in ((Side.BUY, PositionSide.LONG), (Side.SELL, PositionSide.SHORT)):
        assert isinstance(await s.call(ai, T.MARKET, side, amount=0.02, position_side=ps, waitfor=5), Trade)
    await wait_for(lambda: len(ai.open_positions()) == 2, timeout=10)
    leverage = s.risk.metrics(s).leverage
    s.risk.cfg = s.risk.cfg.model_copy(update={"max_leverage": leverage / 2})
    alerts: list[str] = []
    monkeypatch.setattr(s, "alert", lambda text, level="warning": alerts.append(text))
    await s.risk.monitor_once(s)
    await wait_for(lambda: not account_view(sandbox, s)["futures"]["positions"], timeout=10)
    assert any("risk action" in a and "leverage" in a for a in alerts)
