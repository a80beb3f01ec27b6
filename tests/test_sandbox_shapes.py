"""The sandbox's answers against Binance's recorded response shapes (issue 14).

``fixtures/binance_shapes.json`` holds, per endpoint, the field names and JSON types of Binance's answer as its own
SDK's generated models declare them (``fixtures/record_shapes.py`` says where from). Each endpoint is asked here
over real HTTP, and its answer compared field by field, nested rows included:

* a field the sandbox sends must be a field Binance sends, of the same JSON type (an extra field is how the futures
  24hr ticker once carried ``bidPrice`` and made ccxt file it under a spot symbol);
* a field Binance sends must be sent by the sandbox, unless ``NOT_SENT`` names it with the reason.

Binance's own list of "conditional fields in order responses" (spot ``rest-api.md``) may be absent, and present
though a model omits them; ``ALSO_SENT`` names the fields Binance's documented examples and ccxt's recorded answers
carry that the SDK's model omits.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from planar_core.sandbox import SandboxServer
from planar_core.sandbox.accounts import Account

from .conftest import make_client
from .engine.test_order_call import bid_ask

SHAPES: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures" / "binance_shapes.json").read_text())

SPOT_CONDITIONAL = frozenset(
    {
        "icebergQty",
        "preventedMatchId",
        "preventedQuantity",
        "stopPrice",
        "strategyId",
        "strategyType",
        "trailingDelta",
        "trailingTime",
        "usedSor",
        "workingFloor",
        "pegPriceType",
        "pegOffsetType",
        "pegOffsetValue",
        "peggedPrice",
        "expiryReason",
    }
)
SPOT_ORDERS = (
    "spot POST /api/v3/order",
    "spot GET /api/v3/order",
    "spot DELETE /api/v3/order",
    "spot GET /api/v3/openOrders []",
    "spot GET /api/v3/allOrders []",
)
AFTER_CM = {"ps": "marked '(After CM migration)' in the SDK's models, not yet in USDⓈ-M's documented stream payloads", "st": "same"}
TRAILING_ONLY = {"activatePrice": "trailing stops only, which /fapi/v1/order no longer takes (Algo Service)", "priceRate": "same"}
FUTURES_ORDER_EXTRAS = {
    "avgPrice": "in Binance's documented order answers and ccxt's recorded ones (ts/src/test/static/response/binance.json)",
    "cumQty": "same",
    "cumQuote": "same",
    "time": "same",
}

# Binance fields the sandbox does not send, with the reason (every other field must be there)
NOT_SENT: dict[str, dict[str, str]] = {
    **{e: dict.fromkeys(SPOT_CONDITIONAL, "a conditional field: sent only when its condition holds (rest-api.md)") for e in SPOT_ORDERS},
    "usdm GET /fapi/v1/fundingRate []": {"rateType": "Regular/Special (stock-dividend funding): the sandbox lists no stock perpetuals"},
    "usdm GET /fapi/v1/leverageBracket []": {"notionalCoef": "appears only when the user's bracket was adjusted"},
    "usdm GET /fapi/v1/order": TRAILING_ONLY,
    "usdm GET /fapi/v1/openOrders []": TRAILING_ONLY,
    "usdm GET /fapi/v1/userTrades []": dict.fromkeys(
        ("pair", "marginAsset", "baseQty"), "COIN-M fields in the SDK's shared model; USDⓈ-M's documented answer has none of them"
    ),
    "usdm POST /fapi/v1/algoOrder": {"activatePrice": "trailing stops only", "callbackRate": "trailing stops only"},
    **{
        e: {f"orderReports[].{k}": "a conditional field (rest-api.md)" for k in SPOT_CONDITIONAL}
        for e in ("spot POST /api/v3/orderList/oco", "spot DELETE /api/v3/orderList")
    },
    "ws spot executionReport": dict.fromkeys(
        ("d", "D", "j", "J", "v", "A", "B", "u", "U", "Cs", "pl", "pL", "pY", "W", "b", "a", "k", "uS", "gP", "gOT", "gOV", "gp", "eR"),
        "a conditional field of the execution report (user-data-stream.md): sent when it applies",
    ),
    "ws usdm ORDER_TRADE_UPDATE": {
        "o.AP": "trailing stops only (activation price), which /fapi/v1/order no longer takes",
        "o.cr": "trailing stops only (callback rate)",
        "o.M": "amendments only (modifyId)",
    },
    "ws usdm ACCOUNT_UPDATE": {"a.S": "funding-fee events only (the symbol paid for)"},
    **{
        f"ws usdm <symbol>@{name}": AFTER_CM
        for name in ("aggTrade", "bookTicker", "miniTicker", "ticker", "depth", "depth<levels>", "markPrice")
    },
}
# at any depth: the exponents of Binance's SBE encoding, which its JSON answers do not carry (the SDK's filter models
# share them with the SBE schema; the spot JSON filters in filters.md have none)
SBE_ONLY = frozenset({"priceExponent", "qtyExponent", "multiplierExponent"})
# fields the sandbox sends that the SDK's model lacks, with the evidence that Binance sends them
ALSO_SENT: dict[str, dict[str, str]] = {
    **{e: dict.fromkeys(SPOT_CONDITIONAL, "a conditional field (rest-api.md)") for e in SPOT_ORDERS},
    **{
        e: {f"orderReports[].{k}": "a conditional field (rest-api.md)" for k in SPOT_CONDITIONAL}
        for e in ("spot POST /api/v3/orderList/oco", "spot DELETE /api/v3/orderList")
    },
    "usdm POST /fapi/v1/order": FUTURES_ORDER_EXTRAS,
    "usdm GET /fapi/v1/order": FUTURES_ORDER_EXTRAS,
    "usdm GET /fapi/v1/openOrders []": FUTURES_ORDER_EXTRAS,
}


def json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return "null"


def compare(
    expected: object, actual: object, where: str, problems: list[str], not_sent: dict[str, str], also: dict[str, str], rel: str = ""
) -> None:
    """Append to ``problems`` every difference between a recorded shape and an answer. ``not_sent`` and ``also`` name
    allowed differences by their path from the top (``"o.AP"``)."""
    if isinstance(expected, dict) and "by_type" in expected:  # spot filters: each by its filterType's model
        for i, row in enumerate(actual if isinstance(actual, list) else []):
            model = expected["by_type"].get(row.get("filterType"))
            if model is None:
                problems.append(f"{where}[{i}]: unknown filterType {row.get('filterType')}")
            else:
                compare(model, row, f"{where}[{i}]", problems, {}, {}, "-")
        return
    if isinstance(expected, dict) and "any_of" in expected:  # futures filters: fields from the union, none required
        for i, row in enumerate(actual if isinstance(actual, list) else []):
            for key, value in row.items():
                if key not in expected["any_of"]:
                    problems.append(f"{where}[{i}].{key}: not a Binance field")
                else:
                    compare(expected["any_of"][key], value, f"{where}[{i}].{key}", problems, {}, {}, "-")
        return
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            problems.append(f"{where}: expected an object, got {json_type(actual)}")
            return
        for key, value in actual.items():
            path = f"{rel}.{key}" if rel else key
            if key in expected:
                compare(expected[key], value, f"{where}.{key}", problems, not_sent, also, path)
            elif path not in also:
                problems.append(f"{where}.{key}: not a Binance field")
        for key in expected:
            path = f"{rel}.{key}" if rel else key
            if key not in actual and path not in not_sent and key not in SBE_ONLY:
                problems.append(f"{where}.{key}: missing")
        return
    if isinstance(expected, list):
        if not isinstance(actual, list):
            problems.append(f"{where}: expected a list, got {json_type(actual)}")
            return
        for i, row in enumerate(actual[:3]):
            compare(expected[0], row, f"{where}[{i}]", problems, not_sent, also, f"{rel}[]")
        return
    kind = json_type(actual)
    ok = kind == expected or (expected == "number" and kind in ("int", "number")) or (kind == "null")
    if not ok:
        problems.append(f"{where}: Binance sends {expected}, the sandbox {kind} ({actual!r})")


Ask = Callable[[Any, Any, SandboxServer], Awaitable[object]]


async def _filled_futures_order(spot: Any, fut: Any, sandbox: SandboxServer) -> object:
    return await fut.fapiPrivatePostOrder(
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "newOrderRespType": "RESULT"}
    )


def _resting_spot(spot: Any, sandbox: SandboxServer) -> dict[str, str]:
    bid, _ = bid_ask(sandbox, "BTCUSDT")
    return {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001", "price": f"{bid * 0.95:.2f}"}


ASK: dict[str, Ask] = {
    "spot GET /api/v3/exchangeInfo symbols[]": lambda s, f, sb: _first(s.publicGetExchangeInfo(), "symbols"),
    "spot GET /api/v3/depth": lambda s, f, sb: s.publicGetDepth({"symbol": "BTCUSDT", "limit": 5}),
    "spot GET /api/v3/trades []": lambda s, f, sb: s.publicGetTrades({"symbol": "BTCUSDT", "limit": 3}),
    "spot GET /api/v3/aggTrades []": lambda s, f, sb: s.publicGetAggTrades({"symbol": "BTCUSDT", "limit": 3}),
    "spot GET /api/v3/avgPrice": lambda s, f, sb: s.publicGetAvgPrice({"symbol": "BTCUSDT"}),
    "spot GET /api/v3/ticker/24hr": lambda s, f, sb: s.publicGetTicker24hr({"symbol": "BTCUSDT"}),
    "spot GET /api/v3/ticker/price": lambda s, f, sb: s.publicGetTickerPrice({"symbol": "BTCUSDT"}),
    "spot GET /api/v3/ticker/bookTicker": lambda s, f, sb: s.publicGetTickerBookTicker({"symbol": "BTCUSDT"}),
    "spot POST /api/v3/order": lambda s, f, sb: s.privatePostOrder(
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001", "newOrderRespType": "FULL"}
    ),
    "spot GET /api/v3/order": lambda s, f, sb: _then(
        s.privatePostOrder(_resting_spot(s, sb)), lambda o: s.privateGetOrder({"symbol": "BTCUSDT", "orderId": o["orderId"]})
    ),
    "spot DELETE /api/v3/order": lambda s, f, sb: _then(
        s.privatePostOrder(_resting_spot(s, sb)), lambda o: s.privateDeleteOrder({"symbol": "BTCUSDT", "orderId": o["orderId"]})
    ),
    "spot GET /api/v3/openOrders []": lambda s, f, sb: _then(
        s.privatePostOrder(_resting_spot(s, sb)), lambda o: s.privateGetOpenOrders({"symbol": "BTCUSDT"})
    ),
    "spot GET /api/v3/allOrders []": lambda s, f, sb: s.privateGetAllOrders({"symbol": "BTCUSDT"}),
    "spot GET /api/v3/account": lambda s, f, sb: s.privateGetAccount(),
    "spot GET /api/v3/myTrades []": lambda s, f, sb: s.privateGetMyTrades({"symbol": "BTCUSDT"}),
    "spot POST /api/v3/orderList/oco": lambda s, f, sb: s.privatePostOrderListOco(_oco(sb)),
    "spot GET /api/v3/orderList": lambda s, f, sb: _then(
        s.privatePostOrderListOco(_oco(sb)), lambda o: s.privateGetOrderList({"orderListId": o["orderListId"]})
    ),
    "spot DELETE /api/v3/orderList": lambda s, f, sb: _then(
        s.privatePostOrderListOco(_oco(sb)), lambda o: s.privateDeleteOrderList({"symbol": "BTCUSDT", "orderListId": o["orderListId"]})
    ),
    "spot GET /api/v3/openOrderList []": lambda s, f, sb: _then(s.privatePostOrderListOco(_oco(sb)), lambda o: s.privateGetOpenOrderList()),
    "usdm GET /fapi/v1/exchangeInfo symbols[]": lambda s, f, sb: _first(f.fapiPublicGetExchangeInfo(), "symbols"),
    "usdm GET /fapi/v1/depth": lambda s, f, sb: f.fapiPublicGetDepth({"symbol": "BTCUSDT", "limit": 5}),
    "usdm GET /fapi/v1/trades []": lambda s, f, sb: f.fapiPublicGetTrades({"symbol": "BTCUSDT", "limit": 3}),
    "usdm GET /fapi/v1/aggTrades []": lambda s, f, sb: f.fapiPublicGetAggTrades({"symbol": "BTCUSDT", "limit": 3}),
    "usdm GET /fapi/v1/premiumIndex": lambda s, f, sb: f.fapiPublicGetPremiumIndex({"symbol": "BTCUSDT"}),
    "usdm GET /fapi/v1/fundingRate []": lambda s, f, sb: f.fapiPublicGetFundingRate({"symbol": "BTCUSDT", "limit": 3}),
    "usdm GET /fapi/v1/ticker/24hr": lambda s, f, sb: f.fapiPublicGetTicker24hr({"symbol": "BTCUSDT"}),
    "usdm GET /fapi/v1/ticker/price": lambda s, f, sb: f.fapiPublicGetTickerPrice({"symbol": "BTCUSDT"}),
    "usdm GET /fapi/v1/ticker/bookTicker": lambda s, f, sb: f.fapiPublicGetTickerBookTicker({"symbol": "BTCUSDT"}),
    "usdm POST /fapi/v1/order": lambda s, f, sb: _filled_futures_order(s, f, sb),
    "usdm GET /fapi/v1/order": lambda s, f, sb: _then(
        _filled_futures_order(s, f, sb), lambda o: f.fapiPrivateGetOrder({"symbol": "BTCUSDT", "orderId": o["orderId"]})
    ),
    "usdm GET /fapi/v1/openOrders []": lambda s, f, sb: _then(
        f.fapiPrivatePostOrder(
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01",
                "price": f"{bid_ask(sb, 'BTCUSDT', 'linear')[0] * 0.97:.1f}",
            }
        ),
        lambda o: f.fapiPrivateGetOpenOrders({"symbol": "BTCUSDT"}),
    ),
    "usdm GET /fapi/v1/userTrades []": lambda s, f, sb: _then(
        _filled_futures_order(s, f, sb), lambda o: f.fapiPrivateGetUserTrades({"symbol": "BTCUSDT"})
    ),
    "usdm GET /fapi/v1/income []": lambda s, f, sb: _then(_filled_futures_order(s, f, sb), lambda o: f.fapiPrivateGetIncome()),
    "usdm GET /fapi/v2/account": lambda s, f, sb: _then(_filled_futures_order(s, f, sb), lambda o: f.fapiPrivateV2GetAccount()),
    "usdm GET /fapi/v3/account": lambda s, f, sb: _then(_filled_futures_order(s, f, sb), lambda o: f.fapiPrivateV3GetAccount()),
    "usdm GET /fapi/v2/balance []": lambda s, f, sb: f.fapiPrivateV2GetBalance(),
    "usdm GET /fapi/v2/positionRisk []": lambda s, f, sb: _then(
        _filled_futures_order(s, f, sb), lambda o: f.fapiPrivateV2GetPositionRisk()
    ),
    "usdm GET /fapi/v3/positionRisk []": lambda s, f, sb: _then(
        _filled_futures_order(s, f, sb), lambda o: f.fapiPrivateV3GetPositionRisk()
    ),
    "usdm GET /fapi/v1/leverageBracket []": lambda s, f, sb: f.fapiPrivateGetLeverageBracket(),
    "usdm POST /fapi/v1/algoOrder": lambda s, f, sb: f.fapiPrivatePostAlgoOrder(_algo(sb)),
    "usdm GET /fapi/v1/algoOrder": lambda s, f, sb: _then(
        f.fapiPrivatePostAlgoOrder(_algo(sb)), lambda o: f.fapiPrivateGetAlgoOrder({"algoId": o["algoId"]})
    ),
    "usdm GET /fapi/v1/symbolConfig []": lambda s, f, sb: f.fapiPrivateGetSymbolConfig({"symbol": "BTCUSDT"}),
    "usdm GET /fapi/v1/accountConfig": lambda s, f, sb: f.fapiPrivateGetAccountConfig(),
}


def _oco(sandbox: SandboxServer) -> dict[str, str]:
    bid, ask = bid_ask(sandbox, "BTCUSDT")
    return {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "0.001",
        "aboveType": "LIMIT_MAKER",
        "abovePrice": f"{ask * 1.02:.2f}",
        "belowType": "STOP_LOSS_LIMIT",
        "belowStopPrice": f"{bid * 0.98:.2f}",
        "belowPrice": f"{bid * 0.97:.2f}",
        "belowTimeInForce": "GTC",
    }


def _algo(sandbox: SandboxServer) -> dict[str, str]:
    bid, _ = bid_ask(sandbox, "BTCUSDT", "linear")
    return {
        "algoType": "CONDITIONAL",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "STOP_MARKET",
        "quantity": "0.01",
        "triggerPrice": f"{bid * 0.9:.1f}",
    }


async def _first(call: Awaitable[Any], key: str) -> object:
    return (await call)[key][0]


async def _then(call: Awaitable[Any], after: Callable[[Any], Awaitable[Any]]) -> object:
    return await after(await call)


def test_every_recorded_endpoint_is_asked() -> None:
    assert set(ASK) == {k for k in SHAPES if not k.startswith(("_", "ws "))}


@pytest.mark.parametrize("endpoint", sorted(k for k in SHAPES if not k.startswith(("_", "ws "))))
async def test_answer_has_binance_shape(sandbox: SandboxServer, account: Account, endpoint: str) -> None:
    spot = make_client(sandbox, account)
    fut = make_client(sandbox, account, options={"defaultType": "swap"})
    try:
        answer = await ASK[endpoint](spot, fut, sandbox)
        problems: list[str] = []
        expected = SHAPES[endpoint]["fields"]
        for row in (answer if isinstance(answer, list) else [answer])[:3]:
            compare(expected, row, endpoint.split(" ", 2)[2], problems, NOT_SENT.get(endpoint, {}), ALSO_SENT.get(endpoint, {}))
        assert not problems, f"{endpoint} differs from {SHAPES[endpoint]['model']}:\n" + "\n".join(sorted(set(problems)))
    finally:
        await spot.close()
        await fut.close()


# events compared where they can be caused: a MARGIN_CALL needs a position brought close to its liquidation
ELSEWHERE = {"ws usdm MARGIN_CALL": "tests/test_sandbox_margin.py::test_margin_call_warns_before_the_liquidation"}
STREAM_KEY = [
    ("@trade", "<symbol>@trade"),
    ("@aggTrade", "<symbol>@aggTrade"),
    ("@kline_", "<symbol>@kline_<interval>"),
    ("@bookTicker", "<symbol>@bookTicker"),
    ("@miniTicker", "<symbol>@miniTicker"),
    ("@ticker", "<symbol>@ticker"),
    ("@depth5", "<symbol>@depth<levels>"),
    ("@depth", "<symbol>@depth"),
    ("@markPrice", "<symbol>@markPrice"),
]
USER_EVENT_TYPE = {"e": "the event type: every user-data event names itself (the SDK keeps it as the union's discriminator)"}


async def _collect_streams(http: Any, url: str, names: list[str]) -> dict[str, object]:
    """The first message of each stream of a combined connection, by stream name."""
    import asyncio

    import aiohttp

    seen: dict[str, object] = {}
    async with http.ws_connect(f"{url}?streams={'/'.join(names)}") as ws:
        async with asyncio.timeout(10):
            while len(seen) < len(names):
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT
                envelope = json.loads(msg.data)
                seen.setdefault(envelope["stream"], envelope["data"])
    return seen


async def test_stream_events_have_binance_shapes(sandbox: SandboxServer, account: Account) -> None:
    import asyncio
    import hashlib
    import hmac
    import time

    import aiohttp

    from planar_core.sandbox import Faults

    answers: dict[str, object] = {}
    async with aiohttp.ClientSession() as http:
        spot_names = [
            "btcusdt@trade",
            "btcusdt@aggTrade",
            "btcusdt@kline_1s",
            "btcusdt@bookTicker",
            "btcusdt@miniTicker",
            "btcusdt@ticker",
            "btcusdt@depth",
            "btcusdt@depth5",
        ]
        fut_names = [
            "btcusdt@aggTrade",
            "btcusdt@kline_1m",  # USDⓈ-M has no 1 s klines
            "btcusdt@bookTicker",
            "btcusdt@miniTicker",
            "btcusdt@ticker",
            "btcusdt@depth",
            "btcusdt@depth5",
            "btcusdt@markPrice",
        ]
        for kind, url, names in (("spot", f"{sandbox.ws_url}/stream", spot_names), ("usdm", f"{sandbox.ws_url}/fstream/stream", fut_names)):
            for name, data in (await _collect_streams(http, url, names)).items():
                key = next(k for marker, k in STREAM_KEY if marker in name)
                answers[f"ws {kind} {key}"] = data
        spot, fut = make_client(sandbox, account), make_client(sandbox, account, options={"defaultType": "swap"})
        try:
            async with http.ws_connect(f"{sandbox.ws_url}/ws-api/v3") as ws:  # spot user data through the WebSocket API
                params: dict[str, object] = {"apiKey": account.api_key, "timestamp": int(time.time() * 1000)}
                payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
                params["signature"] = hmac.new(account.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
                await ws.send_json({"id": 1, "method": "userDataStream.subscribe.signature", "params": params})
                await ws.receive()
                await spot.privatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"})
                await spot.privatePostOrderListOco(_oco(sandbox))
                await asyncio.sleep(0)
                async with asyncio.timeout(10):
                    while "ws spot listStatus" not in answers:
                        event = json.loads((await ws.receive()).data).get("event")
                        if event:
                            answers.setdefault(f"ws spot {event['e']}", event)
                await ws.send_json({"id": 2, "method": "userDataStream.unsubscribe"})
                async with asyncio.timeout(10):
                    while "ws spot eventStreamTerminated" not in answers:
                        event = json.loads((await ws.receive()).data).get("event")
                        if event:
                            answers.setdefault(f"ws spot {event['e']}", event)
            key = (await fut.fapiPrivatePostListenKey())["listenKey"]
            async with http.ws_connect(f"{sandbox.ws_url}/fstream/ws/{key}") as ws:
                await fut.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
                bid, _ = bid_ask(sandbox, "BTCUSDT", "linear")
                await fut.fapiPrivatePostAlgoOrder(
                    {
                        "algoType": "CONDITIONAL",
                        "symbol": "BTCUSDT",
                        "side": "SELL",
                        "type": "STOP_MARKET",
                        "quantity": "0.01",
                        "triggerPrice": f"{bid * 0.9:.1f}",
                    }
                )
                sandbox.ex.faults = Faults(listen_key_ttl_s=0.5)
                async with asyncio.timeout(10):
                    while "ws usdm listenKeyExpired" not in answers:
                        msg = await ws.receive()
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        event = json.loads(msg.data)
                        answers.setdefault(f"ws usdm {event['e']}", event)
        finally:
            await spot.close()
            await fut.close()
    expected_keys = {k for k in SHAPES if k.startswith("ws ") and k not in ELSEWHERE}
    assert expected_keys <= set(answers), f"no message seen for {sorted(expected_keys - set(answers))}"
    problems: list[str] = []
    for key in sorted(expected_keys):
        also = (
            USER_EVENT_TYPE
            if key.split(" ")[2][0].isupper() or key.endswith(("executionReport", "Position", "Terminated", "Expired", "listStatus"))
            else {}
        )
        compare(SHAPES[key]["fields"], answers[key], key, problems, NOT_SENT.get(key, {}), also)
    assert not problems, "\n".join(problems)
