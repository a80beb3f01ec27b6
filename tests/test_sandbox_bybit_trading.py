"""The Bybit dialect's order management beyond create/cancel, driven by unmodified ccxt.pro bybit: amend
(``edit_order``), conditional and TP/SL orders, position TP/SL and margin modes, Disconnected Cancel All, funding
rows. One sandbox and one account per module (module-scoped fixtures); accounts of their own where a test changes
account-wide settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from ccxt.base.errors import BadRequest, InvalidOrder, OrderNotFound

from planar_core.sandbox import SandboxExchange
from planar_core.sandbox.accounts import Account
from planar_core.sandbox.bybit import BybitServer
from planar_core.sandbox.bybit.limits import BybitLimits

from .conftest import make_bybit_client

pytestmark = pytest.mark.asyncio(loop_scope="module")
SPOT, SWAP = "BTC/USDT", "BTC/USDT:USDT"
BALANCES = {"USDT": Decimal(100_000), "BTC": Decimal(2), "ETH": Decimal(20)}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bybit() -> AsyncIterator[BybitServer]:
    ex = SandboxExchange(seed=11)
    async with BybitServer(ex) as server:
        server.bybit_limiter.limits = BybitLimits(scale=100)
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trader(bybit: BybitServer) -> Account:
    return bybit.ex.add_account(dict(BALANCES))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(bybit: BybitServer, trader: Account) -> AsyncIterator[Any]:
    c = make_bybit_client(bybit, trader)
    await c.load_markets()
    try:
        yield c
    finally:
        await c.close()


async def last(c: Any, symbol: str) -> float:
    return float((await c.fetch_ticker(symbol))["last"])


def px(c: Any, symbol: str, value: float) -> float:
    return float(c.price_to_precision(symbol, value))


async def raw(server: BybitServer, method: str, path: str, params: dict[str, Any], acct: Account) -> dict[str, Any]:
    """One request signed as Bybit documents it; the answer's body."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    body = json.dumps(params) if method == "POST" else ""
    ts, window = str(int(time.time() * 1000)), "5000"
    payload = ts + acct.api_key + window + (body if method == "POST" else query)
    sign = hmac.new(acct.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-BAPI-API-KEY": acct.api_key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": window,
        "X-BAPI-SIGN": sign,
    }
    url = server.url + path + (f"?{query}" if method == "GET" and query else "")
    async with aiohttp.ClientSession() as http, http.request(method, url, data=body or None, headers=headers) as r:
        return json.loads(await r.text())  # type: ignore[no-any-return]


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``check()`` to hold (polled every 20 ms), failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# ----------------------------------------------------------------- amend (edit_order)
async def test_amend_price_and_qty_by_id_and_link_id(client: Any, trader: Account) -> None:
    swap = await last(client, SWAP)
    o = await client.create_order(SWAP, "limit", "buy", 0.002, px(client, SWAP, swap * 0.985), {"clientOrderId": "amend-1"})
    edited = await client.edit_order(o["id"], SWAP, "limit", "buy", 0.003, px(client, SWAP, swap * 0.98))
    assert edited["id"] == o["id"]
    got = await client.fetch_open_order(o["id"], SWAP)
    assert (got["amount"], got["price"], got["clientOrderId"]) == (0.003, px(client, SWAP, swap * 0.98), "amend-1")
    await client.edit_order(None, SWAP, "limit", "buy", None, px(client, SWAP, swap * 0.975), {"clientOrderId": "amend-1"})
    assert (await client.fetch_open_order(o["id"], SWAP))["price"] == px(client, SWAP, swap * 0.975)
    spot = await last(client, SPOT)
    s = await client.create_order(SPOT, "limit", "buy", 0.01, px(client, SPOT, spot * 0.8))
    usdt_locked = trader.spot["USDT"][1]
    await client.edit_order(s["id"], SPOT, "limit", "buy", 0.02, None)
    assert (await client.fetch_open_order(s["id"], SPOT))["amount"] == 0.02
    assert trader.spot["USDT"][1] == pytest.approx(usdt_locked * 2)  # the spot lock follows the new quantity
    await client.cancel_order(s["id"], SPOT)
    await client.cancel_order(o["id"], SWAP)


