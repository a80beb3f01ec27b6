"""Realised PnL of fills (model/pnl.py): spot FIFO lots, futures average entry (one-way and hedge mode), round trips,
and the snapshot a restart rebuilds the basis from."""

from __future__ import annotations

import pytest

from planar_core.model import Side
from planar_core.model.pnl import Basis, fee_quote

B, S = Side.BUY, Side.SELL


def spot(step: float = 0.0) -> Basis:
    return Basis("BTC/USDT", True, step=step)


def perp(side: str = "both") -> Basis:
    return Basis("BTC/USDT:USDT", False, position_side=side)


# ------------------------------------------------------------------ spot, FIFO
def test_a_partial_sell_realises_against_the_oldest_lot_and_leaves_the_rest() -> None:
    b = spot()
    assert b.apply(B, 2.0, 100.0, 1).pnl == 0.0
    r = b.apply(S, 0.5, 110.0, 2)
    assert r.pnl == pytest.approx(5.0) and r.unmatched == 0.0 and r.closed is None
    assert b.lots == [[1.5, 100.0, 1.0]]


def test_several_buys_then_one_sell_across_lots_is_fifo() -> None:
    b = spot()
    b.apply(B, 1.0, 100.0, 1)
    b.apply(B, 1.0, 120.0, 2)
    b.apply(B, 1.0, 90.0, 3)
    r = b.apply(S, 2.5, 110.0, 4)  # 1 @100 (+10), 1 @120 (-10), 0.5 @90 (+10)
    assert r.pnl == pytest.approx(10.0)
    assert b.lots == [[0.5, 90.0, 3.0]]
    r = b.apply(S, 0.5, 80.0, 5)
    assert r.pnl == pytest.approx(-5.0)
    trip = r.closed
    assert trip is not None and trip.side == "long" and trip.amount == pytest.approx(3.0)
    assert trip.entry_price == pytest.approx(310 / 3) and trip.exit_price == pytest.approx((2.5 * 110 + 0.5 * 80) / 3)
    assert trip.realized_pnl == pytest.approx(5.0) and (trip.entry_time, trip.exit_time, trip.fills) == (1, 5, 5)


def test_a_sell_larger_than_the_known_lots_realises_only_the_matched_part() -> None:
    b = spot()
    b.apply(B, 1.0, 100.0, 1)
    r = b.apply(S, 3.0, 150.0, 2)  # 2 of the 3 were held before the strategy's first buy
    assert r.pnl == pytest.approx(50.0) and r.unmatched == pytest.approx(2.0) and not b.lots
    assert r.closed is not None and r.closed.amount == pytest.approx(1.0)


def test_a_sell_with_no_known_lot_realises_nothing_known() -> None:
    b = spot()
    r = b.apply(S, 1.0, 150.0, 1)
    assert r.pnl is None and r.computed is None and r.unmatched == 1.0 and r.closed is None
    assert b.totals.realized == 0.0 and b.totals.fills == 1


def test_a_fee_in_the_base_currency_leaves_a_smaller_lot_and_is_kept_apart() -> None:
    b = spot(step=1e-5)
    b.apply(B, 0.01, 50_000.0, 1, fee=fee_quote(0.00001, "BTC", 50_000.0, "BTC", "USDT"), base_fee=0.00001)
    assert b.lots == [[pytest.approx(0.00999), 50_000.0, 1.0]]
    r = b.apply(S, 0.00999, 51_000.0, 2, fee=0.00999 * 51_000 * 0.001)
    assert r.pnl == pytest.approx(0.00999 * 1_000)  # gross: the fees are not in it
    assert r.closed is not None and r.closed.fees == pytest.approx(0.5 + 0.00999 * 51)


def test_dust_below_one_step_is_flat() -> None:
    b = spot(step=0.001)
    b.apply(B, 1.0, 10.0, 1)
    assert b.apply(S, 0.9995, 11.0, 2).closed is not None  # 0.0005 left: less than a step, nothing left to sell


