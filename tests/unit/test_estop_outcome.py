"""The e-stops' outcomes are structures (risk/outcome.py); the words users read (the summary, the keyed tables the
flows, the CLI and re-arm read) are rendered from them exactly as they were written before."""

from __future__ import annotations

import asyncio
from typing import Any

from planar_core.exchange.errors import ExchangeOpError
from planar_core.model import Balance, OrderType, PositionSide, Side
from planar_core.risk.account_estop import AccountEStopReport, Member, _outstanding
from planar_core.risk.estop import EStopReport, emergency_stop
from planar_core.risk.outcome import SymbolOutcome

from .fake_venue import started


def not_clean() -> EStopReport:
    report = EStopReport("drawdown", seconds=1.54)
    btc = report.of("BTC/USDT")
    btc.orders.cancelled, btc.orders.still_open = 1, 2
    sol = report.of("SOL/USDT")
    sol.orders.unverified = "could not list open orders: NetworkUncertain: timeout"
    eth = report.of("ETH/USDT:USDT")
    eth.position().still_open, eth.position().closed = -0.25, 0.25
    eth.position_unverified = "position size unknown: NetworkUncertain: timeout"
    return report


def test_a_strategy_estop_renders_its_words_from_the_structure() -> None:
    report = not_clean()
    assert not report.clean
    assert report.summary() == (
        "NOT CLEAN after 1.5s: STILL OPEN orders {'BTC/USDT': 2}; STILL OPEN positions {'ETH/USDT:USDT': -0.25}; "
        "UNVERIFIED {'SOL/USDT: open orders': 'could not list open orders: NetworkUncertain: timeout', "
        "'ETH/USDT:USDT: position': 'position size unknown: NetworkUncertain: timeout'} (cancelled 1)"
    )
    assert report.outstanding() == {
        "SOL/USDT: open orders": "could not list open orders: NetworkUncertain: timeout",
        "ETH/USDT:USDT: position": "position size unknown: NetworkUncertain: timeout",
        "BTC/USDT: still open": "2 order(s)",
    }
    d = report.as_dict()
    assert {k: d[k] for k in ("reason", "cancelled", "closed", "remaining_open", "remaining_positions", "left_alone", "clean")} == {
        "reason": "drawdown",
        "cancelled": 1,
        "closed": {"ETH/USDT:USDT": 0.25},
        "remaining_open": {"BTC/USDT": 2},
        "remaining_positions": {"ETH/USDT:USDT": -0.25},
        "left_alone": {},
        "clean": False,
    }
    assert d["symbols"]["ETH/USDT:USDT"]["positions"] == {"both": {"closed": 0.25, "still_open": -0.25, "left_to_others": 0.0}}  # type: ignore[index]


def test_clean_and_unreachable_wording() -> None:
    report = EStopReport("manual")
    btc = report.of("BTC/USDT:USDT")
    btc.orders.cancelled, btc.orders.left_alone = 3, 2
    btc.position().closed = 0.5
    assert report.clean
    assert (
        report.summary()
        == "clean: 3 orders cancelled, closed {'BTC/USDT:USDT': 0.5}; other strategies' / foreign orders left open {'BTC/USDT:USDT': 2}"
    )
    gone = EStopReport.unreachable("manual", ["BTC/USDT", "ETH/USDT"], "could not reach the exchange: down", seconds=2.0)
    assert dict(gone.unverified) == {
        "BTC/USDT: everything": "could not reach the exchange: down",
        "ETH/USDT: everything": "could not reach the exchange: down",
    }
    assert gone.outstanding() == dict(gone.unverified) and not gone.clean


