"""Binance's documented request rules, sent as raw signed HTTP (no client library in between): the sandbox refuses
what Binance refuses and accepts what it accepts. Each case cites the rule (Binance spot API docs: rest-api.md,
errors.md, filters.md); the answers are Binance's codes and wording (real answers where client libraries' issues
record them, e.g. "Parameter 'timeInForce' sent when not required.")."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import ccxt
import pytest

from planar_core.sandbox.accounts import Account
from planar_core.sandbox.server import SandboxServer

from .conftest import make_client

BELOW = "50000"  # a BUY limit price well under the sandbox's BTCUSDT market, inside its price band


async def signed(
    server: SandboxServer,
    acct: Account,
    method: str,
    path: str,
    params: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    timestamp: int | None = None,
    upper: bool = False,
) -> tuple[int, Any]:
    """One signed request as Binance documents it: HMAC-SHA256 over the query string and then the body."""
    query = urlencode({**params, "timestamp": timestamp if timestamp is not None else int(time.time() * 1000)})
    payload = urlencode(body or {})
    sig = hmac.new(acct.api_secret.encode(), (query + payload).encode(), hashlib.sha256).hexdigest()
    url = f"{server.url}{path}?{query}&signature={sig.upper() if upper else sig}"
    headers = {"X-MBX-APIKEY": acct.api_key, "Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as http, http.request(method, url, data=payload or None, headers=headers) as r:
        return r.status, await r.json()


def limit(**extra: Any) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": BELOW, **extra}


async def order(sandbox: SandboxServer, account: Account, **params: Any) -> tuple[int, Any]:
    return await signed(sandbox, account, "POST", "/api/v3/order", params)


# ------------------------------------------------------------------ signing and time


async def test_a_timestamp_in_microseconds_and_a_decimal_recv_window_are_accepted(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md: "Timestamp parameters ... can be passed in milliseconds or microseconds"; "recvWindow supports up
    to three decimal places of precision (e.g., 6000.346)"."""
    status, body = await signed(sandbox, account, "GET", "/api/v3/account", {}, timestamp=int(time.time() * 1_000_000))
    assert status == 200 and "balances" in body, body
    status, body = await signed(sandbox, account, "GET", "/api/v3/account", {"recvWindow": "6000.346"})
    assert status == 200, body


async def test_a_recv_window_above_60000_is_refused(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md: recvWindow "cannot be greater than 60000" (-1102); it was clamped to 60000 and accepted."""
    status, body = await signed(sandbox, account, "GET", "/api/v3/account", {"recvWindow": 70000})
    assert (status, body["code"]) == (400, -1102) and "Cannot be greater than 60000" in body["msg"]


async def test_an_upper_case_signature_is_accepted(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md: "Signatures generated using HMAC are not case-sensitive"."""
    status, body = await signed(sandbox, account, "GET", "/api/v3/account", {}, upper=True)
    assert status == 200, body


async def test_a_parameter_in_both_query_and_body_is_read_from_the_query(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md: "If a parameter sent in both the query string and request body, the query string parameter will be
    used"; the body's was."""
    status, body = await signed(sandbox, account, "POST", "/api/v3/order", limit(quantity="0.01"), body={"quantity": "0.02"})
    assert status == 200 and body["origQty"] == "0.01000000", body


# ------------------------------------------------------------------ order parameters


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"type": "MARKET", "quantity": "0.001", "timeInForce": "GTC"}, "timeInForce"),
        ({"type": "MARKET", "quantity": "0.001", "price": BELOW}, "price"),
        ({"type": "MARKET", "quantity": "0.001", "stopPrice": BELOW}, "stopPrice"),
        ({"type": "MARKET", "quantity": "0.001", "quoteOrderQty": "20"}, "quoteOrderQty"),
        ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": BELOW, "stopPrice": "49000"}, "stopPrice"),
        ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": BELOW, "trailingDelta": "100"}, "trailingDelta"),
        ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": BELOW, "quoteOrderQty": "50"}, "quoteOrderQty"),
        ({"type": "LIMIT_MAKER", "quantity": "0.01", "price": BELOW, "timeInForce": "GTC"}, "timeInForce"),
        ({"type": "STOP_LOSS", "side": "SELL", "quantity": "0.001", "stopPrice": "49000", "price": "49000"}, "price"),
        ({"type": "STOP_LOSS", "side": "SELL", "quantity": "0.001", "stopPrice": "49000", "timeInForce": "GTC"}, "timeInForce"),
    ],
)
async def test_a_parameter_the_order_type_does_not_take_is_refused(sandbox: SandboxServer, account: Account, params, name) -> None:
    """rest-api.md's mandatory parameters by type: any other type-dependent parameter is refused, -1106 "Parameter '%s'
    sent when not required." (real Binance's answer to timeInForce on MARKET / LIMIT_MAKER / STOP_LOSS and price on
    STOP_LOSS). Each was accepted and ignored."""
    status, body = await order(sandbox, account, symbol="BTCUSDT", side=params.pop("side", "BUY"), **params)
    assert (status, body) == (400, {"code": -1106, "msg": f"Parameter '{name}' sent when not required."})
    assert not sandbox.ex.snapshot()["accounts"][account.api_key]["orders"]


