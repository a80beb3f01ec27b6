"""The sandbox's symbol filters (sandbox/filters.py), its synthetic book (book.py) and how it prints numbers (fmt.py),
called directly: Binance's PRICE_FILTER, PERCENT_PRICE(_BY_SIDE), MARKET_LOT_SIZE, MAX_NUM_(ALGO_)ORDERS,
TRAILING_DELTA and ICEBERG_PARTS, each at its bound and one step past it, and the exchangeInfo declaration that
advertises exactly what is enforced."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from planar_core.sandbox import filters
from planar_core.sandbox.book import BookModel, ceil_to, floor_to
from planar_core.sandbox.errors import ApiError
from planar_core.sandbox.fmt import px, qx, s
from planar_core.sandbox.market_data import DEFAULT_MARKETS, MarketSpec

D = Decimal
SPOT_BTC = DEFAULT_MARKETS[0]  # tick 0.01, step 0.00001, max qty 9000, min notional 5
PERP_BTC = DEFAULT_MARKETS[5]  # tick 0.1, step 0.001, max qty 1000
PERP_XRP = DEFAULT_MARKETS[7]  # tick 0.0001
assert (SPOT_BTC.kind, PERP_BTC.kind, PERP_XRP.kind) == ("spot", "linear", "linear")


def code_of(call: object, *args: object) -> tuple[int, str]:
    """(code, message) of the ApiError the call raises."""
    with pytest.raises(ApiError) as info:
        call(*args)  # type: ignore[operator]
    return info.value.code, info.value.msg


def by_type(declared: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(f["filterType"]): f for f in declared}


# ------------------------------------------------------------------ bounds
def test_spot_bounds_are_the_tick_a_million_and_a_tenth_of_the_lot_for_market_orders() -> None:
    b = filters.Bounds.of(SPOT_BTC, 60_000.0)
    assert b == filters.Bounds(D("0.01"), D(1_000_000), D(9000) / 10)


def test_futures_bounds_follow_the_listing_price() -> None:
    b = filters.Bounds.of(PERP_BTC, 60_000.0)
    assert b.min_price == D("600.0")  # a hundredth of the listing price, on the tick
    assert b.max_price == D("1200000.0")  # twenty times it
    assert b.market_max_qty == D(1000) / 8


def test_futures_minimum_price_is_never_below_the_tick() -> None:
    assert filters.Bounds.of(PERP_XRP, 0.005).min_price == PERP_XRP.tick_size  # 0.005 / 100 rounds to 0 on a 0.0001 tick


def test_without_a_listing_price_the_limits_are_the_tick_and_a_billion() -> None:
    b = filters.Bounds.of(PERP_BTC, None)
    assert (b.min_price, b.max_price, b.market_max_qty) == (PERP_BTC.tick_size, D(10) ** 9, PERP_BTC.max_qty)


# ------------------------------------------------------------------ PRICE_FILTER
@pytest.mark.parametrize("price", ["60000.00", "0.01", "1000000"])
def test_a_price_on_the_tick_within_the_bounds_passes(price: str) -> None:
    filters.check_price(SPOT_BTC, filters.Bounds.of(SPOT_BTC, 60_000.0), D(price))


@pytest.mark.parametrize("price", ["60000.005", "0", "-0.01", "1000000.01"])
def test_a_price_off_the_tick_not_positive_or_above_the_maximum_fails_the_price_filter(price: str) -> None:
    bounds = filters.Bounds.of(SPOT_BTC, 60_000.0)
    assert code_of(filters.check_price, SPOT_BTC, bounds, D(price)) == (-1013, "Filter failure: PRICE_FILTER")


def test_below_the_minimum_price_futures_answer_4013_and_spot_the_price_filter() -> None:
    perp = filters.Bounds.of(PERP_BTC, 60_000.0)
    assert code_of(filters.check_price, PERP_BTC, perp, D("599.9")) == (-4013, "Price less than min price.")
    filters.check_price(PERP_BTC, perp, D("600.0"))  # the minimum itself is allowed
    spot = replace(filters.Bounds.of(SPOT_BTC, 60_000.0), min_price=D(10))
    assert code_of(filters.check_price, SPOT_BTC, spot, D("9.99"))[0] == -1013


# ------------------------------------------------------------------ PERCENT_PRICE
def test_spot_band_is_a_fifth_to_five_times_the_average_price_inclusive() -> None:
    ref = D(1000)
    for price in (D(200), D(5000), ref):
        filters.check_band(SPOT_BTC, "BUY", price, ref)
    for price in (D("199.99"), D("5000.01")):
        assert code_of(filters.check_band, SPOT_BTC, "SELL", price, ref) == (-1013, "Filter failure: PERCENT_PRICE_BY_SIDE")


def test_futures_band_is_five_percent_around_the_mark_with_its_own_codes() -> None:
    mark = D(60_000)
    filters.check_band(PERP_BTC, "BUY", mark * D("1.05"), mark)
    filters.check_band(PERP_BTC, "SELL", mark * D("0.95"), mark)
    code, msg = code_of(filters.check_band, PERP_BTC, "BUY", D("63000.1"), mark)
    assert code == -4016 and msg.endswith(f"{px(PERP_BTC, mark * D('1.05'))}.")
    code, msg = code_of(filters.check_band, PERP_BTC, "SELL", D("56999.9"), mark)
    assert code == -4024 and "57000.0" in msg


# ------------------------------------------------------------------ MARKET_LOT_SIZE
def test_a_market_order_at_the_market_cap_passes_one_step_over_fails() -> None:
    spot = filters.Bounds.of(SPOT_BTC, 60_000.0)
    filters.check_market_qty(SPOT_BTC, spot, spot.market_max_qty)
    assert (
        code_of(filters.check_market_qty, SPOT_BTC, spot, spot.market_max_qty + SPOT_BTC.step_size)[1] == "Filter failure: MARKET_LOT_SIZE"
    )
    perp = filters.Bounds.of(PERP_BTC, 60_000.0)
    assert code_of(filters.check_market_qty, PERP_BTC, perp, perp.market_max_qty + PERP_BTC.step_size)[0] == -4005


# ------------------------------------------------------------------ MAX_NUM_ORDERS
@pytest.mark.parametrize(
    ("kind", "algo", "limit", "code", "name"),
    [
        ("spot", False, 200, -1013, "Filter failure: MAX_NUM_ORDERS"),
        ("spot", True, 5, -1013, "Filter failure: MAX_NUM_ALGO_ORDERS"),
        ("linear", False, 200, -2025, "Reach max open order limit."),
        ("linear", True, 10, -2025, "Reach max open order limit."),
    ],
)
def test_the_open_order_count_may_reach_one_below_the_limit(kind: str, algo: bool, limit: int, code: int, name: str) -> None:
    filters.check_open_count(kind, limit - 1, algo)
    assert code_of(filters.check_open_count, kind, limit, algo) == (code, name)


# ------------------------------------------------------------------ TRAILING_DELTA, ICEBERG_PARTS
@pytest.mark.parametrize(("delta", "ok"), [(9, False), (10, True), (2000, True), (2001, False)])
def test_trailing_delta_is_10_to_2000_basis_points(delta: int, ok: bool) -> None:
    if ok:
        filters.check_trailing_delta(delta)
    else:
        assert code_of(filters.check_trailing_delta, delta)[1] == "Filter failure: TRAILING_DELTA"


def test_an_iceberg_may_be_cut_in_at_most_ten_visible_parts() -> None:
    qty = D(1)
    filters.check_iceberg(SPOT_BTC, qty, D("0.1"))  # exactly ten parts
    filters.check_iceberg(SPOT_BTC, qty, D("0.5"))
    assert code_of(filters.check_iceberg, SPOT_BTC, qty, D("0.09999"))[1] == "Filter failure: ICEBERG_PARTS"  # 11 parts


@pytest.mark.parametrize("iceberg", ["0", "0.123456"])
def test_an_iceberg_part_must_be_positive_and_on_the_step(iceberg: str) -> None:
    assert code_of(filters.check_iceberg, SPOT_BTC, D(1), D(iceberg))[1] == "Filter failure: ICEBERG_PARTS"


@pytest.mark.parametrize("iceberg", ["1", "1.5"])
def test_an_iceberg_part_at_or_above_the_quantity_is_one_part_for_the_filter(iceberg: str) -> None:
    """CEIL(1 / 1.5) = 1 part: the filter passes it; the order is refused after the filters, -2010 "IcebergQty exceeds
    QTY." (tests/test_sandbox_binance_rules.py)."""
    filters.check_iceberg(SPOT_BTC, D(1), D(iceberg))


