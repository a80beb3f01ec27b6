"""USDⓈ-M ``DELETE /fapi/v1/batchOrders`` on the sandbox, driven by unmodified ccxt (``cancel_orders``), as Binance
documents it: ``orderIdList`` or ``origClientOrderIdList`` (one of them, at most ten ids, JSON lists in the query
string, signed as sent), weight 1, one answer entry per id in the order given: the cancelled order, or the error that
id met (``-2011`` for an order that is not open)."""

from __future__ import annotations

import ccxt
import pytest

from planar_core.sandbox import SandboxServer
from planar_core.sandbox.accounts import Account

from .conftest import make_client

SYM = "BTC/USDT:USDT"


@pytest.fixture
async def futures(sandbox: SandboxServer, account: Account):  # type: ignore[no-untyped-def]
    ex = make_client(sandbox, account, options={"defaultType": "swap"})
    await ex.load_markets()
    yield ex
    await ex.close()


async def resting(futures, n: int, prefix: str) -> list[dict]:  # type: ignore[no-untyped-def]
    last = (await futures.fetch_ticker(SYM))["last"]
    return [
        await futures.create_order(SYM, "limit", "buy", 0.001, round(last * (0.97 - i / 1000), 1), {"clientOrderId": f"{prefix}-{i}"})
        for i in range(n)
    ]


def open_cids(sandbox: SandboxServer, account: Account) -> set[str]:
    return {o["client_order_id"] for o in sandbox.ex.snapshot()["accounts"][account.api_key]["open_orders"]}


async def test_batch_cancel_by_order_ids_and_by_client_ids(futures, sandbox: SandboxServer, account: Account) -> None:
    orders = await resting(futures, 14, "b")
    first = await futures.cancel_orders([o["id"] for o in orders[:10]], SYM)  # ten: the most one request takes
    assert sorted(o["clientOrderId"] for o in first) == sorted(f"b-{i}" for i in range(10))
    assert all(o["status"] == "canceled" for o in first)
    assert open_cids(sandbox, account) == {f"b-{i}" for i in range(10, 14)}
    by_cid = await futures.cancel_orders([], SYM, {"clientOrderIds": ["b-10", "b-11"]})
    assert sorted(o["clientOrderId"] for o in by_cid) == ["b-10", "b-11"]
    assert open_cids(sandbox, account) == {"b-12", "b-13"}


async def test_each_id_gets_its_own_answer_in_order(futures, sandbox: SandboxServer, account: Account) -> None:
    """An id that is not open (unknown, or already cancelled) gets -2011 in its place; the others are cancelled."""
    orders = await resting(futures, 3, "e")
    await futures.cancel_order(orders[1]["id"], SYM)
    raw = await futures.fapiPrivateDeleteBatchOrders(
        {"symbol": "BTCUSDT", "orderidlist": [orders[0]["id"], orders[1]["id"], "999999", orders[2]["id"]]}
    )
    assert [r.get("clientOrderId", r.get("code")) for r in raw] == ["e-0", -2011, -2011, "e-2"]
    assert raw[0]["status"] == "CANCELED" and raw[1]["msg"] == "Unknown order sent."
    assert open_cids(sandbox, account) == set()
    with pytest.raises(ccxt.OrderNotFound):  # one id, one error: ccxt raises it
        await futures.cancel_orders([orders[0]["id"]], SYM)
    more = await resting(futures, 1, "x")  # an answer of several entries: ccxt keeps only the orders it can parse
    parsed = await futures.cancel_orders([orders[0]["id"], more[0]["id"]], SYM)
    assert [o["clientOrderId"] for o in parsed] == ["x-0"]


async def test_malformed_batches_are_refused_whole(futures, sandbox: SandboxServer, account: Account) -> None:
    orders = await resting(futures, 11, "m")
    with pytest.raises(ccxt.BadRequest, match="-1130"):  # eleven ids: more than one request takes
        await futures.cancel_orders([o["id"] for o in orders], SYM)
    with pytest.raises(ccxt.BadRequest, match="-1128"):  # both lists: Binance takes one or the other
        await futures.fapiPrivateDeleteBatchOrders(
            {"symbol": "BTCUSDT", "orderidlist": [orders[0]["id"]], "origClientOrderIdList": ["m-1"]}
        )
    with pytest.raises(ccxt.BadRequest, match="-1102"):  # neither
        await futures.fapiPrivateDeleteBatchOrders({"symbol": "BTCUSDT"})
    assert len(open_cids(sandbox, account)) == 11  # nothing was cancelled by a refused request
