"""Order entry of the sandbox's matching engine (sandbox/exchange.py, order_lists.py), called directly on an exchange
with a fixed clock and a fixed price (no path time, no server): LOT_SIZE, NOTIONAL, balances locked and released,
time in force, client order ids, and spot OCO lists."""

from __future__ import annotations

from decimal import Decimal

import pytest

from planar_core.sandbox.accounts import Account, Fill, SandboxOrder
from planar_core.sandbox.errors import ApiError
from planar_core.sandbox.exchange import SandboxExchange
from planar_core.sandbox.market_data import DEFAULT_MARKETS, PathLibrary
from planar_core.sandbox.order_lists import OrderList

D = Decimal
T = 1_700_000_000_000
PRICE = 60_000.0  # the spot market's mid: best bid 59 994, best ask 60 006 (2 bp spread)
PERP_PRICE = 1_000.0  # the perpetual's: low enough for its minimum quantity to be under the minimum notional


class FixedExchange(SandboxExchange):
    """The matching engine on a clock that never moves."""

    def now_ms(self) -> int:
        return T


def exchange() -> tuple[SandboxExchange, Account]:
    ex = FixedExchange(
        paths=PathLibrary(data_dir=None),
        specs=[DEFAULT_MARKETS[0], DEFAULT_MARKETS[5]],
        price_source=lambda m: PRICE if m.spec.kind == "spot" else PERP_PRICE,
    )
    return ex, ex.add_account({"USDT": D(10_000), "BTC": D(1)}, api_key="k", api_secret="s")


def place(ex: SandboxExchange, acct: Account, kind: str = "spot", **p: str) -> tuple[SandboxOrder, list[Fill]]:
    return ex.place_order(acct, kind, {"symbol": "BTCUSDT", **p})


def refusal(ex: SandboxExchange, acct: Account, kind: str = "spot", **p: str) -> tuple[int, str]:
    with pytest.raises(ApiError) as info:
        place(ex, acct, kind, **p)
    return info.value.code, info.value.msg


def limit(side: str, qty: str, price: str, **extra: str) -> dict[str, str]:
    return {"side": side, "type": "LIMIT", "timeInForce": "GTC", "quantity": qty, "price": price, **extra}


# ------------------------------------------------------------------ LOT_SIZE, NOTIONAL, parameters
@pytest.mark.parametrize("qty", ["0.000001", "0.000015", "9000.00001"])
def test_a_quantity_below_the_minimum_off_the_step_or_above_the_maximum_fails_lot_size(qty: str) -> None:
    ex, acct = exchange()
    assert refusal(ex, acct, **limit("BUY", qty, "50000")) == (-1013, "Filter failure: LOT_SIZE")


def test_spot_notional_below_the_minimum_fails_and_at_it_passes() -> None:
    ex, acct = exchange()
    assert refusal(ex, acct, **limit("BUY", "0.00009", "50000")) == (-1013, "Filter failure: NOTIONAL")  # 4.5 USDT
    order, _ = place(ex, acct, **limit("BUY", "0.0001", "50000"))  # 5 USDT
    assert order.status == "NEW"


def test_futures_notional_below_the_minimum_fails_unless_reduce_only() -> None:
    ex, acct = exchange()
    code, msg = refusal(ex, acct, "linear", **limit("BUY", "0.001", "1000.0"))  # 1 USDT
    assert code == -4164 and "no smaller than 5" in msg
    place(ex, acct, "linear", side="BUY", type="MARKET", quantity="0.01")  # a position of 10 USDT
    order, fills = place(ex, acct, "linear", **limit("SELL", "0.001", "990.0", reduceOnly="true"))
    assert fills and order.status == "FILLED"


def test_a_malformed_number_is_illegal_and_a_missing_one_mandatory() -> None:
    ex, acct = exchange()
    assert refusal(ex, acct, **limit("BUY", "1e-3", "50000"))[0] == -1100
    assert refusal(ex, acct, side="BUY", type="LIMIT", timeInForce="GTC", price="50000") == (
        -1102,
        "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
    )


def test_a_limit_order_needs_a_time_in_force_and_spot_refuses_gtx() -> None:
    ex, acct = exchange()
    assert refusal(ex, acct, side="BUY", type="LIMIT", quantity="0.001", price="50000")[0] == -1102
    assert refusal(ex, acct, **limit("BUY", "0.001", "50000", timeInForce="GTX")) == (-1115, "Invalid timeInForce.")


def test_futures_conditional_types_belong_to_the_algo_service() -> None:
    ex, acct = exchange()
    assert refusal(ex, acct, "linear", side="SELL", type="STOP_MARKET", quantity="0.01", stopPrice="50000.0")[0] == -4120


def test_reduce_only_is_refused_on_spot() -> None:
    ex, acct = exchange()
    assert refusal(ex, acct, **limit("SELL", "0.001", "70000", reduceOnly="true"))[0] == -1106


