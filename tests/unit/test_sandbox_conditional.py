"""When the sandbox's conditional orders trigger (sandbox/conditional.py): stops, take-profits and trailing stops,
spot and futures Algo Service, over hand-fed prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from planar_core.sandbox.accounts import ZERO, AlgoOrder, SandboxOrder
from planar_core.sandbox.conditional import algo_due, spot_due, stop_due, trailing_due

D = Decimal
T = 1_700_000_000_000


def spot(otype: str, side: str, stop: str = "0", trailing: int = 0) -> SandboxOrder:
    return SandboxOrder(1, "c", "BTCUSDT", "spot", side, otype, "GTC", ZERO, D(1), T, stop_price=D(stop), trailing_delta=trailing)


def algo(otype: str, side: str, trigger: str = "0", callback: str = "0") -> AlgoOrder:
    return AlgoOrder(
        1, "a", "BTCUSDT", side, "BOTH", otype, "GTC", D(1), ZERO, D(trigger), "MARK_PRICE", False, False, True, D(callback), T
    )


@pytest.mark.parametrize(
    ("kind", "side", "price", "due"),
    [
        ("stop", "BUY", "100", True),  # a buy stop triggers at its price ...
        ("stop", "BUY", "101", True),  # ... and above
        ("stop", "BUY", "99.99", False),
        ("stop", "SELL", "100", True),  # a sell stop at or below
        ("stop", "SELL", "99", True),
        ("stop", "SELL", "100.01", False),
        ("take", "BUY", "100", True),  # a buy take-profit at or below
        ("take", "BUY", "99", True),
        ("take", "BUY", "100.01", False),
        ("take", "SELL", "100", True),  # a sell take-profit at or above
        ("take", "SELL", "101", True),
        ("take", "SELL", "99.99", False),
    ],
)
def test_stop_and_take_profit_trigger_on_their_side_of_the_price(kind: str, side: str, price: str, due: bool) -> None:
    assert stop_due(kind, side, D(100), D(price)) is due


def test_a_trailing_sell_tracks_the_highest_price_and_triggers_on_the_retrace() -> None:
    rate = D("0.01")
    due, ref = trailing_due("SELL", ZERO, True, rate, D(100))  # no activation price: tracking starts at once
    assert (due, ref) == (False, D(100))
    due, ref = trailing_due("SELL", ref, True, rate, D(120))
    assert (due, ref) == (False, D(120))
    due, ref = trailing_due("SELL", ref, True, rate, D("118.81"))  # 1 % below 120 is 118.80
    assert (due, ref) == (False, D(120))
    due, _ = trailing_due("SELL", ref, True, rate, D("118.80"))
    assert due


def test_a_trailing_buy_tracks_the_lowest_price_and_triggers_on_the_rebound() -> None:
    rate = D("0.02")
    _, ref = trailing_due("BUY", ZERO, True, rate, D(100))
    _, ref = trailing_due("BUY", ref, True, rate, D(90))
    assert ref == D(90)
    assert trailing_due("BUY", ref, True, rate, D("91.79"))[0] is False
    assert trailing_due("BUY", ref, True, rate, D("91.80")) == (True, D(90))


def test_an_activation_delays_tracking_and_its_first_price_is_the_reference() -> None:
    rate = D("0.01")
    assert trailing_due("SELL", ZERO, False, rate, D(105)) == (False, ZERO)  # not activated: nothing tracked
    assert trailing_due("SELL", ZERO, True, rate, D(110)) == (False, D(110))
    assert trailing_due("BUY", ZERO, True, rate, D(90)) == (False, D(90))


def test_spot_trailing_delta_is_in_basis_points_and_update_advances_the_reference() -> None:
    order = spot("STOP_LOSS", "SELL", trailing=100)  # 100 bp = 1 %
    assert not spot_due(order, D(200), update=True) and order.trail_ref == D(200)
    assert not spot_due(order, D(198.5)) and order.trail_ref == D(200)  # a look without update leaves the reference
    assert spot_due(order, D(198))


def test_a_spot_look_without_update_never_moves_the_reference() -> None:
    order = spot("STOP_LOSS", "SELL", trailing=100)
    spot_due(order, D(200))
    assert order.trail_ref == ZERO


def test_a_spot_stop_loss_trail_starts_tracking_at_its_stop_price() -> None:
    """Binance's trailing-stop FAQ, scenario B: a STOP_LOSS_LIMIT sell, stopPrice 39 000, trailingDelta 1000 (10 %),
    placed at 40 000. Until 2026-12-07 the sandbox sold at the stop price as a plain stop (an outside trial)."""
    order = spot("STOP_LOSS_LIMIT", "SELL", stop="39000", trailing=1000)
    assert not spot_due(order, D(40000), update=True) and order.trail_ref == ZERO
    assert not spot_due(order, D(41500), update=True) and order.trail_ref == ZERO  # a rise before activation: ignored
    assert not spot_due(order, D(39000), update=True) and order.trail_ref == D(39000)  # activated: the highest is 39 000
    assert not spot_due(order, D(37000), update=True)  # about 512 bp under it: not enough
    assert not spot_due(order, D(41000), update=True) and order.trail_ref == D(41000)
    assert spot_due(order, D(36900))  # 10 % under 41 000


def test_a_spot_take_profit_trail_is_activated_by_its_stop_price() -> None:
    order = spot("TAKE_PROFIT", "SELL", stop="120", trailing=500)
    assert not spot_due(order, D(110), update=True) and order.trail_ref == ZERO
    assert not spot_due(order, D(125), update=True) and order.trail_ref == D(125)
    assert spot_due(order, D("118.75"))  # 5 % below 125
    assert not spot_due(spot("TAKE_PROFIT", "SELL", stop="120", trailing=500), D(105))  # the take price is not a stop


def test_futures_trailing_callback_rate_is_in_percent() -> None:
    order = algo("TRAILING_STOP_MARKET", "SELL", callback="2")
    assert not algo_due(order, D(100), update=True) and order.trail_ref == D(100)
    assert not algo_due(order, D("98.01"))
    assert algo_due(order, D(98))


def test_futures_trailing_waits_for_its_activation_price() -> None:
    order = algo("TRAILING_STOP_MARKET", "BUY", trigger="90", callback="1")
    assert not algo_due(order, D(95), update=True) and order.trail_ref == ZERO
    assert not algo_due(order, D(90), update=True) and order.trail_ref == D(90)
    assert algo_due(order, D("90.9"))


@pytest.mark.parametrize(
    ("otype", "side", "price", "due"),
    [
        ("STOP_MARKET", "SELL", "99", True),
        ("STOP", "SELL", "101", False),
        ("TAKE_PROFIT_MARKET", "SELL", "101", True),
        ("TAKE_PROFIT", "BUY", "101", False),
        ("STOP_MARKET", "BUY", "100", True),
    ],
)
def test_futures_stop_and_take_profit_types_use_the_stop_rules(otype: str, side: str, price: str, due: bool) -> None:
    assert algo_due(algo(otype, side, trigger="100"), D(price)) is due
