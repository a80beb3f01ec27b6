"""Binance's market streams and stream layouts (issue 14): what ccxt.pro's watch_ticker, watch_tickers,
watch_order_book and futures watch_bids_asks wait for, and the raw / combined / listen-key layouts any other
client uses with only its URLs changed."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from planar_core.sandbox import Faults
from planar_core.sandbox.server import SandboxServer

from .conftest import make_client, wait_for


async def test_ccxt_watch_ticker_tickers_order_book_and_futures_bids_asks(client, sandbox: SandboxServer) -> None:
    t = await asyncio.wait_for(client.watch_ticker("BTC/USDT"), 10)
    assert t["symbol"] == "BTC/USDT" and t["last"] > 0
    perp = await asyncio.wait_for(client.watch_ticker("ETH/USDT:USDT"), 10)
    assert perp["symbol"] == "ETH/USDT:USDT" and perp["last"] > 0
    many = await asyncio.wait_for(client.watch_tickers(["BTC/USDT", "ETH/USDT"]), 10)
    assert set(many) <= {"BTC/USDT", "ETH/USDT"} and many
    for symbol in ("BTC/USDT", "BTC/USDT:USDT"):
        book = await asyncio.wait_for(client.watch_order_book(symbol), 10)
        assert book["bids"][0][0] < book["asks"][0][0]
    ba = await asyncio.wait_for(client.watch_bids_asks(["BTC/USDT:USDT"]), 10)
    assert ba["BTC/USDT:USDT"]["ask"] > ba["BTC/USDT:USDT"]["bid"]


async def test_the_diff_depth_stream_applied_to_the_snapshot_is_the_book(sandbox: SandboxServer) -> None:
    """Binance's documented procedure: buffer the diffs, take the REST snapshot, drop diffs with u <= lastUpdateId,
    apply the rest in order (each U = previous u + 1). After a price move, the result equals a new snapshot."""
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{sandbox.ws_url}/ws/btcusdt@depth@100ms") as ws:
        first = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        async with http.get(f"{sandbox.url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 1000}) as r:
            snap = await r.json()
        book = {"b": {p: q for p, q in snap["bids"]}, "a": {p: q for p, q in snap["asks"]}}
        last = snap["lastUpdateId"]
        assert first["e"] == "depthUpdate" and first["u"] <= last
        sandbox.ex.markets[("spot", "BTCUSDT")].shock = 0.97
        sandbox.hub.publish_now()
        while True:
            ev = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            if ev["u"] <= last:
                continue
            assert ev["U"] == last + 1  # no gap
            for side in ("b", "a"):
                for p, q in ev[side]:
                    if float(q) == 0:
                        book[side].pop(p, None)
                    else:
                        book[side][p] = q
            last = ev["u"]
            if ev["b"]:
                break
        async with http.get(f"{sandbox.url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 1000}) as r:
            now = await r.json()
        assert now["lastUpdateId"] == last
        assert book["b"] == dict(map(tuple, now["bids"])) and book["a"] == dict(map(tuple, now["asks"]))


async def test_raw_combined_and_subscribe_layouts_spot_and_futures(sandbox: SandboxServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{sandbox.ws_url}/stream?streams=btcusdt@miniTicker/ethusdt@depth5@100ms") as ws:
            seen = set()
            while seen != {"btcusdt@miniTicker", "ethusdt@depth5@100ms"}:
                msg = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
                assert set(msg) == {"stream", "data"}
                seen.add(msg["stream"])
                if msg["stream"] == "btcusdt@miniTicker":
                    assert msg["data"]["e"] == "24hrMiniTicker" and float(msg["data"]["c"]) > 0
                else:
                    assert len(msg["data"]["bids"]) == 5 and "lastUpdateId" in msg["data"]
        async with http.ws_connect(f"{sandbox.ws_url}/ws/btcusdt@kline_1m") as ws:
            assert json.loads((await asyncio.wait_for(ws.receive(), 10)).data)["e"] == "kline"
        async with http.ws_connect(f"{sandbox.ws_url}/fstream/ws") as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s", "!bookTicker"], "id": 1}))
            kinds = set()
            while kinds != {"markPriceUpdate", "bookTicker"}:
                msg = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
                if "e" in msg:
                    kinds.add(msg["e"])
        async with http.ws_connect(f"{sandbox.ws_url}/ws/!miniTicker@arr") as ws:
            arr = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            assert isinstance(arr, list) and {e["s"] for e in arr} >= {"BTCUSDT", "ETHUSDT"}


async def test_a_listen_key_is_a_stream_name(sandbox: SandboxServer, account, client) -> None:
    """Spot and futures listen keys as raw stream names carry the account's events (in the envelope when combined)."""
    headers = {"X-MBX-APIKEY": account.api_key}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sandbox.url}/fapi/v1/listenKey", headers=headers) as r:
            fkey = (await r.json())["listenKey"]
        async with http.post(f"{sandbox.url}/api/v3/userDataStream", headers=headers) as r:
            skey = (await r.json())["listenKey"]
        async with (
            http.ws_connect(f"{sandbox.ws_url}/fstream/ws/{fkey}") as fws,
            http.ws_connect(f"{sandbox.ws_url}/stream?streams={skey}") as sws,
        ):
            await asyncio.sleep(0)  # both connections registered before the orders
            await wait_for(lambda: sum(1 for c in sandbox.hub.conns if c.listen_key in (fkey, skey)) == 2)
            await client.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
            await client.create_order("BTC/USDT", "market", "buy", 0.001)
            futures_events = set()
            while "ORDER_TRADE_UPDATE" not in futures_events:
                futures_events.add(json.loads((await asyncio.wait_for(fws.receive(), 10)).data)["e"])
            spot = json.loads((await asyncio.wait_for(sws.receive(), 10)).data)
            assert spot["stream"] == skey and spot["data"]["e"] in ("executionReport", "outboundAccountPosition")