def test_a_flow_that_settles_a_symbol_afterwards_clears_it_in_the_structure() -> None:
    """Removing a settled symbol's keys from the rendered tables clears it in the structure (Table.pop)."""
    report = not_clean()
    keys = [*report.unverified, *report.remaining_open, *report.remaining_positions]
    for sym in sorted({k.split(":", 1)[0] for k in keys}):  # spot symbols: the rendered keys name them whole
        for table in (report.unverified, report.remaining_open, report.remaining_positions):
            for key in [k for k in table if k.split(":", 1)[0] == sym]:
                table.pop(key)
        report.cancelled_later += 2  # what a later attempt cancelled
    assert report.clean and report.cancelled == 7 and report.outstanding() == {}
    assert report.of("SOL/USDT").orders.unverified is None and report.of("ETH/USDT:USDT").position().still_open == 0.0


def test_an_account_estop_renders_its_words_from_the_structure() -> None:
    report = AccountEStopReport("binance-abc", "manual", strategies=["perp"], seconds=2.0)
    report.of("BTC/USDT").orders.still_open = 1
    report.book("spot")
    report.book("futures").orders_unverified = "could not list: NetworkUncertain: timeout"
    report.book("futures").holdings_unverified = "position sizes unknown: NetworkUncertain: timeout"
    report.of("ETH/USDT:USDT").positions[PositionSide.LONG] = report.of("ETH/USDT:USDT").position(PositionSide.LONG)
    report.of("ETH/USDT:USDT").position(PositionSide.LONG).still_open = 0.1
    assert report.summary() == (
        "NOT CLEAN after 2.0s: account binance-abc: 1 strategies halted; open orders found: perp 0; cancelled 0; "
        "STILL OPEN orders {'BTC/USDT': 1}; STILL OPEN positions {'ETH/USDT:USDT#long': 0.1}; "
        "UNVERIFIED {'futures: open orders': 'could not list: NetworkUncertain: timeout', "
        "'futures: positions': 'position sizes unknown: NetworkUncertain: timeout'}"
    )
    perp = Member("perp", "/tmp/perp", ("ETH/USDT:USDT",), margin=True)
    spot = Member("spot", "/tmp/spot", ("BTC/USDT",), margin=False)
    assert _outstanding(report, perp) == {
        "ETH/USDT:USDT: futures: open orders": "could not list: NetworkUncertain: timeout",
        "ETH/USDT:USDT: futures: positions": "position sizes unknown: NetworkUncertain: timeout",
    }
    assert _outstanding(report, spot) == {"BTC/USDT: still open": "1 order(s)"}
    report.unreachable = "could not reach the exchange: down"
    assert next(iter(report.unverified)) == "everything"
    d = report.as_dict()
    assert d["unverified"] == dict(report.unverified) and d["remaining_open"] == {"BTC/USDT": 1} and d["clean"] is False
    assert isinstance(report.symbols["BTC/USDT"], SymbolOutcome)


async def test_an_estop_on_the_venue_fills_the_structure() -> None:
    s, venue, _ = await started(("BTC/USDT", "ETH/USDT"))
    s.holdings.set_balances({"USDT": Balance(10_000.0, 0.0, 10_000.0)})
    s.universe["BTC/USDT"].last_price = 50_000.0
    await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01, price=40_000.0, waitfor=0)
    venue.fail_next["open_orders"].extend(ExchangeOpError("down") for _ in range(100))  # the first symbol asked cannot be listed
    report = await emergency_stop(s, "test", close_positions=False, budget_s=0.3)
    listed = {o.symbol for o in venue.orders.values()}
    assert not report.clean and report.summary().startswith("NOT CLEAN after ")
    assert set(report.unverified) == {f"{sym}: open orders" for sym in ("BTC/USDT", "ETH/USDT")}
    assert all(report.of(sym).orders.unverified == "could not list open orders: ExchangeOpError: down" for sym in ("BTC/USDT", "ETH/USDT"))
    assert listed == {"BTC/USDT"}
    # the engine's record named the order: it was cancelled by id before any listing, though the listing failed
    assert report.of("BTC/USDT").orders.cancelled == 1 and all(o.status.value == "canceled" for o in venue.orders.values())
    venue.fail_next["open_orders"].clear()
    again = await emergency_stop(s, "again", close_positions=False, budget_s=5.0)
    assert again.clean and again.summary() == "clean: 0 orders cancelled" and again.of("BTC/USDT").orders.unverified is None


