"""The user data streams as Binance documents them (spot user-data-stream.md; USDⓈ-M "Event: Order Update", "Event:
Balance and Position Update", "Event: Algo Order Update"), read off the raw websocket of a listen key while raw
signed requests act: an outside audit found these fields and events missing or wrong on 2026-12-07."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from planar_core.sandbox.accounts import Account
from planar_core.sandbox.server import SandboxServer

from .conftest import wait_for
from .test_sandbox_binance_rules import limit, order, sell_list, signed

Message = dict[str, Any]


class UserStream:
    """Every message of one listen key's stream, in order (``data`` of the envelope on a combined connection)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.raw: list[Message] = []

    async def until(self, match: Callable[[Message], bool], timeout: float = 10.0) -> Message:
        """The first message (already received or to come) that ``match``es."""
        found: list[Message] = []

        def seen() -> bool:
            found[:] = [m for m in self.messages if match(m)][:1]
            return bool(found)

        await wait_for(seen, timeout)
        return found[0]


@asynccontextmanager
async def user_stream(sandbox: SandboxServer, account: Account, futures: bool = False, combined: bool = False) -> AsyncIterator[UserStream]:
    headers = {"X-MBX-APIKEY": account.api_key}
    path = "/fapi/v1/listenKey" if futures else "/api/v3/userDataStream"
    stream = UserStream()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sandbox.url}{path}", headers=headers) as r:
            key = (await r.json())["listenKey"]
        url = (
            f"{sandbox.ws_url}/fstream/ws/{key}"
            if futures
            else f"{sandbox.ws_url}/stream?streams={key}"
            if combined
            else f"{sandbox.ws_url}/ws/{key}"
        )
        async with http.ws_connect(url) as ws:

            async def read() -> None:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    data = json.loads(msg.data)
                    stream.raw.append(data)
                    stream.messages.append(data["data"] if combined and "data" in data else data)

            task = asyncio.create_task(read())
            await wait_for(lambda: any(c.listen_key == key for c in sandbox.hub.conns))
            stream.key = key  # type: ignore[attr-defined]
            try:
                yield stream
            finally:
                task.cancel()


def report_of(cid: str, x: str) -> Callable[[Message], bool]:
    return lambda m: m.get("e") == "executionReport" and x == m["x"] and cid in (m["c"], m["C"])


def oco(sandbox: SandboxServer, list_id: str) -> dict[str, Any]:
    return {**sell_list(sandbox), "listClientOrderId": list_id}


# ------------------------------------------------------------------ spot