async def test_the_answer_format_follows_new_order_resp_type_and_its_defaults(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md: "MARKET and LIMIT order types default to FULL, all other orders default to ACK"; ACK carries the
    ids and the time only, RESULT the order without fills; an unknown value is refused (-1136). Every answer was FULL."""
    status, full = await order(sandbox, account, **limit())
    assert status == 200 and full["fills"] == [] and full["status"] == "NEW"
    status, ack = await order(sandbox, account, symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.01", price=BELOW)
    assert status == 200 and set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}, ack
    status, result = await order(sandbox, account, **limit(newOrderRespType="RESULT"))
    assert status == 200 and "fills" not in result and result["status"] == "NEW"
    status, body = await order(sandbox, account, **limit(newOrderRespType="FOO"))
    assert (status, body["code"]) == (400, -1136)


async def test_strategy_type_below_its_minimum_is_refused_and_a_valid_one_is_echoed(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md: strategyType "cannot be less than 1000000" (-1134); strategyId/strategyType "appear if the
    parameter was populated in the request"."""
    status, body = await order(sandbox, account, **limit(strategyType=5))
    assert (status, body["code"]) == (400, -1134)
    status, body = await order(sandbox, account, **limit(strategyId=37, strategyType=1_000_000))
    assert status == 200 and (body["strategyId"], body["strategyType"]) == (37, 1_000_000)
    status, plain = await order(sandbox, account, **limit())
    assert "strategyId" not in plain and "strategyType" not in plain


async def test_a_quote_order_qty_market_order_reports_its_quote_qty(sandbox: SandboxServer, account: Account) -> None:
    """The answer's origQuoteOrderQty is the quoteOrderQty sent (rest-api.md's example); it was always zero."""
    status, body = await order(sandbox, account, symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="20")
    assert status == 200 and body["origQuoteOrderQty"] == "20.00000000", body


async def test_max_notional_is_enforced_on_limit_orders(sandbox: SandboxServer) -> None:
    """filters.md, NOTIONAL: price x quantity <= maxNotional (9 000 000 as the sandbox declares it) for limit orders;
    it was declared and never checked."""
    rich = sandbox.ex.add_account({"USDT": 50_000_000})
    status, body = await order(sandbox, rich, **limit(quantity="200"))
    assert (status, body) == (400, {"code": -1013, "msg": "Filter failure: NOTIONAL"})
    status, body = await order(sandbox, rich, **limit(quantity="100"))
    assert status == 200, body


async def test_iceberg_quantity_rules(sandbox: SandboxServer, account: Account) -> None:
    """errors.md (-2010 messages): "IcebergQty exceeds QTY." (icebergQty must be less than the quantity; one part passes
    ICEBERG_PARTS, so it is not a filter failure) and "Unsupported order combination" (an iceberg must be GTC)."""
    status, body = await order(sandbox, account, **limit(icebergQty="0.02"))
    assert (status, body) == (400, {"code": -2010, "msg": "IcebergQty exceeds QTY."})
    status, body = await order(sandbox, account, **limit(timeInForce="IOC", icebergQty="0.005"))
    assert (status, body) == (400, {"code": -2010, "msg": "Unsupported order combination"})
    status, body = await order(sandbox, account, **limit(icebergQty="0.001"))  # 10 parts: ICEBERG_PARTS' limit
    assert status == 200 and body["icebergQty"] == "0.00100000", body


# ------------------------------------------------------------------ cancels and look-ups


async def test_an_order_id_and_a_client_id_that_disagree_cancel_nothing(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md (cancel and query): with both, the order is found by orderId and its client id checked; "If both
    conditions are not met the request will be rejected" (-2039). The cancel went through on the orderId alone."""
    _, placed = await order(sandbox, account, **limit(newClientOrderId="mine-1"))
    ids = {"symbol": "BTCUSDT", "orderId": placed["orderId"], "origClientOrderId": "someone-else"}
    expected = (400, {"code": -2039, "msg": "Client order ID is not correct for this order ID."})
    assert await signed(sandbox, account, "DELETE", "/api/v3/order", ids) == expected
    assert await signed(sandbox, account, "GET", "/api/v3/order", ids) == expected
    status, body = await signed(sandbox, account, "GET", "/api/v3/order", {**ids, "origClientOrderId": "mine-1"})
    assert status == 200 and body["status"] == "NEW"
    status, body = await signed(sandbox, account, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT"})
    assert (status, body["msg"]) == (400, "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!")


async def test_cancel_restrictions(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md, "Regarding cancelRestrictions": ONLY_PARTIALLY_FILLED on a NEW order is refused (-2011 "Order was
    not canceled due to cancel restrictions."), ONLY_NEW cancels it, anything else is -1145. It was ignored."""
    _, placed = await order(sandbox, account, **limit())
    ref = {"symbol": "BTCUSDT", "orderId": placed["orderId"]}
    status, body = await signed(sandbox, account, "DELETE", "/api/v3/order", {**ref, "cancelRestrictions": "ONLY_PARTIALLY_FILLED"})
    assert (status, body) == (400, {"code": -2011, "msg": "Order was not canceled due to cancel restrictions."})
    status, body = await signed(sandbox, account, "DELETE", "/api/v3/order", {**ref, "cancelRestrictions": "BOGUS"})
    assert (status, body["code"]) == (400, -1145)
    status, body = await signed(sandbox, account, "DELETE", "/api/v3/order", {**ref, "cancelRestrictions": "ONLY_NEW"})
    assert status == 200 and body["status"] == "CANCELED"


# ------------------------------------------------------------------ order lists


async def test_an_open_lists_client_id_is_not_taken_again(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md (orderList/oco): "A new order list with the same listClientOrderId is accepted only when the
    previous one is filled or completely expired"; a second list under it was booked."""
    oco = {**sell_list(sandbox), "listClientOrderId": "list-1"}
    status, body = await signed(sandbox, account, "POST", "/api/v3/orderList/oco", oco)
    assert status == 200, body
    status, body = await signed(sandbox, account, "POST", "/api/v3/orderList/oco", oco)
    assert (status, body) == (400, {"code": -2010, "msg": "Duplicate order sent."})


async def test_a_legacy_oco_stop_limit_price_needs_its_time_in_force(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md (order/oco): stopLimitPrice "If provided, stopLimitTimeInForce is required."; GTC was assumed."""
    mid = sandbox.ex.mid(sandbox.ex.markets[("spot", "BTCUSDT")])
    stop = f"{round(mid * 0.95, 2):.2f}"
    params = {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.001", "price": f"{round(mid * 1.05, 2):.2f}", "stopPrice": stop}
    status, body = await signed(sandbox, account, "POST", "/api/v3/order/oco", {**params, "stopLimitPrice": stop})
    assert (status, body["code"]) == (400, -1102) and "stopLimitTimeInForce" in body["msg"]
    status, body = await signed(
        sandbox, account, "POST", "/api/v3/order/oco", {**params, "stopLimitPrice": stop, "stopLimitTimeInForce": "GTC"}
    )
    assert status == 200, body


def sell_list(sandbox: SandboxServer, **legs: Any) -> dict[str, Any]:
    """A SELL OCO at the sandbox's BTCUSDT price: a limit maker 5 % above, a stop-loss 5 % below, unless ``legs`` say."""
    mid = sandbox.ex.mid(sandbox.ex.markets[("spot", "BTCUSDT")])
    p = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "0.001",
        "aboveType": "LIMIT_MAKER",
        "abovePrice": f"{round(mid * 1.05, 2):.2f}",
        "belowType": "STOP_LOSS",
        "belowStopPrice": f"{round(mid * 0.95, 2):.2f}",
    }
    return {**p, **{k: (f"{round(mid * v, 2):.2f}" if isinstance(v, float) else v) for k, v in legs.items()}}


@pytest.mark.parametrize(
    ("legs", "code", "msg"),
    [
        ({"aboveType": "STOP_LOSS", "belowType": "LIMIT_MAKER"}, -1158, "Order type not supported in OCO."),
        ({"abovePrice": 0.97}, -1166, "A limit order in a sell OCO must be above."),
        (
            {"aboveType": "TAKE_PROFIT", "abovePrice": None, "aboveStopPrice": 0.97},
            -1199,
            "A take profit order in a sell OCO must be above.",
        ),
        ({"belowStopPrice": 1.02}, -1197, "A stop loss order in a sell OCO must be below."),
    ],
)
async def test_an_order_list_s_legs_are_refused_with_binance_s_own_codes(sandbox: SandboxServer, account: Account, legs, code, msg) -> None:
    """errors.md's order-list codes (-1158 the legs' types; -1166 / -1199 / -1197 a leg on the wrong side of the last
    price): the sandbox answered -1106 and the legs' own -2010 refusals instead."""
    params = {k: v for k, v in sell_list(sandbox, **legs).items() if v is not None}
    assert await signed(sandbox, account, "POST", "/api/v3/orderList/oco", params) == (400, {"code": code, "msg": msg})


async def test_a_cancel_all_answers_an_order_list_as_the_list(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md (DELETE /api/v3/openOrders): "This includes orders that are part of an order list", answered as the
    list with its legs' reports; the sandbox answered one plain leg and left the other out."""
    await order(sandbox, account, **limit(newClientOrderId="plain-1"))
    status, placed = await signed(sandbox, account, "POST", "/api/v3/orderList/oco", {**sell_list(sandbox), "listClientOrderId": "l-9"})
    assert status == 200, placed
    status, body = await signed(sandbox, account, "DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert status == 200 and len(body) == 2, body
    plain, olist = sorted(body, key=lambda e: "orderListId" in e and e.get("contingencyType") == "OCO")
    assert plain["origClientOrderId"] == "plain-1" and plain["status"] == "CANCELED"
    assert olist["listClientOrderId"] == "l-9" and olist["listOrderStatus"] == "ALL_DONE"
    assert sorted(r["origClientOrderId"] for r in olist["orderReports"]) == sorted(o["clientOrderId"] for o in placed["orders"])
    assert {r["status"] for r in olist["orderReports"]} == {"CANCELED"}


# ------------------------------------------------------------------ test orders


async def test_a_test_order_is_checked_as_an_order_and_books_nothing(sandbox: SandboxServer, account: Account) -> None:
    """rest-api.md, Test new order: "Creates and validates a new order but does not send it into the matching engine";
    ``{}`` without computeCommissionRates, the rates with it. It was not served (404), so a client's dry run
    (ccxt's ``params={"test": True}``) could not run here."""
    status, body = await signed(sandbox, account, "POST", "/api/v3/order/test", limit())
    assert (status, body) == (200, {}), body
    status, body = await signed(sandbox, account, "POST", "/api/v3/order/test", limit(computeCommissionRates="true"))
    assert status == 200 and set(body["standardCommissionForOrder"]) == {"maker", "taker"}, body
    assert set(body) == {"standardCommissionForOrder", "specialCommissionForOrder", "taxCommissionForOrder", "discount"}
    # what the order itself would meet: a filter, a parameter the type does not take
    status, body = await signed(sandbox, account, "POST", "/api/v3/order/test", limit(price="50000.001"))
    assert (status, body["code"]) == (400, -1013) and "PRICE_FILTER" in body["msg"], body
    status, body = await signed(
        sandbox,
        account,
        "POST",
        "/api/v3/order/test",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "price": BELOW},
    )
    assert (status, body["code"]) == (400, -1106), body
    # nothing booked, nothing locked
    status, opened = await signed(sandbox, account, "GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert (status, opened) == (200, []), opened


async def test_ccxt_create_order_with_test_reaches_the_test_endpoint(sandbox: SandboxServer, account: Account) -> None:
    """ccxt's binance ``create_order(..., params={"test": True})`` posts to ``/api/v3/order/test`` and parses its
    ``{}``; nothing rests afterwards, and a malformed order is refused as a real one would be."""
    ex = make_client(sandbox, account)
    try:
        await ex.load_markets()
        await ex.create_order("BTC/USDT", "limit", "buy", 0.01, float(BELOW), {"test": True})
        assert await ex.fetch_open_orders("BTC/USDT") == []
        with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):  # ccxt maps -1013 to BadRequest
            await ex.create_order("BTC/USDT", "limit", "buy", 0.00001, float(BELOW), {"test": True})  # under NOTIONAL
    finally:
        await ex.close()