async def test_amend_that_crosses_the_book_trades(client: Any) -> None:
    spot = await last(client, SPOT)
    o = await client.create_order(SPOT, "limit", "sell", 0.001, px(client, SPOT, spot * 1.2))
    await client.edit_order(o["id"], SPOT, "limit", "sell", None, px(client, SPOT, spot * 0.99))
    done = await client.fetch_order(o["id"], SPOT, {"acknowledged": True})
    assert (done["status"], done["filled"]) == ("closed", 0.001)


async def test_amend_refusals(client: Any) -> None:
    with pytest.raises(OrderNotFound, match="110001"):
        await client.edit_order("12345", SWAP, "limit", "buy", 0.002, 100.0)
    with pytest.raises(OrderNotFound, match="170213"):
        await client.edit_order("12345", SPOT, "limit", "buy", 0.002, 100.0)
    swap = await last(client, SWAP)
    price = px(client, SWAP, swap * 0.985)
    o = await client.create_order(SWAP, "limit", "buy", 0.002, price)
    with pytest.raises(BadRequest, match=r"10001.*remains unchanged"):  # Bybit: nothing to change
        await client.edit_order(o["id"], SWAP, "limit", "buy", 0.002, price)
    with pytest.raises(InvalidOrder, match="110003"):  # out of the price band
        await client.edit_order(o["id"], SWAP, "limit", "buy", None, px(client, SWAP, swap * 1.5))
    await client.cancel_order(o["id"], SWAP)
    with pytest.raises(OrderNotFound, match="110001"):  # no longer open
        await client.edit_order(o["id"], SWAP, "limit", "buy", None, px(client, SWAP, swap * 0.98))


# ----------------------------------------------------------------- conditional orders and TP/SL
class Shock:
    """Move one market's price path by a factor and let the matcher see it at once (reset on exit)."""

    def __init__(self, server: BybitServer, kind: str, factor: float) -> None:
        self.m, self.factor, self.ex = server.ex.markets[(kind, "BTCUSDT")], factor, server.ex

    def __enter__(self) -> None:
        self.m.shock = self.factor
        self.ex.match_resting()

    def __exit__(self, *exc: object) -> None:
        self.m.shock = 1.0


async def test_linear_conditional_orders(client: Any, bybit: BybitServer) -> None:
    swap = await last(client, SWAP)
    up = await client.create_order(
        SWAP, "market", "buy", 0.001, None, {"triggerPrice": px(client, SWAP, swap * 1.01), "triggerDirection": "ascending"}
    )
    waiting = {o["id"]: o for o in await client.fetch_open_orders(SWAP)}
    assert waiting[up["id"]]["info"]["orderStatus"] == "Untriggered" and waiting[up["id"]]["info"]["stopOrderType"] == "Stop"
    assert waiting[up["id"]]["triggerPrice"] == px(client, SWAP, swap * 1.01)
    assert up["id"] in [o["id"] for o in await client.fetch_open_orders(SWAP, None, None, {"trigger": True})]
    assert up["id"] not in [o["id"] for o in await client.fetch_open_orders(SWAP, None, None, {"orderFilter": "Order"})]
    down = await client.create_order(
        SWAP,
        "limit",
        "sell",
        0.001,
        px(client, SWAP, swap * 0.985),
        {"triggerPrice": px(client, SWAP, swap * 0.99), "triggerDirection": "descending", "reduceOnly": True, "closeOnTrigger": True},
    )
    row = (await client.fetch_open_order(down["id"], SWAP))["info"]
    assert (row["reduceOnly"], row["closeOnTrigger"], row["triggerDirection"]) == (True, True, 2)
    await client.cancel_order(down["id"], SWAP)
    assert (await client.fetch_order(down["id"], SWAP, {"acknowledged": True}))["info"]["orderStatus"] == "Deactivated"
    with Shock(bybit, "linear", 1.02):
        done = await client.fetch_order(up["id"], SWAP, {"acknowledged": True})
    assert (done["id"], done["status"], done["filled"], done["info"]["stopOrderType"]) == (up["id"], "closed", 0.001, "Stop")
    assert up["id"] in [t["order"] for t in await client.fetch_my_trades(SWAP)]  # its fills go by its own id
    with pytest.raises(InvalidOrder, match="110092"):  # Bybit: a rising trigger must be above the price
        await client.create_order(
            SWAP, "market", "buy", 0.001, None, {"triggerPrice": px(client, SWAP, swap * 0.9), "triggerDirection": "ascending"}
        )
    sl = await client.create_order(SWAP, "market", "sell", 0.001, None, {"stopLossPrice": px(client, SWAP, swap * 0.98)})
    got = await client.fetch_open_order(sl["id"], SWAP)
    assert (got["stopLossPrice"], got["reduceOnly"]) == (px(client, SWAP, swap * 0.98), True)
    await client.cancel_all_orders(SWAP)
    assert sl["id"] not in [o["id"] for o in await client.fetch_open_orders(SWAP)]