# ------------------------------------------------------------------ what exchangeInfo declares
def test_spot_declaration_names_every_enforced_filter_with_spot_padding() -> None:
    declared = by_type(filters.declared(SPOT_BTC, filters.Bounds.of(SPOT_BTC, 60_000.0)))
    assert declared["PRICE_FILTER"] == {
        "filterType": "PRICE_FILTER",
        "minPrice": "0.01000000",
        "maxPrice": "1000000.00000000",
        "tickSize": "0.01000000",
    }
    assert declared["LOT_SIZE"]["stepSize"] == "0.00001000" and declared["MARKET_LOT_SIZE"]["maxQty"] == qx(SPOT_BTC, D(900))
    assert declared["NOTIONAL"]["minNotional"] == "5.00000000"
    band = declared["PERCENT_PRICE_BY_SIDE"]
    assert (D(str(band["bidMultiplierDown"])), D(str(band["bidMultiplierUp"]))) == filters.SPOT_BAND
    ice = declared["ICEBERG_PARTS"]["limit"]
    filters.check_iceberg(SPOT_BTC, D(1), D(1) / D(str(ice)))  # the declared part count is accepted
    assert declared["TRAILING_DELTA"]["minTrailingAboveDelta"] == filters.TRAILING_DELTA[0]


def test_declared_order_counts_are_the_enforced_ones() -> None:
    for spec, key in ((SPOT_BTC, "maxNumOrders"), (PERP_BTC, "limit")):
        declared = by_type(filters.declared(spec, filters.Bounds.of(spec, 60_000.0)))
        limit = int(str(declared["MAX_NUM_ORDERS"][key]))
        filters.check_open_count(spec.kind, limit - 1, algo=False)
        with pytest.raises(ApiError):
            filters.check_open_count(spec.kind, limit, algo=False)


