"""Circuit breakers and the emergency stop, checked against the exchange's own snapshot."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planar_core.model import PENDING, OrderType, Side
from planar_core.risk import metrics as M
from planar_core.risk.operations import RearmRefused
from planar_core.sandbox import Faults

from ..conftest import wait_for
from ..engine.test_order_call import bid_ask


def open_on_exchange(sandbox, acct) -> list:
    return sandbox.ex.snapshot()["accounts"][acct.api_key]["open_orders"]


async def place_resting(s, sandbox, symbols: dict[str, str], n: int) -> None:
    """n resting buys spread over the symbols, 20-30 % under the market."""
    for i in range(n):
        sym = list(symbols)[i % len(symbols)]
        bid, _ = bid_ask(sandbox, symbols[sym])
        amount = {"BTC/USDT": 0.001, "ETH/USDT": 0.01, "LTC/USDT": 0.1}[sym]
        await s.call(sym, OrderType.GTC, Side.BUY, amount=amount, price=bid * (0.7 + (i % 10) / 100), waitfor=0)


SPOT3 = {"BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT", "LTC/USDT": "LTCUSDT"}


async def test_daily_loss_breaker_trips_on_a_price_move(strategy_factory, sandbox) -> None:
    acct = sandbox.ex.add_account({"USDT": 10_000, "BTC": 0.1})
    s = await strategy_factory(acct=acct, universe=["BTC/USDT"], risk={"max_daily_loss": 500})
    await wait_for(lambda: s.universe["BTC/USDT"].last_price and s.state.day_start_equity)
    await place_resting(s, sandbox, {"BTC/USDT": "BTCUSDT"}, 5)
    assert len(open_on_exchange(sandbox, acct)) == 5
    sandbox.ex.markets[("spot", "BTCUSDT")].shock = 0.9  # 0.1 BTC loses ~700 USDT
    sandbox.hub.publish_now()
    report = await asyncio.wait_for(_estop_done(s), 15)
    assert report.clean and report.cancelled == 5
    assert open_on_exchange(sandbox, acct) == []
    assert s.halted and s.state.breaker_tripped == "daily_loss" and "Daily loss" in s.state.halt_reason
    assert [e["breaker"] for e in s.sink.of("breaker_tripped")] == ["daily_loss"] and len(s.sink.of("emergency_stop")) == 1


async def _estop_done(s):
    while not s.risk.estop_reports:
        await asyncio.sleep(0.02)
    return s.risk.estop_reports[-1]


async def test_drawdown_breaker(strategy_factory, sandbox) -> None:
    acct = sandbox.ex.add_account({"USDT": 5_000, "ETH": 3})
    s = await strategy_factory(acct=acct, universe=["ETH/USDT"], risk={"max_drawdown": 0.05})
    await wait_for(lambda: s.universe["ETH/USDT"].last_price and s.state.peak_equity)
    await place_resting(s, sandbox, {"ETH/USDT": "ETHUSDT"}, 3)
    sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.85  # ~-9 % of equity
    sandbox.hub.publish_now()
    report = await asyncio.wait_for(_estop_done(s), 15)
    assert report.clean and open_on_exchange(sandbox, acct) == [] and s.state.breaker_tripped == "drawdown"


async def test_rearm_from_python_starts_the_breakers_again_from_the_equity_now(strategy_factory, sandbox) -> None:
    """An outside risk trial: ``s.rearm()`` cleared the halt but kept the peak, so the drawdown that had tripped the
    breaker tripped it again at the next price update (a second e-stop, a second ``breaker_tripped``); ``planar
    rearm`` reset the baselines, the Python call did not."""
    acct = sandbox.ex.add_account({"USDT": 5_000, "ETH": 3})
    s = await strategy_factory(acct=acct, universe=["ETH/USDT"], risk={"max_drawdown": 0.05})
    await wait_for(lambda: s.universe["ETH/USDT"].last_price and s.state.peak_equity)
    sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.85  # ~-9 % of equity
    sandbox.hub.publish_now()
    await asyncio.wait_for(_estop_done(s), 15)
    assert s.state.breaker_tripped == "drawdown" and s.halted
    s.rearm()
    eq, _ = M.equity(s)
    assert not s.halted and s.state.peak_equity == pytest.approx(eq) and s.state.day_start_equity == pytest.approx(eq)
    assert s.risk.evaluate_breakers(s) is None and not s.halted  # the prices that tripped it, valued again
    assert [e["breaker"] for e in s.sink.of("breaker_tripped")] == ["drawdown"]


async def test_rearm_from_python_is_refused_while_the_stop_left_orders_unverified(strategy_factory) -> None:
    s = await strategy_factory()
    s.state_store.update(halted=True, halt_reason="test", estop_unverified={"BTC/USDT:x-1": "still open"})
    with pytest.raises(RearmRefused, match="unverified"):
        s.rearm()
    assert s.halted


async def test_estop_cancels_100_orders_on_3_assets(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(universe=list(SPOT3))
    await place_resting(s, sandbox, SPOT3, 100)
    assert len(open_on_exchange(sandbox, account)) == 100
    report = await s.emergency_stop("test: 100 orders")
    assert report.clean and report.cancelled == 100 and open_on_exchange(sandbox, account) == []
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None  # halted
    again = await s.emergency_stop("test: twice")  # idempotent
    assert again.clean and again.cancelled == 0


async def test_estop_closes_futures_positions(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(
        name="perp", margin=True, universe=["BTC/USDT:USDT", "ETH/USDT:USDT"], default_leverage=5, risk={"emergency_close_positions": True}
    )
    await s.call("BTC/USDT:USDT", OrderType.MARKET, Side.BUY, amount=0.05, waitfor=1)
    await s.call("ETH/USDT:USDT", OrderType.MARKET, Side.SELL, amount=0.5, waitfor=1)
    bid, _ = bid_ask(sandbox, "BTCUSDT", "linear")
    resting = await s.call("BTC/USDT:USDT", OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.97, waitfor=0)  # PERCENT_PRICE: within 5 %
    assert resting is PENDING
    assert len(sandbox.ex.snapshot()["accounts"][account.api_key]["futures"]["positions"]) == 2
    report = await s.emergency_stop("flatten")
    assert report.clean and set(report.closed) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
    snap = sandbox.ex.snapshot()["accounts"][account.api_key]
    assert snap["futures"]["positions"] == {} and snap["open_orders"] == []


async def test_estop_under_30_percent_5xx(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(universe=list(SPOT3))
    await place_resting(s, sandbox, SPOT3, 30)
    sandbox.ex.faults = Faults(error_rate=0.3)
    report = await s.emergency_stop("storm")
    sandbox.ex.faults = Faults()
    assert report.clean and open_on_exchange(sandbox, account) == []


async def test_halted_strategy_refuses_orders_after_restart(strategy_factory, sandbox) -> None:
    s = await strategy_factory()
    await s.emergency_stop("before restart")
    await s.stop()
    again = await strategy_factory()
    assert again.halted and await again.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    again.rearm()
    assert await again.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=1) is not None


STANDALONE = """
import asyncio, json, sys
from planar_core.runner import emergency_stop_standalone
report = asyncio.run(emergency_stop_standalone(sys.argv[1], "standalone test", close_positions=False))
print(json.dumps(report.as_dict()))
"""


async def test_standalone_estop_from_another_process_while_the_engine_runs(strategy_factory, sandbox, account, tmp_path: Path) -> None:
    s = await strategy_factory(universe=list(SPOT3))
    await place_resting(s, sandbox, SPOT3, 12)
    config = tmp_path / "strat.yaml"
    config.write_text(
        json.dumps(
            {
                "name": "strat",
                "universe": list(SPOT3),
                "store_root": s.config.store_root,
                "sandbox_endpoint": {"url": sandbox.url, "ws_url": sandbox.ws_url},
            }
        )
    )
    env = {**os.environ, "EXCHANGE_API_KEY": account.api_key, "EXCHANGE_API_SECRET": account.api_secret}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STANDALONE, str(config), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["clean"] and report["cancelled"] == 12
    assert open_on_exchange(sandbox, account) == []
    assert s.halted  # the running engine sees the persisted halt
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None


async def test_two_stops_racing_on_the_same_orders_count_each_order_once(strategy_factory, sandbox, account, monkeypatch) -> None:
    """The e-stop run from Prefect and the running engine's own stop cancel at once. The run lists the orders open,
    the engine cancels them before the run's cancels arrive, the run's next listing shows them gone: the run's
    cancels were answered "not open", so they are the engine's, not the run's too. Before, each stop counted every
    order that vanished between its listings as its own cancel: 2 + 2 for 2 orders (the operations test's report
    said so once, by the race)."""
    from planar_core.config import StrategyConfig
    from planar_core.exchange.ccxt_venue import CcxtVenue
    from planar_core.runner import emergency_stop_standalone

    s = await strategy_factory(universe=["BTC/USDT"])
    await place_resting(s, sandbox, {"BTC/USDT": "BTCUSDT"}, 2)
    await wait_for(lambda: len(open_on_exchange(sandbox, account)) == 2 and all(o.id for o in s.universe["BTC/USDT"].open_orders()))
    run_cancelling, engine_done = asyncio.Event(), asyncio.Event()
    real = CcxtVenue.cancel_orders

    async def cancel_orders(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self is not s.venue:  # the run's: after its first listing, held until the engine's stop is done
            run_cancelling.set()
            await asyncio.wait_for(engine_done.wait(), 60)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(CcxtVenue, "cancel_orders", cancel_orders)
    cfg = StrategyConfig.model_validate(
        {
            **s.config.model_dump(mode="json", exclude={"credentials"}),
            "credentials": {"api_key": account.api_key, "api_secret": account.api_secret},
        }
    )
    run = asyncio.ensure_future(emergency_stop_standalone(cfg, "by hand, engine alive", close_positions=False))
    await asyncio.wait_for(run_cancelling.wait(), 60)
    engine = await s.emergency_stop("by hand, engine alive")
    engine_done.set()
    by_run = await asyncio.wait_for(run, 60)
    assert open_on_exchange(sandbox, account) == []
    assert (engine.cancelled, by_run.cancelled, by_run.already_gone) == (2, 0, 2), (engine.as_dict(), by_run.as_dict())


async def test_monitor_publishes_metrics_and_reduces_exposure(strategy_factory, sandbox) -> None:
    acct = sandbox.ex.add_account({"USDT": 10_000})
    s = await strategy_factory(acct=acct, universe=["BTC/USDT", "ETH/USDT"], balance_watcher={"interval": 0.2})
    await wait_for(lambda: all(ai.last_price for ai in s.universe.values()))
    await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=3000 / s.universe["BTC/USDT"].last_price, waitfor=1)
    await wait_for(lambda: s.cash("BTC").total > 0)
    m = await s.risk.monitor_once(s)
    assert m.equity == pytest.approx(10_000, rel=0.01) and 0.25 < m.total_exposure < 0.35 and m.positions["BTC/USDT"] > 0
    assert s.sink.of("risk_metrics")[-1]["payload"]["total_exposure"] == pytest.approx(m.total_exposure)
    before = s.cash("BTC").total
    s.risk.cfg = s.risk.cfg.model_copy(update={"max_total_exposure": 0.2})
    await s.risk.monitor_once(s)  # exposure 0.3 > 0.2: reduce every position by 30 %
    await wait_for(lambda: s.cash("BTC").total < before * 0.75)


async def test_one_breaker_trip_records_one_event_however_many_updates_follow(strategy_factory, sandbox) -> None:
    """A burst of balance and price updates before the e-stop task runs must not trip (and fire the e-stop automation)
    again: a real server showed three planar.breaker_tripped events within 12 ms for one trip (issue 13)."""
    acct = sandbox.ex.add_account({"USDT": 10_000, "BTC": 0.1})
    s = await strategy_factory(acct=acct, universe=["BTC/USDT"], risk={"max_daily_loss": 500})
    ai = s.universe["BTC/USDT"]
    await wait_for(lambda: ai.last_price and s.state.day_start_equity)
    ai.last_price *= 0.5  # the burst: three updates evaluated before the loop runs the e-stop task
    reasons = [s.risk.evaluate_breakers(s) for _ in range(3)]
    assert reasons[0] and reasons[1:] == [None, None]
    assert len(s.sink.of("breaker_tripped")) == 1
    await asyncio.wait_for(_estop_done(s), 15)
    assert len(s.sink.of("emergency_stop")) == 1


async def test_the_balance_checks_of_an_estop_grow_with_its_orders_not_their_square(
    strategy_factory, sandbox, account, monkeypatch
) -> None:
    """Each cancel the stop applies releases funds the engine then waits to see in a balance report (engine/freshness.py),
    and each of the hundred stream reports that follow is checked against what waits. Only the changes a report may
    settle are looked at: the checks per order stay flat (they looked at every waiting change, a burst of N cancels
    costing N^2 checks)."""
    from planar_core.engine.freshness import Freshness

    checks = [0]
    covers = Freshness.covers

    def counted(self: Freshness, fill: object) -> bool:
        checks[0] += 1
        return covers(self, fill)  # type: ignore[arg-type]

    monkeypatch.setattr(Freshness, "covers", counted)
    s = await strategy_factory(universe=list(SPOT3))
    await place_resting(s, sandbox, SPOT3, 100)
    await wait_for(lambda: not s.freshness.pending)  # the orders' locks seen in the stream's balance updates
    checks[0] = 0
    report = await s.emergency_stop("a burst of cancels")
    assert report.clean and report.cancelled == 100 and open_on_exchange(sandbox, account) == []
    await wait_for(lambda: not s.freshness.pending)  # every release seen in a balance update
    assert checks[0] <= 4 * 100, checks[0]


async def test_a_spent_request_cap_does_not_delay_the_estop(strategy_factory, sandbox, account) -> None:
    """``rate_limits.requests_per_minute`` is the engine's own cap (Binance enforces weight and orders, which still
    pace every request). A busy minute that spent it made the emergency stop wait up to a minute, past its own
    budget; the stop's requests are counted and sent."""
    import time

    s = await strategy_factory(universe=list(SPOT3), rate_limits={"requests_per_minute": 500}, risk={"estop_budget_s": 10.0})
    await place_resting(s, sandbox, SPOT3, 12)
    window = s.venue.window
    window._sent.extend([time.monotonic()] * window.per_minute)  # the minute's requests spent just now
    report = await asyncio.wait_for(s.emergency_stop("cap spent"), 30)
    assert report.clean and report.cancelled == 12 and open_on_exchange(sandbox, account) == []