async def test_cancelling_an_order_list_ends_both_legs_and_the_list(sandbox: SandboxServer, account: Account) -> None:
    """DELETE /api/v3/orderList cancels the whole list: both legs CANCELED on the stream, a listStatus ALL_DONE, the
    lock released. It cancelled one leg: the other stayed open (REST and stream), the list EXECUTING, 0.001 BTC locked."""
    async with user_stream(sandbox, account) as us:
        status, placed = await signed(sandbox, account, "POST", "/api/v3/orderList/oco", oco(sandbox, "oco-1"))
        assert status == 200, placed
        await us.until(lambda m: m.get("e") == "outboundAccountPosition" and any(b["a"] == "BTC" and float(b["l"]) > 0 for b in m["B"]))
        status, body = await signed(sandbox, account, "DELETE", "/api/v3/orderList", {"symbol": "BTCUSDT", "listClientOrderId": "oco-1"})
        assert status == 200, body
        reports = [await us.until(report_of(leg["clientOrderId"], "CANCELED")) for leg in placed["orders"]]
        await us.until(lambda m: m.get("e") == "listStatus" and m["L"] == "ALL_DONE")
        # one request: its client id on both legs (rest-api.md's example), each leg's own id as C
        assert {r["c"] for r in reports} == {r["clientOrderId"] for r in body["orderReports"]} and len({r["c"] for r in reports}) == 1
        assert sorted(r["C"] for r in reports) == sorted(leg["clientOrderId"] for leg in placed["orders"])
    status, listed = await signed(sandbox, account, "GET", "/api/v3/orderList", {"orderListId": placed["orderListId"]})
    assert listed["listOrderStatus"] == "ALL_DONE"
    assert (await signed(sandbox, account, "GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}))[1] == []
    assert float(sandbox.ex.snapshot()["accounts"][account.api_key]["spot_balances"]["BTC"]["locked"]) == 0


async def test_placing_an_order_list_reports_the_lock_its_legs_share(sandbox: SandboxServer, account: Account) -> None:
    """outboundAccountPosition "is sent any time an account balance has changed": placing a list locks its coins.
    None came (the lock showed first in a later event)."""
    async with user_stream(sandbox, account) as us:
        await signed(sandbox, account, "POST", "/api/v3/orderList/oco", oco(sandbox, "oco-2"))
        listed = await us.until(lambda m: m.get("e") == "listStatus")
        after = us.messages[us.messages.index(listed) :]
        await us.until(lambda m: m.get("e") == "outboundAccountPosition" and m in after)
        btc = next(b for m in us.messages if m.get("e") == "outboundAccountPosition" for b in m["B"] if b["a"] == "BTC")
        assert btc["l"] == "0.00100000"


async def test_a_cancel_report_names_the_cancel_request_and_the_order(sandbox: SandboxServer, account: Account) -> None:
    """executionReport on a cancel: ``c`` is the cancel request's client id (its newClientOrderId, else the one the
    exchange made, which the REST answer's clientOrderId also gives), ``C`` the cancelled order's. ``c`` was the
    order's own id."""
    async with user_stream(sandbox, account) as us:
        await order(sandbox, account, **limit(newClientOrderId="lim-1"))
        await order(sandbox, account, **limit(newClientOrderId="lim-2"))
        status, answer = await signed(
            sandbox, account, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "lim-1", "newClientOrderId": "cxl-1"}
        )
        assert status == 200 and (answer["clientOrderId"], answer["origClientOrderId"]) == ("cxl-1", "lim-1")
        report = await us.until(report_of("lim-1", "CANCELED"))
        assert (report["c"], report["C"]) == ("cxl-1", "lim-1")
        _, answer = await signed(sandbox, account, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "lim-2"})
        report = await us.until(report_of("lim-2", "CANCELED"))
        assert (report["c"], report["C"]) == (answer["clientOrderId"], "lim-2") and report["c"] != "lim-2"