def test_futures_declaration_pads_to_the_symbol_precision() -> None:
    declared = by_type(filters.declared(PERP_BTC, filters.Bounds.of(PERP_BTC, 60_000.0)))
    assert declared["PRICE_FILTER"]["tickSize"] == "0.1" and declared["PRICE_FILTER"]["minPrice"] == "600.0"
    assert declared["LOT_SIZE"] == {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000.000", "stepSize": "0.001"}
    assert declared["PERCENT_PRICE"]["multiplierUp"] == "1.0500" and declared["PERCENT_PRICE"]["multiplierDown"] == "0.9500"
    assert "NOTIONAL" not in declared and declared["MIN_NOTIONAL"]["notional"] == "5.00000000"


# ------------------------------------------------------------------ fmt
def test_money_prints_eight_decimals_always() -> None:
    assert s(D(5)) == "5.00000000" and s(D("0.000000015")) == "0.00000002"  # Decimal's half-even rounding


def test_prices_and_quantities_pad_to_the_market_wire_places() -> None:
    assert px(SPOT_BTC, D("69592.5")) == "69592.50000000"  # spot: 8 always
    assert px(PERP_BTC, D("69592.5")) == "69592.5"  # futures: the tick's decimals
    assert qx(PERP_BTC, D(2)) == "2.000" and qx(SPOT_BTC, D(2)) == "2.00000000"
    coarse = MarketSpec("X", "X", "USDT", "linear", D(1), D(10), D(10), D(1000), D(5), 1.0, "x.csv")
    assert (px(coarse, D(7)), qx(coarse, D(20))) == ("7", "20")  # a whole-number tick prints no decimals


# ------------------------------------------------------------------ book
def test_floor_and_ceil_to_a_step() -> None:
    assert floor_to(D("1.239"), D("0.01")) == D("1.23") and ceil_to(D("1.231"), D("0.01")) == D("1.24")
    assert floor_to(D("1.23"), D("0.01")) == ceil_to(D("1.23"), D("0.01")) == D("1.23")
    assert floor_to(D("-0.5"), D(1)) == D(-1)  # toward minus infinity, not toward zero


def test_the_book_straddles_the_mid_by_half_the_spread_each_side() -> None:
    book = BookModel(spread_bps=2.0)
    (bid, _), (ask, _) = book.best(60_000.0, D("0.01"), D("0.00001"))
    half = D(60_000) * D(2) / D(20_000)
    assert (bid, ask) == (D(60_000) - half, D(60_000) + half)


def test_levels_are_a_gap_apart_and_deeper_levels_hold_more() -> None:
    book = BookModel(level_notional=50_000.0, level_gap_bps=1.0, levels=4)
    asks = book.levels_for(60_000.0, D("0.01"), D("0.00001"), "BUY")
    bids = book.levels_for(60_000.0, D("0.01"), D("0.00001"), "SELL")
    gap = D(6)  # 1 bp of 60 000
    assert [p for p, _ in asks] == [asks[0][0] + gap * i for i in range(4)]
    assert [p for p, _ in bids] == [bids[0][0] - gap * i for i in range(4)]
    assert [q for _, q in asks] == [floor_to(D(repr(50_000.0 * (1 + 0.5 * i) / 60_000.0)), D("0.00001")) for i in range(4)]


def test_a_zero_spread_on_a_coarse_tick_never_crosses_the_book() -> None:
    (bid, _), (ask, _) = BookModel(spread_bps=0.0).best(100.0, D(1), D(1))
    assert bid == D(100) and ask == D(101)


def test_bids_never_go_below_one_tick_and_every_level_holds_at_least_a_step() -> None:
    bids = BookModel(levels=3).levels_for(0.001, D("0.01"), D(1), "SELL")
    assert all(p == D("0.01") for p, _ in bids)
    asks = BookModel(level_notional=1.0).levels_for(1_000_000.0, D("0.01"), D("0.001"), "BUY")
    assert all(q == D("0.001") for _, q in asks)  # 1 USDT of a million-dollar coin rounds down to nothing: one step