async def test_a_standalone_estop_runs_when_the_account_and_side_traces_are_both_held(strategy_factory, sandbox, account) -> None:
    """A second strategy's engine that started while another held the account trace writes the strategy's side
    trace; hung, it holds both. The e-stop from a fresh process records to a side trace of its own and cancels:
    every strategy e-stop of such an engine failed with TraceLockedError and left its orders open (an outside
    trial: only the account e-stop cleared them)."""
    from planar_core.config import StrategyConfig
    from planar_core.engine.strategy import side_trace_root
    from planar_core.runner.standalone import emergency_stop_standalone
    from planar_core.trace import EventTrace

    s = await strategy_factory(universe=["BTC/USDT"])  # holds the account trace
    await place_resting(s, sandbox, {"BTC/USDT": "BTCUSDT"}, 2)
    cfg = StrategyConfig.model_validate(
        {
            **s.config.model_dump(mode="json", exclude={"credentials"}),
            "credentials": {"api_key": account.api_key, "api_secret": account.api_secret},
        }
    )
    hung = EventTrace(side_trace_root(cfg))  # the side trace's writer, as the hung engine would be
    try:
        report = await emergency_stop_standalone(cfg, "by hand, both traces held", close_positions=False)
    finally:
        hung.close()
    assert report.clean and report.cancelled == 2 and open_on_exchange(sandbox, account) == []


