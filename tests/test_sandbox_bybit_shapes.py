"""The Bybit dialect's raw answers against Bybit's recorded ones (issue 29).

``fixtures/bybit_shapes.json`` holds, per endpoint, the field names and JSON types of the answers Bybit gave ccxt's
maintainers, as ccxt keeps them for its static tests (``fixtures/record_bybit_shapes.py`` says where from). Each
endpoint is asked here over real HTTP, signed as Bybit signs, and its whole answer (envelope included) compared
field by field, nested rows included:

* a field the sandbox sends must be a recorded field of the same JSON type, unless ``ALSO_SENT`` names it with the
  evidence that Bybit sends it (its API documentation: most recordings predate the field);
* a recorded field must be sent by the sandbox, unless ``NOT_SENT`` names it with the reason, or it is one of
  ccxt's own additions to the answer (``CCXT_ADDED``);
* where the recording says ``str`` and Bybit's documentation says a number, the documentation wins
  (``NUMBERS_PER_DOCS``): ccxt stored most answers with every number turned into a string.

Every listed difference must still be one (a listed field the sandbox now sends, or no longer sends, fails the test
until the list is corrected). ``docs/sandbox.md`` (Bybit section) lists them all.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from planar_core.sandbox import SandboxExchange
from planar_core.sandbox.accounts import Account
from planar_core.sandbox.bybit import BybitServer
from planar_core.sandbox.bybit.limits import BybitLimits

from .test_sandbox_bybit import raw
from .test_sandbox_shapes import json_type

pytestmark = pytest.mark.asyncio(loop_scope="module")
SHAPES: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures" / "bybit_shapes.json").read_text())
ENDPOINTS = sorted(k for k in SHAPES if not k.startswith("_"))
DOCS = "Bybit's v5 docs (2025-03)"  # bybit-exchange.github.io/docs/v5 as scraped in rosssaunders/cryptoapidocs@172cf19

# paths (from the answer's top, ``[]`` for a list's rows) whose recorded ``str`` Bybit documents as a JSON number
NUMBERS_PER_DOCS: dict[str, str] = {
    "retCode": f"{DOCS}, every answer: retCode integer (ccxt's fetchOpenInterest recording keeps 0)",
    "time": f"{DOCS}, every answer: time number (ccxt's fetchOpenInterest recording keeps an integer)",
    "result.ts": f"{DOCS}, Get Orderbook: ts integer",
    "result.u": f"{DOCS}, Get Orderbook: u integer",
    "result.seq": f"{DOCS}, Get Orderbook: seq integer",
    "result.list[].positionIdx": f"{DOCS}, Get Open & Closed Orders / Get Position Info: positionIdx integer",
    "result.list[].triggerDirection": f"{DOCS}, Get Open & Closed Orders: triggerDirection integer",
    "result.list[].smpGroup": f"{DOCS}, Get Open & Closed Orders: smpGroup integer",
    "result.list[].seq": f"{DOCS}, Get Trade History / Get Position Info: seq long",
    "result.list[].riskId": f"{DOCS}, Get Position Info: riskId integer",
    "result.list[].autoAddMargin": f"{DOCS}, Get Position Info: autoAddMargin integer",
    "result.list[].adlRankIndicator": f"{DOCS}, Get Position Info: adlRankIndicator integer",
    "result.list[].tradeMode": f"{DOCS}, Get Position Info: tradeMode integer",
}
# recorded fields that are ccxt's, not Bybit's: the sandbox must not send them
CCXT_ADDED: dict[str, str] = {
    "result.list[].nextPageCursor": "ccxt's add_pagination_cursor_to_result copies result.nextPageCursor into the first row",
    "result.list[].timestamp": "ccxt's fetch_funding_rates writes the answer's time into each ticker row (tickers only)",
}

# per endpoint: recorded fields the sandbox does not send, with the reason
NOT_SENT: dict[str, dict[str, str]] = {}
UNVERIFIED = "not in the docs snapshot nor in ccxt's recordings; sent since the dialect's first version, unverified"
# per endpoint: fields the sandbox sends that the recording lacks, with the evidence that Bybit sends them
ALSO_SENT: dict[str, dict[str, str]] = {
    "GET /v5/market/orderbook linear": {"result.cts": f"{DOCS}, Get Orderbook: cts integer (the recording predates it)"},
    "GET /v5/market/orderbook spot": {
        "result.cts": f"{DOCS}, Get Orderbook: cts integer (the recording predates it)",
        "result.seq": f"{DOCS}, Get Orderbook: seq integer, no category excepted (the 2024 spot recording has none)",
    },
    "GET /v5/market/recent-trade linear": {
        "result.list[].isRPITrade": f"{DOCS}, Get Recent Public Trades: isRPITrade boolean (the recording predates it)",
        "result.list[].seq": UNVERIFIED,
    },
    "GET /v5/market/tickers linear": {"result.list[].fundingIntervalHour": UNVERIFIED, "result.list[].fundingCap": UNVERIFIED},
    "GET /v5/asset/coin/query-info": {"result.rows[].chains[].safeConfirmNumber": UNVERIFIED},
    "GET /v5/order/history linear": {
        "result.list[].marketUnit": f"{DOCS}, Get Order History: marketUnit (the recorded realtime linear row has it, empty)"
    },
    "GET /v5/order/history spot": {
        "result.list[].cumFeeDetail": "ccxt's 2025 linear recordings carry it (realtime and history); the spot ones are from 2024-01",
        "result.list[].ocoTriggerBy": f"{DOCS}, Get Order History: ocoTriggerBy, the trigger type of a spot OCO order",
        "result.list[].slippageToleranceType": f"{DOCS}, Get Order History: spot and futures market orders",
        "result.list[].slippageTolerance": f"{DOCS}, Get Order History: spot and futures market orders",
    },
    "GET /v5/position/list linear": {
        f"result.list[].{k}": f"{DOCS}, Get Position Info: {k} (the recordings are from 2023-11 and 2024-01)"
        for k in ("curRealisedPnl", "sessionAvgPrice", "delta", "gamma", "vega", "theta")
    },
}


@dataclass
class Allowed:
    """The differences one endpoint may show, and those it did show (each listed one must be seen)."""

    not_sent: dict[str, str]
    also_sent: dict[str, str]
    seen: set[str] = field(default_factory=set)


def compare(expected: object, actual: object, path: str, problems: list[str], allowed: Allowed) -> None:
    """Append to ``problems`` every difference between a recorded shape and an answer, except the allowed ones."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            problems.append(f"{path}: the recording has an object, the sandbox {json_type(actual)}")
            return
        for key, value in actual.items():
            here = f"{path}.{key}" if path else key
            if key in expected:
                compare(expected[key], value, here, problems, allowed)
            elif here in allowed.also_sent:
                allowed.seen.add(here)
            else:
                problems.append(f"{here}: sent, not in the recording")
        for key in expected:
            here = f"{path}.{key}" if path else key
            if key in actual:
                continue
            if here in allowed.not_sent:
                allowed.seen.add(here)
            elif here not in CCXT_ADDED:
                problems.append(f"{here}: recorded, not sent")
        return
    if isinstance(expected, list):
        if not isinstance(actual, list):
            problems.append(f"{path}: the recording has a list, the sandbox {json_type(actual)}")
        elif expected and not actual:
            problems.append(f"{path}: no rows to compare (the test's account has none)")
        elif expected:
            for row in actual[:3]:
                compare(expected[0], row, f"{path}[]", problems, allowed)
        return
    kind, kinds = json_type(actual), set(str(expected).split("|"))
    if kind in kinds:
        return
    if path in NUMBERS_PER_DOCS and kind in ("int", "number") and "str" in kinds:
        return
    problems.append(f"{path}: recorded {expected}, the sandbox sends {kind} ({actual!r})")