async def test_a_running_engine_s_estop_cancels_what_it_knows_first_then_lists_once() -> None:
    """One round trip per symbol when the engine's record is right: the cancels by id and the listing that
    verifies go out together (before: list, cancel, list again); a symbol the record has nothing open on is listed
    only. No further listing, no order history: every cancel was confirmed."""
    s, venue, _ = await started(("BTC/USDT", "ETH/USDT"))
    s.holdings.set_balances({"USDT": Balance(10_000.0, 0.0, 10_000.0)})
    s.universe["BTC/USDT"].last_price = 50_000.0
    for price in (40_000.0, 39_000.0):
        await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01, price=price, waitfor=0)
    venue.calls.clear()
    report = await emergency_stop(s, "test", close_positions=False, budget_s=5.0)
    assert report.clean and report.of("BTC/USDT").orders.cancelled == 2
    btc = [c.op for c in venue.calls if c.args and c.args[0] == "BTC/USDT" and c.op != "cancel_order"]  # the batch's own
    assert btc == ["cancel_orders", "open_orders"], btc
    assert [c.op for c in venue.calls if c.args and c.args[0] == "ETH/USDT"] == ["open_orders"]  # nothing known: list only


async def test_the_verifying_listing_goes_out_with_the_cancels() -> None:
    """The listing does not wait for the cancels' answers (one round trip, not two): here the cancels are answered
    only once the listing was asked. A listing taken before the cancels landed still shows the named orders open;
    their cancels' answers are the exchange's word, and nothing else of the strategy's is listed: clean."""
    s, venue, _ = await started(("BTC/USDT",))
    s.holdings.set_balances({"USDT": Balance(10_000.0, 0.0, 10_000.0)})
    s.universe["BTC/USDT"].last_price = 50_000.0
    for price in (40_000.0, 39_000.0):
        await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01, price=price, waitfor=0)
    listed = asyncio.Event()
    cancel_orders, open_orders = venue.cancel_orders, venue.open_orders

    async def cancel_after_listing(*args: Any, **kwargs: Any) -> Any:
        try:
            await asyncio.wait_for(listed.wait(), timeout=5.0)
        except TimeoutError:
            raise ExchangeOpError("no listing was asked while the cancels were out") from None
        return await cancel_orders(*args, **kwargs)

    async def listing(*args: Any, **kwargs: Any) -> Any:
        answer = await open_orders(*args, **kwargs)
        listed.set()
        return answer

    venue.cancel_orders, venue.open_orders = cancel_after_listing, listing  # type: ignore[method-assign]
    report = await emergency_stop(s, "test", close_positions=False, budget_s=2.0)
    assert report.clean and report.of("BTC/USDT").orders.cancelled == 2, report.summary()
    assert venue.ops("open_orders") == [("BTC/USDT",)]  # the one listing, taken before the cancels were answered


def test_the_estop_runs_line_and_artifact_count_what_the_running_engine_closed() -> None:
    """An outside operator trial: the running engine's part of the stop sold the strategy's 0.00429708 BTC; the
    CLI's line said nothing of it and the artifact's row read "positions closed: none" (the close was shown only
    inside the engine's summary). Both count the engine's closes with the run's own."""
    from flows.emergency import estop_line, estop_markdown

    report = EStopReport("cli test")
    engine = {"cancelled": 0, "summary": "clean: 0 orders cancelled", "closed": {"BTC/USDT": 0.00429708}}
    line = estop_line("grid", report, engine, ["run-1"])
    assert "positions closed {'BTC/USDT': 0.00429708}" in line
    row = next(r for r in estop_markdown("grid", "cli test", report, engine, ["run-1"]).splitlines() if r.startswith("| positions closed"))
    assert row == "| positions closed | BTC/USDT: 0.00429708 |"