async def test_an_exposure_limit_reduces_only_the_strategys_own_coins(strategy_factory, sandbox) -> None:
    """On an account that held 0.05 BTC before the strategy traded: the exposure limit sells 30 % of what the
    strategy's own fills bought, and leaves the rest alone. It sold 30 % of the account's free BTC (an outside
    operator trial: a strategy's start sold 30 % of a desk's BTC and ETH it never bought)."""
    acct = sandbox.ex.add_account({"USDT": 10_000, "BTC": 0.05})
    s = await strategy_factory(acct=acct, universe=["BTC/USDT", "ETH/USDT"], balance_watcher={"interval": 0.2})
    await wait_for(lambda: all(ai.last_price for ai in s.universe.values()))
    await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.02, waitfor=1)
    own = s.ledger.basis(s.universe["BTC/USDT"]).size
    await wait_for(lambda: s.cash("BTC").total == pytest.approx(0.05 + own))
    s.risk.cfg = s.risk.cfg.model_copy(update={"max_total_exposure": 0.01})
    await s.risk.monitor_once(s)  # over the limit: every position reduced by 30 %, the strategy's own part of it
    held = lambda: float(sandbox.ex.snapshot()["accounts"][acct.api_key]["spot_balances"]["BTC"]["free"])  # noqa: E731
    await wait_for(lambda: held() < 0.05 + own - 0.005)
    assert held() == pytest.approx(0.05 + own * 0.7, abs=2e-5)  # the exchange's word, before anything re-syncs