# ------------------------------------------------------------------ balances
def test_a_resting_buy_locks_price_times_quantity_and_a_cancel_releases_it() -> None:
    ex, acct = exchange()
    order, fills = place(ex, acct, **limit("BUY", "0.1", "50000"))
    assert not fills and acct.spot["USDT"] == [D(5_000), D(5_000)]
    ex.cancel_order(acct, "spot", {"symbol": "BTCUSDT", "orderId": str(order.order_id)})
    assert acct.spot["USDT"] == [D(10_000), D(0)]


def test_a_buy_beyond_the_free_quote_is_refused_without_locking_anything() -> None:
    ex, acct = exchange()
    assert refusal(ex, acct, **limit("BUY", "0.2", "50001")) == (-2010, "Account has insufficient balance for requested action.")
    assert acct.spot["USDT"] == [D(10_000), D(0)] and not acct.orders


def test_a_buy_limit_through_the_ask_fills_at_the_ask_and_gets_the_difference_back() -> None:
    ex, acct = exchange()
    _, fills = place(ex, acct, **limit("BUY", "0.01", "61000"))
    [f] = fills
    assert f.price == D(60_006)
    assert acct.spot["USDT"] == [D(10_000) - D("600.06"), D(0)]
    assert acct.spot["BTC"][0] == D(1) + D("0.01") - D("0.00001")  # the buyer's fee is in base, 0.1 %


def test_a_market_sell_pays_its_fee_in_quote() -> None:
    ex, acct = exchange()
    _, fills = place(ex, acct, side="SELL", type="MARKET", quantity="0.1")
    proceeds = D("0.1") * D(59_994)
    assert fills[0].commission == (proceeds * D("0.001")).quantize(D("0.00000001"))
    assert acct.spot["USDT"][0] == D(10_000) + proceeds - proceeds * D("0.001")


def test_a_quote_order_quantity_buys_what_it_affords_on_the_step() -> None:
    ex, acct = exchange()
    order, _ = place(ex, acct, side="BUY", type="MARKET", quoteOrderQty="100")
    assert order.qty == D("0.00166")  # 100 / 60 006 = 0.0016664... floored to 0.00001


# ------------------------------------------------------------------ time in force
def test_a_post_only_order_that_would_take_is_refused() -> None:
    ex, acct = exchange()
    assert refusal(ex, acct, side="BUY", type="LIMIT_MAKER", quantity="0.01", price="60006") == (
        -2010,
        "Order would immediately match and take.",
    )
    order, _ = place(ex, acct, side="BUY", type="LIMIT_MAKER", quantity="0.01", price="60005.99")
    assert order.status == "NEW"


def test_fill_or_kill_beyond_the_depth_at_its_price_expires_untouched() -> None:
    ex, acct = exchange()
    order, fills = place(ex, acct, **limit("SELL", "0.9", "59994", timeInForce="FOK"))  # the best bid holds 0.83333
    assert not fills and order.status == "EXPIRED" and order.filled == 0
    assert acct.spot["BTC"] == [D(1), D(0)]


def test_immediate_or_cancel_fills_what_it_can_and_expires_the_rest() -> None:
    ex, acct = exchange()
    order, fills = place(ex, acct, **limit("SELL", "0.9", "59994", timeInForce="IOC"))
    assert [f.qty for f in fills] == [D("0.83333")]
    assert order.status == "EXPIRED" and acct.spot["BTC"] == [D(1) - D("0.83333"), D(0)]


# ------------------------------------------------------------------ client order ids
def test_a_client_id_is_unique_among_open_orders_and_free_again_once_closed() -> None:
    ex, acct = exchange()
    order, _ = place(ex, acct, **limit("BUY", "0.01", "50000", newClientOrderId="mine-1"))
    assert refusal(ex, acct, **limit("BUY", "0.01", "50000", newClientOrderId="mine-1")) == (-2010, "Duplicate order sent.")
    ex.cancel_order(acct, "spot", {"symbol": "BTCUSDT", "origClientOrderId": "mine-1"})
    again, _ = place(ex, acct, **limit("BUY", "0.01", "50000", newClientOrderId="mine-1"))
    assert again.order_id != order.order_id


@pytest.mark.parametrize("cid", ["has space", "x" * 37, "semi;colon"])
def test_a_client_id_outside_binance_pattern_is_illegal(cid: str) -> None:
    ex, acct = exchange()
    assert refusal(ex, acct, **limit("BUY", "0.01", "50000", newClientOrderId=cid))[0] == -1100


def test_cancelling_a_closed_order_is_an_unknown_order() -> None:
    ex, acct = exchange()
    order, _ = place(ex, acct, side="BUY", type="MARKET", quantity="0.001")
    with pytest.raises(ApiError) as info:
        ex.cancel_order(acct, "spot", {"symbol": "BTCUSDT", "orderId": str(order.order_id)})
    assert info.value.code == -2011