# ----------------------------------------------------------------- the sandbox, an account that has traded
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bybit() -> AsyncIterator[BybitServer]:
    async with BybitServer(SandboxExchange(seed=29)) as server:
        server.bybit_limiter.limits = BybitLimits(scale=100)
        yield server


@dataclass
class Trader:
    """The account the endpoints are asked for, and a signed request on its behalf."""

    server: BybitServer
    acct: Account

    async def get(self, path: str, **params: object) -> Any:
        return (await raw(self.server, "GET", path, dict(params), self.acct))[1]

    async def post(self, path: str, **params: object) -> Any:
        return (await raw(self.server, "POST", path, dict(params), self.acct))[1]

    def price(self, category: str, share: float) -> str:
        """A limit price ``share`` of the market's mid, on its tick."""
        m = self.server.ex.market(category, "BTCUSDT")
        return str((Decimal(repr(self.server.ex.mid(m) * share))).quantize(m.spec.tick_size))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trader(bybit: BybitServer) -> Trader:
    """Filled spot and linear orders, a linear position, a resting linear order, a funding settlement."""
    t = Trader(bybit, bybit.ex.add_account({"USDT": Decimal(100_000), "BTC": Decimal(2)}))
    for category, qty in (("spot", "0.01"), ("linear", "0.01")):
        done = (
            await t.post(
                "/v5/order/create", category=category, symbol="BTCUSDT", side="Buy", orderType="Market", qty=qty, marketUnit="baseCoin"
            )
            if category == "spot"
            else await t.post("/v5/order/create", category=category, symbol="BTCUSDT", side="Buy", orderType="Market", qty=qty)
        )
        assert done["retCode"] == 0, done
    rest = await t.post(
        "/v5/order/create", category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.01", price=t.price("linear", 0.97)
    )
    assert rest["retCode"] == 0, rest
    async with aiohttp.ClientSession() as http, http.post(bybit.url + "/admin/funding", json={"symbol": "BTCUSDT", "rate": "0.0001"}) as r:
        assert r.status == 200
    return t