async def test_a_stop_killed_before_its_verdict_keeps_re_arm_refused(strategy_factory, sandbox, account) -> None:
    """An outside crash trial: an e-stop (CLI or in-engine) SIGKILLed after its halt and before its verdict left
    ``estop_unverified`` empty, and ``planar rearm`` passed with all 30 orders still open. The halt of an e-stop now
    says "not verified" until the stop's verdict replaces it."""
    from planar_core.risk.operations import RearmRefused, rearm

    s = await strategy_factory(acct=account, universe=["BTC/USDT"])
    await place_resting(s, sandbox, {"BTC/USDT": "BTCUSDT"}, 2)
    s.halt("by hand, then killed", by_emergency_stop=True)  # what a stop killed right after its halt leaves
    assert len(open_on_exchange(sandbox, account)) == 2
    with pytest.raises(RearmRefused, match="did not reach its verdict"):
        await rearm(s, "looks fine", "ops")
    report = await s.emergency_stop("again, to its verdict")
    assert report.clean and open_on_exchange(sandbox, account) == []
    await rearm(s, "verified", "ops")
    assert not s.halted


def standalone_config(s, account):
    from planar_core.config import StrategyConfig

    return StrategyConfig.model_validate(
        {
            **s.config.model_dump(mode="json", exclude={"credentials"}),
            "credentials": {"api_key": account.api_key, "api_secret": account.api_secret},
        }
    )