async def test_the_execution_report_s_conditional_fields(sandbox: SandboxServer, account: Account) -> None:
    """user-data-stream.md's "Conditional Fields in Execution Report": ``Q`` the quoteOrderQty sent (it was always
    zero), ``d`` for a trailing stop, ``j``/``J`` when strategyId/strategyType were sent, ``W`` only once the order
    works on the book (a waiting stop has none; it was -1), ``eR`` when it expired (with ``expiryReason`` on the REST
    order: enums.md's reasons)."""
    async with user_stream(sandbox, account) as us:
        await order(sandbox, account, symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="100", newClientOrderId="q-1")
        assert (await us.until(report_of("q-1", "TRADE")))["Q"] == "100.00000000"
        await order(
            sandbox, account, symbol="BTCUSDT", side="SELL", type="STOP_LOSS", quantity="0.001", trailingDelta="200", newClientOrderId="t-1"
        )
        trailing = await us.until(report_of("t-1", "NEW"))
        assert trailing["d"] == 200 and "W" not in trailing and trailing["w"] is False
        await order(sandbox, account, **limit(newClientOrderId="s-1", strategyId=7, strategyType=1_000_001))
        tagged = await us.until(report_of("s-1", "NEW"))
        assert (tagged["j"], tagged["J"]) == (7, 1_000_001) and tagged["W"] > 0
        assert "j" not in trailing and "eR" not in tagged
        await order(sandbox, account, **limit(newClientOrderId="ioc-1", timeInForce="IOC"))
        expired = await us.until(report_of("ioc-1", "EXPIRED"))
        assert expired["eR"] == "UNFILLED_IOC_QUANTITY_EXPIRED"
    _, got = await signed(sandbox, account, "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "ioc-1"})
    assert got["expiryReason"] == "UNFILLED_IOC_QUANTITY_EXPIRED"


async def test_a_listen_key_expiring_on_a_combined_stream_comes_in_its_envelope(sandbox: SandboxServer, account: Account) -> None:
    """web-socket-streams.md: events on a combined stream are wrapped {"stream", "data"}; listenKeyExpired came bare."""
    async with user_stream(sandbox, account, combined=True) as us:
        sandbox.hub.expire_key(us.key, notify=True)  # type: ignore[attr-defined]
        await us.until(lambda m: m.get("e") == "listenKeyExpired")
        assert us.raw[-1] == {"stream": us.key, "data": us.messages[-1]}  # type: ignore[attr-defined]


# ------------------------------------------------------------------ USDⓈ-M


async def test_a_futures_order_ending_unfilled_sends_no_account_update(sandbox: SandboxServer, account: Account) -> None:
    """ "Unfilled orders or cancelled orders will not make the event ACCOUNT_UPDATE pushed, since there's no change on
    positions." One came after every cancel and unfilled IOC: a client waiting for it would wait on Binance."""
    fut = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002"}
    below = f"{round(sandbox.ex.mid(sandbox.ex.markets[('linear', 'BTCUSDT')]) * 0.97, 1):.1f}"  # inside the 5 % band
    async with user_stream(sandbox, account, futures=True) as us:
        status, body = await signed(
            sandbox,
            account,
            "POST",
            "/fapi/v1/order",
            {**fut, "type": "LIMIT", "timeInForce": "GTC", "price": below, "newClientOrderId": "f-1"},
        )
        assert status == 200, body
        await signed(sandbox, account, "DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "f-1"})
        await signed(
            sandbox,
            account,
            "POST",
            "/fapi/v1/order",
            {**fut, "type": "LIMIT", "timeInForce": "IOC", "price": below, "newClientOrderId": "f-2"},
        )
        await signed(sandbox, account, "POST", "/fapi/v1/order", {**fut, "type": "MARKET", "newClientOrderId": "f-3"})
        await us.until(lambda m: m.get("e") == "ACCOUNT_UPDATE")  # the market order's: a position changed
        first = next(m for m in us.messages if m.get("e") == "ORDER_TRADE_UPDATE" and m["o"]["c"] == "f-3")
        before = us.messages[: us.messages.index(first)]
        ended = [(m["o"]["c"], m["o"]["X"]) for m in before if m.get("e") == "ORDER_TRADE_UPDATE" and m["o"]["X"] != "NEW"]
        assert ended == [("f-1", "CANCELED"), ("f-2", "EXPIRED")]
        assert not [m for m in before if m.get("e") == "ACCOUNT_UPDATE"]


async def test_funding_on_a_cross_position_reports_the_balance_only_and_cr_accumulates(sandbox: SandboxServer, account: Account) -> None:
    """A funding fee on a cross position: ACCOUNT_UPDATE "with only the balance B ... without any position P message"
    (it carried P and an extra ``S``). A position's ``cr`` is its accumulated pre-fee realized PnL (it was 0)."""
    async with user_stream(sandbox, account, futures=True) as us:
        await signed(
            sandbox, account, "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.004"}
        )
        await us.until(lambda m: m.get("e") == "ACCOUNT_UPDATE" and m["a"]["m"] == "ORDER")
        async with aiohttp.ClientSession() as http, http.post(f"{sandbox.url}/admin/funding", json={"symbol": "BTCUSDT"}) as r:
            assert r.status == 200, await r.text()
        funding = await us.until(lambda m: m.get("e") == "ACCOUNT_UPDATE" and m["a"]["m"] == "FUNDING_FEE")
        assert funding["a"]["P"] == [] and set(funding["a"]) == {"m", "B", "P"}
        await signed(
            sandbox, account, "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.002"}
        )
        closing = await us.until(lambda m: m.get("e") == "ORDER_TRADE_UPDATE" and m["o"]["S"] == "SELL" and m["o"]["X"] == "FILLED")
        update = await us.until(
            lambda m: m.get("e") == "ACCOUNT_UPDATE" and m["a"]["m"] == "ORDER" and m["E"] >= closing["E"] and m is not us.messages[0]
        )
        (row,) = [p for p in update["a"]["P"] if p["s"] == "BTCUSDT"]
        assert float(row["cr"]) == float(closing["o"]["rp"]) != 0


