"""An account e-stop that could not reach the exchange at all leaves every member, spot and futures, with its
symbols unverified: re-arm must ask the exchange before any of them trades again."""

from __future__ import annotations

from planar_core.risk.account_estop import AccountEStopReport, Member, _outstanding


def test_an_unreachable_exchange_is_unverified_for_spot_and_futures_members_alike() -> None:
    report = AccountEStopReport("binance-abc", "manual", strategies=["perp", "spot"], seconds=2.0)
    report.unreachable = "could not reach the exchange: 503"
    perp = Member("perp", "/tmp/perp", ("ETH/USDT:USDT",), margin=True)
    spot = Member("spot", "/tmp/spot", ("BTC/USDT",), margin=False)
    assert _outstanding(report, spot) == {"BTC/USDT: everything": "could not reach the exchange: 503"}
    assert _outstanding(report, perp) == {"ETH/USDT:USDT: everything": "could not reach the exchange: 503"}


def test_a_member_without_a_known_config_is_unverified_too() -> None:
    report = AccountEStopReport("binance-abc", "manual", strategies=["ghost"], seconds=2.0)
    report.unreachable = "could not reach the exchange: timeout"
    ghost = Member("ghost", "/tmp/ghost", ("SOL/USDT",), margin=None)
    assert _outstanding(report, ghost) == {"SOL/USDT: everything": "could not reach the exchange: timeout"}