async def test_a_standalone_stop_is_not_clean_while_the_exchange_hides_orders_its_trace_left_open(
    strategy_factory, sandbox, account
) -> None:
    """An outside crash trial: the engine killed, ``planar emergency-stop`` at once, the exchange's listings behind its
    book (Binance's "engine behind"): one listing showed nothing, the stop said CLEAN (exit 0), and all six orders
    rested. The stop now looks up the orders its trace left open: not found is unverified, never clean."""
    from planar_core.runner import emergency_stop_standalone

    s = await strategy_factory(universe=["BTC/USDT"])
    sandbox.ex.faults.invisible_s = 120
    await place_resting(s, sandbox, {"BTC/USDT": "BTCUSDT"}, 2)
    assert len(open_on_exchange(sandbox, account)) == 2 and all(o.id for o in s.universe["BTC/USDT"].open_orders())
    await s.stop()  # the engine is gone; its trace says both are open
    cfg = standalone_config(s, account)
    hidden = await emergency_stop_standalone(cfg, "the listing lags", close_positions=False)
    assert not hidden.clean and "neither listed nor found" in (hidden.of("BTC/USDT").orders.unverified or ""), hidden.as_dict()
    # unverified, not "STILL OPEN": no answer said they are open (an outside soak trial: four orders never booked
    # were called still open with none open on the exchange)
    assert "UNVERIFIED" in hidden.summary() and "STILL OPEN" not in hidden.summary(), hidden.summary()
    sandbox.ex.faults.invisible_s = 0
    again = await emergency_stop_standalone(cfg, "again", close_positions=False)
    assert again.clean and open_on_exchange(sandbox, account) == [], again.as_dict()


async def test_orders_left_on_a_symbol_dropped_from_the_universe_are_said_and_stopped(strategy_factory, sandbox, account) -> None:
    """Restarted with a symbol removed from its config, the engine ignored its own orders resting there without a
    word, and its e-stop said CLEAN over them (an outside crash trial)."""
    s = await strategy_factory(universe=["BTC/USDT", "ETH/USDT"])
    await place_resting(s, sandbox, {"BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT"}, 2)
    assert len(open_on_exchange(sandbox, account)) == 2
    await s.stop()
    again = await strategy_factory(universe=["BTC/USDT"])
    assert {sym: len(c) for sym, c in again.book.outside_universe().items()} == {"ETH/USDT": 1}
    report = await again.emergency_stop("dropped symbol")
    assert report.clean and open_on_exchange(sandbox, account) == [], report.as_dict()