def trader_of(bybit: BybitServer, client: Any) -> Account:
    return bybit.ex.accounts[client.apiKey]


async def test_spot_stop_and_tpsl_orders(client: Any, bybit: BybitServer) -> None:
    spot = await last(client, SPOT)
    stop = await client.create_order(
        SPOT, "limit", "sell", 0.001, px(client, SPOT, spot * 1.05), {"triggerPrice": px(client, SPOT, spot * 1.03)}
    )
    (row,) = [o for o in await client.fetch_open_orders(SPOT, None, None, {"trigger": True}) if o["id"] == stop["id"]]
    assert (row["info"]["orderStatus"], row["info"]["stopOrderType"], row["triggerPrice"]) == (
        "Untriggered",
        "Stop",
        px(client, SPOT, spot * 1.03),
    )
    base = SPOT.split("/")[0]
    locked = lambda: trader_of(bybit, client).spot[base][1]  # noqa: E731
    assert locked() == 0  # a StopOrder holds nothing until it triggers (Bybit's orderFilter doc)
    await client.cancel_order(stop["id"], SPOT, {"trigger": True})
    assert (await client.fetch_order(stop["id"], SPOT, {"acknowledged": True}))["info"]["orderStatus"] == "Deactivated"
    tpsl = await client.create_order(SPOT, "market", "sell", 0.001, None, {"stopLossPrice": px(client, SPOT, spot * 0.97)})
    assert locked() == Decimal("0.001")  # a tpslOrder's assets "are occupied even before the order is triggered"
    listed = await client.fetch_open_orders(SPOT, None, None, {"orderFilter": "tpslOrder"})
    assert [o["info"]["stopOrderType"] for o in listed if o["id"] == tpsl["id"]] == ["tpslOrder"]
    with Shock(bybit, "spot", 0.96):
        done = await client.fetch_order(tpsl["id"], SPOT, {"acknowledged": True})
    assert (done["status"], done["filled"]) == ("closed", 0.001)


async def test_take_profit_and_stop_loss_attached_to_a_linear_order(bybit: BybitServer) -> None:
    """Bybit sets an order's ``takeProfit``/``stopLoss`` on the position when it fills; the TP that fires closes the
    position and the SL goes with it."""
    acct = bybit.ex.add_account({"USDT": Decimal(10_000)})
    c = make_bybit_client(bybit, acct)
    try:
        await c.load_markets()
        swap = await last(c, SWAP)
        tp, sl = px(c, SWAP, swap * 1.03), px(c, SWAP, swap * 0.97)
        await c.create_order(SWAP, "market", "buy", 0.002, None, {"takeProfit": {"triggerPrice": tp}, "stopLoss": {"triggerPrice": sl}})
        (pos,) = await c.fetch_positions([SWAP])
        assert (float(pos["info"]["takeProfit"]), float(pos["info"]["stopLoss"])) == (tp, sl)
        kinds = sorted(o["info"]["stopOrderType"] for o in await c.fetch_open_orders(SWAP, None, None, {"trigger": True}))
        assert kinds == ["StopLoss", "TakeProfit"]
        with Shock(bybit, "linear", 1.04):
            await until(lambda: not any(p.amount for p in acct.positions.values()))
        assert not await c.fetch_open_orders(SWAP)  # the stop-loss went with the position
    finally:
        await c.close()