async def _ws_api_subscribe(sandbox, account, ws) -> int:  # type: ignore[no-untyped-def]
    import hashlib
    import hmac
    import time

    params = {"apiKey": account.api_key, "timestamp": int(time.time() * 1000)}
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = hmac.new(account.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()  # type: ignore[assignment]
    await ws.send_json({"id": 1, "method": "userDataStream.subscribe.signature", "params": params})
    reply = json.loads((await ws.receive()).data)
    return int(reply["result"]["subscriptionId"])


async def test_ws_api_user_stream_terminates_and_connections_age_out(sandbox, account) -> None:
    """``userDataStream.unsubscribe`` ends with ``eventStreamTerminated``; every connection is cut at
    ``ws_max_age_s`` (Binance: 24 hours), WS-API subscriptions told first."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{sandbox.ws_url}/ws-api/v3") as ws:
            sub = await _ws_api_subscribe(sandbox, account, ws)
            await ws.send_json({"id": 2, "method": "userDataStream.unsubscribe"})
            messages = [json.loads((await ws.receive()).data) for _ in range(2)]
            assert messages[1] == {"subscriptionId": sub, "event": {"e": "eventStreamTerminated", "E": messages[1]["event"]["E"]}}
        sandbox.ex.faults = Faults(ws_max_age_s=1.0)
        async with http.ws_connect(f"{sandbox.ws_url}/ws-api/v3") as ws, http.ws_connect(f"{sandbox.ws_url}/ws/btcusdt@trade") as raw:
            sub = await _ws_api_subscribe(sandbox, account, ws)
            async with asyncio.timeout(5):
                msg = await ws.receive()
                while json.loads(msg.data).get("event", {}).get("e") != "eventStreamTerminated":
                    msg = await ws.receive()
                assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
                while (await raw.receive()).type == aiohttp.WSMsgType.TEXT:
                    pass  # trades until the cut
            assert raw.closed


@pytest.mark.venues()
@pytest.mark.parametrize("market", ["BTC/USDT", "BTC/USDT:USDT"])
async def test_streamed_prints_are_the_listed_ones(sandbox, market) -> None:
    """The public trade stream and the recent-trade list give the same prints (time, price, amount, id), each once,
    as an exchange's do: a client that builds candles from trades joins the two without counting one twice."""
    client = make_client(sandbox, None)
    try:
        await client.load_markets()
        streamed: dict[str, dict] = {}
        async with asyncio.timeout(20):
            while len(streamed) < 3:
                for t in await client.watch_trades(market):
                    assert t["id"] not in streamed, t  # each print once
                    streamed[t["id"]] = t
        listed = {t["id"]: t for t in await client.fetch_trades(market, limit=100)}
        assert streamed.keys() <= listed.keys()
        for tid, t in streamed.items():
            assert (t["timestamp"], t["price"], t["amount"]) == (listed[tid]["timestamp"], listed[tid]["price"], listed[tid]["amount"])
    finally:
        await client.close()