# ------------------------------------------------------------------ futures, average entry
def test_one_way_add_reduce_close() -> None:
    b = perp()
    b.apply(B, 1.0, 100.0, 1)
    b.apply(B, 1.0, 110.0, 2)
    assert (b.contracts, b.entry_price) == (2.0, pytest.approx(105.0))
    r = b.apply(S, 0.5, 120.0, 3)
    assert r.pnl == pytest.approx(7.5) and b.contracts == pytest.approx(1.5) and b.entry_price == pytest.approx(105.0)
    r = b.apply(S, 1.5, 100.0, 4)
    assert r.pnl == pytest.approx(-7.5) and b.contracts == 0.0 and b.entry_price == 0.0
    assert r.closed is not None and r.closed.realized_pnl == pytest.approx(0.0) and r.closed.side == "long"


def test_one_way_flip_closes_the_trip_and_opens_the_other_side() -> None:
    b = perp()
    b.apply(S, 1.0, 100.0, 1, fee=0.1)  # short 1 @100
    r = b.apply(B, 3.0, 90.0, 2, fee=0.3)  # closes 1 (+10), opens long 2 @90
    assert r.pnl == pytest.approx(10.0) and (b.contracts, b.entry_price) == (pytest.approx(2.0), 90.0)
    assert r.closed is not None and r.closed.side == "short" and r.closed.fees == pytest.approx(0.1 + 0.1)
    assert b.trip is not None and b.trip.side == "long" and b.trip.fees == pytest.approx(0.2) and b.trip.entry_amount == 2.0
    r = b.apply(S, 2.0, 95.0, 3)
    assert r.pnl == pytest.approx(10.0) and r.closed is not None and r.closed.side == "long" and r.closed.entry_price == 90.0


def test_hedge_sides_are_kept_apart() -> None:
    long, short = perp("long"), perp("short")
    long.apply(B, 1.0, 100.0, 1)
    short.apply(S, 2.0, 100.0, 1)
    short.apply(S, 2.0, 110.0, 2)
    assert (short.contracts, short.entry_price) == (-4.0, pytest.approx(105.0))
    r = short.apply(B, 1.0, 95.0, 3)
    assert r.pnl == pytest.approx(10.0) and short.contracts == pytest.approx(-3.0)
    r = long.apply(S, 1.0, 90.0, 4)
    assert r.pnl == pytest.approx(-10.0) and r.closed is not None and r.closed.side == "long"
    r = short.apply(B, 3.0, 100.0, 5)
    assert r.pnl == pytest.approx(15.0) and r.closed is not None and r.closed.side == "short"
    assert r.closed.realized_pnl == pytest.approx(25.0) and r.closed.position_side == "short"


def test_the_venues_figure_wins_and_the_computation_stays_beside_it() -> None:
    b = perp()
    b.apply(B, 1.0, 100.0, 1)
    r = b.apply(S, 1.0, 110.0, 2, reported=9.5)
    assert (r.pnl, r.computed) == (9.5, pytest.approx(10.0)) and r.closed is not None and r.closed.realized_pnl == 9.5


def test_contract_size_scales_the_pnl() -> None:
    b = Basis("X/USD:USD", False, contract_size=10.0)
    b.apply(B, 2.0, 100.0, 1)
    assert b.apply(S, 2.0, 101.0, 2).pnl == pytest.approx(20.0)


# ------------------------------------------------------------------ the snapshot a restart rebuilds from
@pytest.mark.parametrize("make", [spot, perp])
def test_a_basis_rebuilt_from_its_snapshot_continues_identically(make) -> None:
    fills = [(B, 1.0, 100.0), (B, 2.0, 106.0), (S, 1.5, 112.0), (S, 1.5, 90.0)]
    whole, first = make(), make()
    for side, amount, price in fills[:2]:
        whole.apply(side, amount, price, 1)
        first.apply(side, amount, price, 1)
    again = Basis.from_snapshot(first.snapshot(), first.spot)
    out = [(b.apply(side, amount, price, 2).pnl, b.snapshot()) for side, amount, price in fills[2:] for b in (whole, again)]
    assert out[0] == out[1] and out[2] == out[3]
    assert out[3][1]["totals"] == {"realized": pytest.approx(out[0][0] + out[2][0]), "fees": 0.0, "fills": 4, "trips": 1, "wins": 0}


def test_fee_valuation() -> None:
    assert fee_quote(1.0, "USDT", 50.0, "BTC", "USDT") == 1.0
    assert fee_quote(0.001, "BTC", 50.0, "BTC", "USDT") == pytest.approx(0.05)
    assert fee_quote(0.1, "BNB", 50.0, "BTC", "USDT") is None
    assert fee_quote(0.0, "BNB", 50.0, "BTC", "USDT") == 0.0