# ----------------------------------------------------------------- position TP/SL and margin modes
async def test_position_trading_stop_and_margin_mode(bybit: BybitServer) -> None:
    """``/v5/position/trading-stop`` (ccxt's ``stopLossPrice`` + ``takeProfitPrice`` together), its "not modified";
    ``set_margin_mode`` for the unified account (``/v5/account/set-margin-mode``); ``switch-isolated`` refused as
    for a unified account."""
    acct = bybit.ex.add_account({"USDT": Decimal(10_000)})
    c = make_bybit_client(bybit, acct)
    try:
        await c.load_markets()
        swap = await last(c, SWAP)
        with pytest.raises(BadRequest, match="zero position"):
            await c.private_post_v5_position_trading_stop(
                {"category": "linear", "symbol": "BTCUSDT", "takeProfit": str(px(c, SWAP, swap * 1.1))}
            )
        await c.set_margin_mode("isolated")
        await c.set_margin_mode("isolated")  # already so: accepted
        assert (await c.private_get_v5_account_info())["result"]["marginMode"] == "ISOLATED_MARGIN"
        await c.create_order(SWAP, "market", "buy", 0.002)
        (pos,) = await c.fetch_positions([SWAP])
        assert pos["marginMode"] in ("isolated", None) and pos["info"]["tradeMode"] == 1
        with pytest.raises(Exception, match="3400045"):  # a position is open
            await c.set_margin_mode("cross")
        tp, sl = px(c, SWAP, swap * 1.05), px(c, SWAP, swap * 0.95)
        await c.create_order(SWAP, "market", "sell", 0, None, {"takeProfitPrice": tp, "stopLossPrice": sl})  # trading-stop, Full
        (pos,) = await c.fetch_positions([SWAP])
        assert (float(pos["info"]["takeProfit"]), float(pos["info"]["stopLoss"])) == (tp, sl)
        with pytest.raises(BadRequest, match="not modified"):
            await c.private_post_v5_position_trading_stop(
                {"category": "linear", "symbol": "BTCUSDT", "takeProfit": str(tp), "tpslMode": "Full"}
            )
        await c.private_post_v5_position_trading_stop({"category": "linear", "symbol": "BTCUSDT", "stopLoss": "0"})
        (pos,) = await c.fetch_positions([SWAP])
        assert (float(pos["info"]["takeProfit"]), pos["info"]["stopLoss"]) == (tp, "0")
        with pytest.raises(Exception, match="100028"):
            await c.private_post_v5_position_switch_isolated(
                {"category": "linear", "symbol": "BTCUSDT", "tradeMode": 0, "buyLeverage": "10", "sellLeverage": "10"}
            )
    finally:
        await c.close()


