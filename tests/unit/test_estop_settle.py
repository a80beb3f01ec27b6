"""The e-stop flow assembles its report from one report per symbol (its task runs ``estop:<symbol>``): the whole
keeps each symbol under its full name (a futures symbol, ``BTC/USDT:USDT``, holds a colon of its own), its counts,
and what is unverified."""

from __future__ import annotations

from planar_core.risk.estop import EStopReport


def part(symbol: str, cancelled: int = 0, gone: int = 0, unverified: str | None = None) -> EStopReport:
    report = EStopReport("drawdown", seconds=1.0)
    out = report.of(symbol).orders
    out.cancelled, out.already_gone, out.unverified = cancelled, gone, unverified
    return report


def test_the_whole_keeps_each_symbol_its_counts_and_what_is_unverified() -> None:
    whole = EStopReport("drawdown")
    whole.merge(part("BTC/USDT:USDT", cancelled=2, gone=1))
    whole.merge(part("ETH/USDT:USDT", unverified="could not list open orders: 503"))
    assert sorted(whole.symbols) == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert whole.cancelled == 2 and whole.already_gone == 1 and not whole.clean
    assert dict(whole.unverified) == {"ETH/USDT:USDT: open orders": "could not list open orders: 503"}


def test_earlier_attempts_stay_counted() -> None:
    retried = part("BTC/USDT:USDT", cancelled=1)
    retried.cancelled_later += 2  # what the attempts before this one cancelled
    whole = EStopReport("drawdown")
    whole.merge(retried)
    assert whole.cancelled == 3 and whole.clean
