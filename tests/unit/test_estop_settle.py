"""What the e-stop flow's mop-up settles is named by the outcome's structure, never parsed back from the report's
rendered keys: a futures symbol (``BTC/USDT:USDT``) holds a colon of its own."""

from __future__ import annotations

from planar_core.risk.estop import EStopReport


def futures_left_open() -> EStopReport:
    report = EStopReport("drawdown", seconds=1.0)
    report.of("BTC/USDT:USDT").unreachable = "could not reach the exchange: 503"
    eth = report.of("ETH/USDT:USDT")
    eth.orders.cancelled, eth.orders.still_open = 2, 1
    eth.position().still_open, eth.position().closed = -0.25, 0.25
    report.of("SOL/USDT").orders.cancelled = 1  # settled already
    return report


def test_the_unsettled_symbols_are_the_whole_futures_symbols() -> None:
    report = futures_left_open()
    assert report.unsettled() == ["BTC/USDT:USDT", "ETH/USDT:USDT"]  # not "BTC/USDT", which no universe holds


def test_a_settled_symbol_leaves_every_table_and_keeps_its_counts() -> None:
    report = futures_left_open()
    for sym in report.unsettled():
        report.symbols[sym].mark_settled()
    assert report.clean and report.unsettled() == [] and report.outstanding() == {}
    assert report.cancelled == 3 and report.closed == {"ETH/USDT:USDT": 0.25}