async def test_an_algo_order_is_triggered_then_finished(sandbox: SandboxServer, account: Account) -> None:
    """ALGO_UPDATE: TRIGGERED once its order is in the matching engine (with ``ai``/``aq``), FINISHED when that order
    is done. It sent FINISHED with an empty ``ai`` and ``aq`` 0 first (a client reading it as final saw nothing
    filled), FINISHED again after, and never TRIGGERED."""
    mark = sandbox.ex.mid(sandbox.ex.markets[("linear", "BTCUSDT")])
    async with user_stream(sandbox, account, futures=True) as us:
        status, body = await signed(
            sandbox,
            account,
            "POST",
            "/fapi/v1/algoOrder",
            {
                "algoType": "CONDITIONAL",
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "STOP_MARKET",
                "quantity": "0.002",
                "triggerPrice": f"{round(mark * 1.01, 1):.1f}",
                "clientAlgoId": "algo-1",
            },
        )
        assert status == 200, body
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{sandbox.url}/admin/price", json={"symbol": "BTCUSDT", "kind": "linear", "factor": 1.02}) as r,
        ):
            assert r.status == 200
        await us.until(lambda m: m.get("e") == "ALGO_UPDATE" and m["o"]["X"] == "FINISHED")
        updates = [m["o"] for m in us.messages if m.get("e") == "ALGO_UPDATE"]
        assert [u["X"] for u in updates] == ["NEW", "TRIGGERED", "FINISHED"], updates
        assert all(u["ai"] and u["aq"] == "0.002" for u in updates[1:])


async def _subscribe(ws: Any, account: Account, timestamp: int | None = None, upper: bool = False) -> dict[str, Any]:
    """``userDataStream.subscribe.signature`` (web-socket-api.md): the parameters sorted, signed with HMAC-SHA256."""
    import hashlib
    import hmac
    import time

    params: dict[str, Any] = {"apiKey": account.api_key, "timestamp": timestamp or int(time.time() * 1000)}
    sig = hmac.new(account.api_secret.encode(), "&".join(f"{k}={params[k]}" for k in sorted(params)).encode(), hashlib.sha256).hexdigest()
    await ws.send_json(
        {"id": 1, "method": "userDataStream.subscribe.signature", "params": {**params, "signature": sig.upper() if upper else sig}}
    )
    return json.loads((await asyncio.wait_for(ws.receive(), 10)).data)


async def test_the_ws_api_checks_the_timestamp_and_ends_only_the_subscription_named(sandbox: SandboxServer, account: Account) -> None:
    """web-socket-api.md: a signed request's timestamp is checked against recvWindow (an hour-old one subscribed), the
    signature is not case-sensitive, and ``userDataStream.unsubscribe`` with a ``subscriptionId`` closes that one "if it
    exists" (any id closed every subscription)."""
    import time

    other = sandbox.ex.add_account({"USDT": 1000})
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{sandbox.ws_url}/ws-api/v3") as ws:
        old = await _subscribe(ws, account, timestamp=int(time.time() * 1000) - 3_600_000)
        assert old["status"] == 400 and old["error"]["code"] == -1021
        mine = (await _subscribe(ws, account, upper=True))["result"]["subscriptionId"]
        theirs = (await _subscribe(ws, other))["result"]["subscriptionId"]
        await ws.send_json({"id": 2, "method": "userDataStream.unsubscribe", "params": {"subscriptionId": 999_999}})
        assert json.loads((await ws.receive()).data)["status"] == 200
        await ws.send_json({"id": 3, "method": "userDataStream.unsubscribe", "params": {"subscriptionId": theirs}})
        replies = [json.loads((await ws.receive()).data) for _ in range(2)]
        ended = [r["subscriptionId"] for r in replies if "event" in r]
        assert ended == [theirs]  # 999 999 closed nothing; mine stays
        assert any(c.users == {account.api_key: mine} for c in sandbox.hub.conns)