# ----------------------------------------------------------------- Disconnected Cancel All (DCP)
async def private_ws(http: aiohttp.ClientSession, server: BybitServer, acct: Account, topics: list[str]) -> Any:
    """A raw ``/v5/private`` connection, authenticated as Bybit documents it and subscribed to ``topics``."""
    ws = await http.ws_connect(server.ws_url + "/v5/private")
    expires = str(int(time.time() * 1000) + 10_000)
    sign = hmac.new(acct.api_secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    await ws.send_json({"op": "auth", "args": [acct.api_key, expires, sign]})
    assert json.loads((await ws.receive(timeout=5)).data)["success"] is True
    await ws.send_json({"op": "subscribe", "req_id": "dcp", "args": topics})
    ack = json.loads((await ws.receive(timeout=5)).data)
    assert (ack["op"], ack["success"]) == ("subscribe", True), ack
    return ws


async def order_events(ws: Any, want: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The next ``want`` rows of the ``order`` topic on ``ws`` (other topics skipped)."""
    rows: list[dict[str, Any]] = []
    while len(rows) < want:
        msg = json.loads((await ws.receive(timeout=timeout)).data)
        if msg.get("topic") == "order":
            rows.extend(msg["data"])
    return rows


def open_ids(acct: Account, kind: str) -> set[str]:
    return {str(o.order_id) for o in acct.orders.values() if o.kind == kind and o.is_open}


async def close(ws: Any, server: BybitServer, acct: Account, product: str, guarded_after: bool = False) -> None:
    """Close ``ws`` and wait until the exchange has seen it go (the client's close can return first)."""
    await ws.close()
    await until(lambda: ((acct.api_key, product) in server.dcp.guarded) == guarded_after, 2.0)


async def later(server: BybitServer, ms: int) -> None:
    """Move the exchange's clock ``ms`` further ahead (the ``clock_offset_ms`` fault: Bybit's smallest window is 3 s,
    which the test does not wait out) and wait until the DCP timers have been checked at the new time."""
    server.ex.faults.clock_offset_ms += ms
    target = server.ex.now_ms()
    await until(lambda: server.dcp.checked_ms >= target, 2.0)


async def test_cancel_all_orders_after_sets_the_dcp_window(bybit: BybitServer) -> None:
    """ccxt's ``cancel_all_orders_after`` (POST /v5/order/disconnected-cancel-all, ms -> s, DERIVATIVES by default)
    answers Bybit's ``{"retCode": 0, "retMsg": "success"}``; query-dcp-info lists what was set; refusals are 10001."""
    acct = bybit.ex.add_account(dict(BALANCES))
    c = make_bybit_client(bybit, acct)
    try:
        await c.load_markets()
        assert (await c.private_get_v5_account_query_dcp_info())["result"] == {"dcpInfos": []}  # nothing configured
        assert await c.cancel_all_orders_after(10_000) == {"retCode": 0, "retMsg": "success"}
        assert await c.cancel_all_orders_after(3_000, {"type": "spot"}) == {"retCode": 0, "retMsg": "success"}
        assert (await raw(bybit, "POST", "/v5/order/disconnected-cancel-all", {"timeWindow": 300}, acct))["retCode"] == 0  # OPTIONS
        await c.cancel_all_orders_after(40_000)  # set again: the new window replaces the old
        info = await c.private_get_v5_account_query_dcp_info()
        assert (info["retCode"], info["retMsg"]) == (0, "success")
        assert info["result"]["dcpInfos"] == [
            {"product": "SPOT", "dcpStatus": "ON", "timeWindow": "3"},
            {"product": "DERIVATIVES", "dcpStatus": "ON", "timeWindow": "40"},
            {"product": "OPTIONS", "dcpStatus": "ON", "timeWindow": "300"},
        ]
        for ms in (2_000, 301_000):  # Bybit's range is [3, 300] seconds
            with pytest.raises(BadRequest):
                await c.cancel_all_orders_after(ms)
        for bad in ({"product": "SPOT"}, {"timeWindow": "ten"}, {"timeWindow": 10, "product": "FUTURES"}, {"timeWindow": 0}):
            answer = await raw(bybit, "POST", "/v5/order/disconnected-cancel-all", bad, acct)
            assert answer["retCode"] == 10001, (bad, answer)
        assert (await c.private_get_v5_account_query_dcp_info())["result"]["dcpInfos"][1]["timeWindow"] == "40"  # unchanged
    finally:
        await c.close()


async def test_dcp_cancels_the_products_orders_once_its_dcp_connections_are_gone(bybit: BybitServer) -> None:
    """SPOT configured (3 s), DERIVATIVES not: when the only connection subscribed to ``dcp.spot`` closes and the
    window passes, the account's open spot orders are cancelled (``CancelByDCP`` on another connection's ``order``
    topic and in the order history); its linear order stays."""
    acct = bybit.ex.add_account(dict(BALANCES))
    c = make_bybit_client(bybit, acct)
    try:
        await c.load_markets()
        await c.cancel_all_orders_after(3_000, {"type": "spot"})
        spot, swap = await last(c, SPOT), await last(c, SWAP)
        async with aiohttp.ClientSession() as http:
            watcher = await private_ws(http, bybit, acct, ["order"])
            guard = await private_ws(http, bybit, acct, ["dcp.spot", "dcp.future"])
            a = await c.create_order(SPOT, "limit", "buy", 0.001, px(c, SPOT, spot * 0.9))
            b = await c.create_order(SPOT, "limit", "buy", 0.001, px(c, SPOT, spot * 0.91), {"clientOrderId": "dcp-b"})
            keep = await c.create_order(SWAP, "limit", "buy", 0.002, px(c, SWAP, swap * 0.98))
            assert len(await order_events(watcher, 3)) == 3  # the three New rows
            await close(guard, bybit, acct, "SPOT")
            assert open_ids(acct, "spot") == {a["id"], b["id"]}  # not yet: the window runs from the disconnection
            try:
                await later(bybit, 3_100)
                await until(lambda: not open_ids(acct, "spot"), 2.0)
                rows = await order_events(watcher, 2)
            finally:
                bybit.ex.faults.clock_offset_ms = 0
            assert {(r["orderId"], r["orderStatus"], r["cancelType"]) for r in rows} == {
                (a["id"], "Cancelled", "CancelByDCP"),
                (b["id"], "Cancelled", "CancelByDCP"),
            }
            await watcher.close()
        assert open_ids(acct, "linear") == {keep["id"]}  # DERIVATIVES is not configured
        history = await raw(bybit, "GET", "/v5/order/history", {"category": "spot", "symbol": "BTCUSDT"}, acct)
        assert {(r["orderLinkId"], r["cancelType"]) for r in history["result"]["list"] if r["orderId"] == b["id"]} == {
            ("dcp-b", "CancelByDCP")
        }
        assert (await c.fetch_open_order(keep["id"], SWAP))["status"] == "open"
    finally:
        await c.close()


async def test_dcp_keeps_the_orders_while_a_dcp_connection_lives_or_comes_back_in_time(bybit: BybitServer) -> None:
    """Bybit's cases: one of two ``dcp.future`` connections gone (another alive, and one without ``dcp``): nothing;
    the last gone and a new one subscribed within the window: nothing; that one unsubscribed past the window: the
    open order and the waiting conditional order are cancelled (``Deactivated``, ``CancelByDCP``)."""
    acct = bybit.ex.add_account(dict(BALANCES))
    c = make_bybit_client(bybit, acct)
    try:
        await c.load_markets()
        await c.cancel_all_orders_after(3_000)  # DERIVATIVES
        swap = await last(c, SWAP)
        o = await c.create_order(SWAP, "limit", "buy", 0.002, px(c, SWAP, swap * 0.98))
        stop = await c.create_order(
            SWAP, "market", "buy", 0.001, None, {"triggerPrice": px(c, SWAP, swap * 1.01), "triggerDirection": "ascending"}
        )
        async with aiohttp.ClientSession() as http:
            other = await private_ws(http, bybit, acct, ["order"])  # alive, but not subscribed to dcp
            first = await private_ws(http, bybit, acct, ["dcp.future"])
            second = await private_ws(http, bybit, acct, ["dcp.future"])
            try:
                await close(first, bybit, acct, "DERIVATIVES", guarded_after=True)
                await later(bybit, 3_100)
                assert open_ids(acct, "linear") == {o["id"]}  # the second one lives
                bybit.ex.faults.clock_offset_ms = 0
                await close(second, bybit, acct, "DERIVATIVES")  # the last one: the window starts
                back = await private_ws(http, bybit, acct, ["dcp.future"])  # ... and a reconnection within it stops it
                await later(bybit, 3_100)
                assert open_ids(acct, "linear") == {o["id"]}
                await back.send_json({"op": "unsubscribe", "args": ["dcp.future"]})  # as good as gone: a new window
                await until(lambda: (acct.api_key, "DERIVATIVES") not in bybit.dcp.guarded, 2.0)
                await later(bybit, 3_100)
                await until(lambda: not open_ids(acct, "linear"), 2.0)
            finally:
                bybit.ex.faults.clock_offset_ms = 0
            rows = await order_events(other, 2)
            assert {(r["orderId"], r["orderStatus"], r["cancelType"]) for r in rows} == {
                (o["id"], "Cancelled", "CancelByDCP"),
                (stop["id"], "Deactivated", "CancelByDCP"),
            }
            await back.close()
            await other.close()
        assert (await c.fetch_order(stop["id"], SWAP, {"acknowledged": True}))["info"]["cancelType"] == "CancelByDCP"
    finally:
        await c.close()


async def test_the_position_listing_comes_a_page_at_a_time(bybit: BybitServer) -> None:
    """``/v5/position/list`` by settle coin answers ``limit`` rows (Bybit: 1-200, 20 unless asked) and a cursor to
    the next page ("" on the last), as its order listings do: a client that reads one page misses the rest."""
    acct = bybit.ex.add_account({"USDT": Decimal(10_000)})
    c = make_bybit_client(bybit, acct)
    try:
        await c.load_markets()
        perps = ["BTC/USDT:USDT", "ETH/USDT:USDT", "XRP/USDT:USDT"]
        for symbol in perps:
            await c.create_order(symbol, "market", "buy", float(c.amount_to_precision(symbol, 150 / await last(c, symbol))))
        query = {"category": "linear", "settleCoin": "USDT"}
        assert len((await c.private_get_v5_position_list(query))["result"]["list"]) == 3  # under the default 20
        seen, cursor = [], ""
        for _ in range(3):
            page = (await c.private_get_v5_position_list({**query, "limit": "2", **({"cursor": cursor} if cursor else {})}))["result"]
            seen += [row["symbol"] for row in page["list"]]
            cursor = page["nextPageCursor"]
            if not cursor:
                break
        assert sorted(seen) == ["BTCUSDT", "ETHUSDT", "XRPUSDT"] and len(page["list"]) == 1
        assert len(await c.fetch_positions(None, {"limit": 1})) == 1  # unmodified ccxt reads the page it is given
    finally:
        await c.close()