@pytest.mark.parametrize("api_url_set", [False, True])
async def test_the_cli_stop_without_any_prefect_server_cancels_at_once(
    strategy_factory, sandbox, account, tmp_path: Path, api_url_set: bool
) -> None:
    """``planar emergency-stop NAME --config FILE`` with no Prefect server anywhere started Prefect's temporary server
    first (8 s before the first cancel) and left it running when killed (an outside crash trial); docs/operations.md
    says it needs no Prefect. It now stops directly and says there was no live run to cancel. With PREFECT_API_URL
    set (the documented setup) to a server that is down, it failed with a traceback before its first cancel and the
    engine traded on (an outside operator trial, 2 of 2): it stops directly too, and says the server did not answer."""
    import socket

    s = await strategy_factory(universe=["BTC/USDT"])
    await place_resting(s, sandbox, {"BTC/USDT": "BTCUSDT"}, 2)
    await s.stop()
    config = tmp_path / "strat.yaml"
    config.write_text(
        json.dumps(
            {
                "name": "strat",
                "universe": ["BTC/USDT"],
                "store_root": s.config.store_root,
                "sandbox_endpoint": {"url": sandbox.url, "ws_url": sandbox.ws_url},
            }
        )
    )
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        EXCHANGE_API_KEY=account.api_key,
        EXCHANGE_API_SECRET=account.api_secret,
        PLANAR_PREFECT_PORT=str(port),
        PREFECT_HOME=str(tmp_path / "ph"),
    )
    if api_url_set:  # nothing listens there
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flows",
        "emergency-stop",
        "strat",
        "--config",
        str(config),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    said = "does not answer" if api_url_set else "CLEAN (no Prefect server"
    assert said in out.decode() and "temporary server" not in (out + err).decode().lower()
    assert open_on_exchange(sandbox, account) == []


async def test_re_arm_is_refused_while_orders_on_a_dropped_symbol_are_unverified(strategy_factory, sandbox, account) -> None:
    """A review: the stop left an order on a symbol dropped from the universe unverified (NOT CLEAN), and re-arm,
    which looked only at the universe's symbols, passed with it resting."""
    from planar_core.config import StrategyConfig
    from planar_core.risk.operations import RearmRefused, rearm
    from planar_core.runner import emergency_stop_standalone

    s = await strategy_factory(universe=["BTC/USDT", "ETH/USDT"])
    sandbox.ex.faults.invisible_s = 120
    await place_resting(s, sandbox, {"ETH/USDT": "ETHUSDT"}, 1)
    await s.stop()
    cfg = StrategyConfig.model_validate(
        {**standalone_config(s, account).model_dump(mode="json"), "universe": ["BTC/USDT"]}
        | {"credentials": {"api_key": account.api_key, "api_secret": account.api_secret}}
    )
    report = await emergency_stop_standalone(cfg, "dropped symbol, listing lags", close_positions=False)
    assert not report.clean and any(k.startswith("ETH/USDT") for k in report.outstanding())
    sandbox.ex.faults.invisible_s = 0
    again = await strategy_factory(universe=["BTC/USDT"])
    with pytest.raises(RearmRefused, match="ETH/USDT"):
        await rearm(again, "looks fine", "ops")


async def test_a_halt_written_late_does_not_undo_the_stops_verdict(strategy_factory, sandbox, account) -> None:
    """A review: the store refused the e-stop's halt once, so the halt (with its "not verified" marker) was held in
    memory; the stop then reached a clean verdict, and the held halt, written on its retry, put the marker back over
    it: re-arm refused after a clean stop."""
    from planar_core.risk.operations import rearm
    from planar_core.state import UNFINISHED_STOP

    s = await strategy_factory(universe=["BTC/USDT"])
    await place_resting(s, sandbox, {"BTC/USDT": "BTCUSDT"}, 2)
    store = s.state_store
    real = store.update
    refused: list[bool] = []

    def flaky(**changes):  # type: ignore[no-untyped-def]
        if not refused and changes.get("halted") is True:
            refused.append(True)
            raise OSError(28, "No space left on device")
        return real(**changes)

    store.update = flaky  # type: ignore[method-assign]
    report = await s.emergency_stop("flaky store")
    assert refused and report.clean and open_on_exchange(sandbox, account) == []
    assert s.gate.write_halt()  # what the held halt's retry does
    state = store.load()
    assert state.halted and UNFINISHED_STOP not in state.estop_unverified
    await rearm(s, "the stop said clean", "ops")