# ------------------------------------------------------------------ conditional orders, OCO
def test_a_stop_that_would_trigger_at_once_is_refused() -> None:
    ex, acct = exchange()
    assert refusal(ex, acct, side="SELL", type="STOP_LOSS", quantity="0.01", stopPrice="61000") == (
        -2010,
        "Stop price would trigger immediately.",
    )
    order, _ = place(ex, acct, side="SELL", type="STOP_LOSS", quantity="0.01", stopPrice="59000")
    assert order.working is False and acct.spot["BTC"] == [D("0.99"), D("0.01")]


def oco(ex: SandboxExchange, acct: Account, side: str, above: str, below: str, **extra: str) -> OrderList:
    p = {"symbol": "BTCUSDT", "side": side, "quantity": "0.1", **extra}
    if side == "SELL":
        p |= {"aboveType": "LIMIT_MAKER", "abovePrice": above, "belowType": "STOP_LOSS", "belowStopPrice": below}
    else:
        p |= {"aboveType": "STOP_LOSS", "aboveStopPrice": above, "belowType": "LIMIT_MAKER", "belowPrice": below}
    return ex.place_oco(acct, p, legacy=False)


def test_a_sell_oco_books_both_legs_under_one_lock_of_base() -> None:
    ex, acct = exchange()
    olist = oco(ex, acct, "SELL", "65000", "55000", listClientOrderId="L1")
    legs = [acct.orders[i] for i in olist.order_ids]
    assert [o.type for o in legs] == ["STOP_LOSS", "LIMIT_MAKER"]  # the below leg first, as Binance lists them
    assert all(o.order_list_id == olist.list_id for o in legs)
    assert acct.spot["BTC"] == [D("0.9"), D("0.1")]  # 0.1 locked once, not twice


def test_oco_prices_must_bracket_the_market_and_a_refused_list_leaves_nothing() -> None:
    ex, acct = exchange()
    with pytest.raises(ApiError) as info:
        oco(ex, acct, "SELL", "59995", "59999")  # each leg valid alone (maker above the bid, stop under the last price)
    # orderList/oco: errors.md's own code for a sell list's limit maker not above the last price
    assert (info.value.code, info.value.msg) == (-1166, "A limit order in a sell OCO must be above.")
    assert not acct.orders and not acct.order_lists and acct.spot["BTC"] == [D(1), D(0)]
    legacy = {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.1", "price": "59995", "stopPrice": "59999"}
    with pytest.raises(ApiError) as info:  # the older order/oco: the legs' relationship, -2010
        ex.place_oco(acct, legacy, legacy=True)
    assert (info.value.code, info.value.msg) == (-2010, "The relationship of the prices for the orders is not correct.")
    assert not acct.orders and not acct.order_lists and acct.spot["BTC"] == [D(1), D(0)]


def test_oco_leg_types_must_suit_the_side() -> None:
    ex, acct = exchange()
    p = {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.1", "aboveType": "STOP_LOSS", "aboveStopPrice": "55000"}
    p |= {"belowType": "LIMIT_MAKER", "belowPrice": "65000"}
    with pytest.raises(ApiError) as info:
        ex.place_oco(acct, p, legacy=False)
    assert (info.value.code, info.value.msg) == (-1158, "Order type not supported in OCO.")


def test_cancelling_one_leg_cancels_the_list() -> None:
    ex, acct = exchange()
    olist = oco(ex, acct, "BUY", "65000", "55000")
    stop_id, limit_id = olist.order_ids
    ex.cancel_order(acct, "spot", {"symbol": "BTCUSDT", "orderId": str(limit_id)})
    assert (acct.orders[stop_id].status, olist.status) == ("CANCELED", "ALL_DONE")
    assert acct.spot["USDT"] == [D(10_000), D(0)]
    with pytest.raises(ApiError) as info:
        ex.cancel_list(acct, {"orderListId": str(olist.list_id)})
    assert info.value.code == -2011


def test_a_list_is_found_by_its_client_id_and_an_unknown_one_does_not_exist() -> None:
    ex, acct = exchange()
    olist = oco(ex, acct, "SELL", "65000", "55000", listClientOrderId="mine")
    assert ex.find_list(acct, {"listClientOrderId": "mine"}) is olist
    with pytest.raises(ApiError) as info:
        ex.find_list(acct, {"listClientOrderId": "other"})
    assert info.value.code == -2013


def test_the_legacy_oco_endpoint_maps_price_and_stop_limit_price_to_its_legs() -> None:
    ex, acct = exchange()
    p = {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.1", "price": "65000", "stopPrice": "55000", "stopLimitPrice": "54900"}
    p["stopLimitTimeInForce"] = "GTC"  # required with stopLimitPrice
    olist = ex.place_oco(acct, p, legacy=True)
    stop, lim = (acct.orders[i] for i in olist.order_ids)
    assert (lim.type, lim.price) == ("LIMIT_MAKER", D(65_000))
    assert (stop.type, stop.stop_price, stop.price, stop.time_in_force) == ("STOP_LOSS_LIMIT", D(55_000), D(54_900), "GTC")