async def _cancel_all_spot(t: Trader) -> Any:
    await t.post(
        "/v5/order/create", category="spot", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.001", price=t.price("spot", 0.9)
    )
    return await t.post("/v5/order/cancel-all", category="spot", symbol="BTCUSDT")


async def _amend(t: Trader) -> Any:
    placed = await t.post(
        "/v5/order/create",
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.001",
        price=t.price("linear", 0.98),
        orderLinkId="amend-shape",
    )
    assert placed["retCode"] == 0, placed
    return await t.post("/v5/order/amend", category="linear", symbol="BTCUSDT", orderLinkId="amend-shape", price=t.price("linear", 0.975))


ASK: dict[str, Callable[[Trader], Awaitable[Any]]] = {
    "GET /v5/market/orderbook linear": lambda t: t.get("/v5/market/orderbook", category="linear", symbol="BTCUSDT", limit=2),
    "GET /v5/market/orderbook spot": lambda t: t.get("/v5/market/orderbook", category="spot", symbol="BTCUSDT", limit=2),
    "GET /v5/market/recent-trade linear": lambda t: t.get("/v5/market/recent-trade", category="linear", symbol="BTCUSDT", limit=2),
    "GET /v5/market/tickers linear": lambda t: t.get("/v5/market/tickers", category="linear", symbol="BTCUSDT"),
    "GET /v5/market/kline linear": lambda t: t.get("/v5/market/kline", category="linear", symbol="BTCUSDT", interval="60", limit=3),
    "GET /v5/asset/coin/query-info": lambda t: t.get("/v5/asset/coin/query-info", coin="USDT"),
    "GET /v5/account/wallet-balance": lambda t: t.get("/v5/account/wallet-balance", accountType="UNIFIED"),
    "POST /v5/order/create": lambda t: t.post(
        "/v5/order/create", category="spot", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.001", price=t.price("spot", 0.9)
    ),
    "POST /v5/order/amend": _amend,
    "POST /v5/order/cancel-all spot": _cancel_all_spot,
    "GET /v5/order/realtime linear": lambda t: t.get("/v5/order/realtime", category="linear", symbol="BTCUSDT"),
    "GET /v5/order/history linear": lambda t: t.get("/v5/order/history", category="linear", symbol="BTCUSDT", orderStatus="Filled"),
    "GET /v5/order/history spot": lambda t: t.get("/v5/order/history", category="spot", symbol="BTCUSDT", orderStatus="Filled"),
    "GET /v5/position/list linear": lambda t: t.get("/v5/position/list", category="linear", symbol="BTCUSDT"),
    "GET /v5/execution/list spot": lambda t: t.get("/v5/execution/list", category="spot", symbol="BTCUSDT"),
    "GET /v5/execution/list linear": lambda t: t.get("/v5/execution/list", category="linear", symbol="BTCUSDT"),
    "GET /v5/execution/list linear execType=Funding": lambda t: t.get(
        "/v5/execution/list", category="linear", symbol="BTCUSDT", execType="Funding"
    ),
}


async def test_every_recorded_endpoint_is_asked() -> None:
    assert set(ASK) == set(ENDPOINTS)
    assert set(NOT_SENT) | set(ALSO_SENT) <= set(ENDPOINTS)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_answer_has_the_recorded_shape(trader: Trader, endpoint: str) -> None:
    answer = await ASK[endpoint](trader)
    assert answer.get("retCode") == 0, answer
    allowed = Allowed(NOT_SENT.get(endpoint, {}), ALSO_SENT.get(endpoint, {}))
    problems: list[str] = []
    compare(SHAPES[endpoint]["fields"], answer, "", problems, allowed)
    stale = sorted((set(allowed.not_sent) | set(allowed.also_sent)) - allowed.seen)
    problems += [f"{p}: listed as a difference, but the sandbox matches the recording here" for p in stale]
    assert not problems, f"{endpoint} differs from {SHAPES[endpoint]['from']}:\n" + "\n".join(sorted(set(problems)))
