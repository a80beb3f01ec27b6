"""The ccxt adapter's other direction: the requests it builds from the engine's terms (``PlaceOrder`` -> ccxt's
type and params, ``OrderRef`` -> naming params, ``PlaceExitList`` -> the OCO request), recorded error bodies ->
typed errors (through ccxt's own error handling, offline), and ``CcxtVenue`` over a fake ccxt client (no socket)."""

from __future__ import annotations

import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import ccxt
import pytest

from planar_core.config import StrategyConfig, load_config
from planar_core.engine.parts import engine_venue
from planar_core.exchange import errors as E
from planar_core.exchange.binance import BINANCE, BinanceDialect
from planar_core.exchange.ccxt_venue import CcxtVenue
from planar_core.exchange.registry import VENUES, open_venue
from planar_core.exchange.requests import exit_list_request, order_args, ref_params
from planar_core.model.status import OrderStatus
from planar_core.model.types import OrderType, PositionSide, Side
from planar_core.model.venue import OrderRef, PlaceExitList, PlaceOrder, Venue

FIXTURES = Path(__file__).parent.parent / "fixtures" / "binance"
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"


@cache
def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def place(kind: OrderType, **kw: Any) -> PlaceOrder:
    return PlaceOrder(symbol=kw.pop("symbol", SPOT), type=kind, side=kw.pop("side", Side.BUY), amount=0.01, client_order_id="cid-1", **kw)


# ---------------------------------------------------------------------------------------------- PlaceOrder -> ccxt
@pytest.mark.parametrize(
    ("order", "contract", "kind", "params"),
    [
        (place(OrderType.MARKET), False, "market", {"clientOrderId": "cid-1"}),
        (place(OrderType.GTC, price=1.0), False, "limit", {"clientOrderId": "cid-1", "timeInForce": "GTC"}),
        (place(OrderType.IOC, price=1.0), False, "limit", {"clientOrderId": "cid-1", "timeInForce": "IOC"}),
        (place(OrderType.FOK, price=1.0), False, "limit", {"clientOrderId": "cid-1", "timeInForce": "FOK"}),
        (place(OrderType.POST_ONLY, price=1.0), False, "limit", {"clientOrderId": "cid-1", "postOnly": True}),
        (place(OrderType.STOP_MARKET, trigger_price=9.0), False, "market", {"clientOrderId": "cid-1", "stopLossPrice": 9.0}),
        (
            place(OrderType.STOP_LIMIT, price=8.0, trigger_price=9.0),
            True,
            "limit",
            {"clientOrderId": "cid-1", "stopLossPrice": 9.0, "timeInForce": "GTC"},
        ),
        (place(OrderType.TAKE_PROFIT_MARKET, trigger_price=9.0), True, "market", {"clientOrderId": "cid-1", "takeProfitPrice": 9.0}),
        (
            place(OrderType.TRAILING_STOP, trailing_percent=1.0),
            False,
            "market",
            {"clientOrderId": "cid-1", "trailingPercent": 1.0, "stopLossOrTakeProfit": "stopLoss"},
        ),
        (
            place(OrderType.TRAILING_STOP, trailing_percent=1.0, trigger_price=5.0),
            True,
            "market",
            {"clientOrderId": "cid-1", "trailingPercent": 1.0, "trailingTriggerPrice": 5.0},
        ),
        (place(OrderType.MARKET, reduce_only=True), True, "market", {"clientOrderId": "cid-1", "reduceOnly": True}),
        (
            place(OrderType.MARKET, reduce_only=True, position_side=PositionSide.LONG),
            True,
            "market",
            {"clientOrderId": "cid-1", "positionSide": "LONG"},
        ),
    ],
    ids=lambda x: x.type.value if isinstance(x, PlaceOrder) else None,
)
def test_order_args(order: PlaceOrder, contract: bool, kind: str, params: dict[str, Any]) -> None:
    assert order_args(BINANCE, order, contract) == (kind, params)


def test_strategy_options_never_override_checked_fields() -> None:
    order = place(OrderType.GTC, price=1.0, extra={"clientOrderId": "evil", "timeInForce": "IOC", "selfTradePreventionMode": "NONE"})
    _, params = order_args(BINANCE, order, False)
    assert params == {"clientOrderId": "cid-1", "timeInForce": "GTC", "selfTradePreventionMode": "NONE"}


@pytest.mark.parametrize(
    ("name", "order", "contract"),
    [
        (
            "spot_market_ack",
            PlaceOrder(symbol=SPOT, type=OrderType.MARKET, side=Side.BUY, amount=0.01, client_order_id="rec-spot-m1"),
            False,
        ),
        (
            "usdm_market_ack",
            PlaceOrder(symbol=PERP, type=OrderType.MARKET, side=Side.BUY, amount=0.01, client_order_id="rec-perp-m1"),
            True,
        ),
    ],
)
def test_recorded_requests_are_what_the_adapter_builds(name: str, order: PlaceOrder, contract: bool) -> None:
    request = load(name)["request"]
    kind, params = order_args(BINANCE, order, contract)
    assert (kind, params) == (request["type"], {k: v for k, v in request.items() if k not in ("symbol", "type", "side", "amount", "price")})


def test_recorded_limit_request_is_what_the_adapter_builds() -> None:
    request = load("spot_limit_ack")["request"]
    order = PlaceOrder(symbol=SPOT, type=OrderType.GTC, side=Side.BUY, amount=0.01, price=request["price"], client_order_id="rec-spot-l1")
    assert order_args(BINANCE, order, False) == ("limit", {"clientOrderId": "rec-spot-l1", "timeInForce": "GTC"})


# ---------------------------------------------------------------------------------------------- OrderRef -> params
@pytest.mark.parametrize(
    ("ref", "contract", "params"),
    [
        (OrderRef("c1", "42"), False, {}),
        (OrderRef("c1"), False, {"origClientOrderId": "c1"}),
        (OrderRef("c1", "42", waiting_trigger=True), True, {"trigger": True}),
        (OrderRef("c1", waiting_trigger=True), True, {"trigger": True, "clientAlgoId": "c1"}),
        (OrderRef("c1", waiting_trigger=True), False, {"origClientOrderId": "c1"}),  # spot stops are book orders
    ],
)
def test_ref_params(ref: OrderRef, contract: bool, params: dict[str, Any]) -> None:
    assert ref_params(BINANCE, ref, contract) == params


@pytest.mark.parametrize(("side", "above", "below"), [(Side.SELL, "tp", "sl"), (Side.BUY, "sl", "tp")])
def test_exit_list_request_puts_each_leg_on_its_side(side: Side, above: str, below: str) -> None:
    exits = PlaceExitList(symbol=SPOT, side=side, amount=0.01, take_profit=1.0, stop=2.0, take_profit_client_id="tp", stop_client_id="sl")
    req = exit_list_request(BINANCE, "BTCUSDT", exits, "0.01", "1.0", "2.0")
    assert (req["aboveClientOrderId"], req["belowClientOrderId"]) == (above, below)
    assert req["symbol"] == "BTCUSDT" and req["side"] == side.value.upper() and req["quantity"] == "0.01"
    limit_side = "above" if side is Side.SELL else "below"
    assert req[f"{limit_side}Type"] == "LIMIT_MAKER" and req[f"{limit_side}Price"] == "1.0"


def test_recorded_oco_answer_has_both_legs() -> None:
    legs = load("spot_oco_ack")["parsed"]["orderReports"]
    assert {leg["clientOrderId"] for leg in legs} == {"rec-oco-tp", "rec-oco-sl"}


# ---------------------------------------------------------------------------------------------- error bodies -> typed errors
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("error_2010_insufficient", E.InsufficientFunds),
        ("error_2011_cancel_unknown", E.OrderNotFound),
        ("error_2013_no_order", E.OrderNotFound),
        ("error_1013_lot_size", E.InvalidOrder),
        ("error_4164_notional", E.InvalidOrder),
        ("error_1021_timestamp", E.ClockSkew),
        ("error_429", E.RateLimited),
        ("error_418", E.RateLimited),
    ],
)
def test_error_body_maps_to_typed_error(name: str, expected: type[E.ExchangeOpError]) -> None:
    rec = load(name)
    ex = ccxt.binance()
    body = rec["body"]
    with pytest.raises(ccxt.BaseError) as raised:  # ccxt's own handling of the answer, offline
        ex.handle_errors(rec["status"], rec["reason"], rec["url"], rec["method"], rec["headers"], body, json.loads(body), None, None)
    err = BINANCE.map_error(raised.value)
    code = json.loads(body)["code"]
    assert type(err) is expected and err.code == (code if str(code) in str(raised.value) else None)  # ccxt may drop the body
    assert err.transient is (expected in (E.RateLimited, E.ClockSkew))


# ---------------------------------------------------------------------------------------------- the adapter over a fake ccxt
class FakeCcxt:
    """Stands where ccxt would: answers from recorded payloads and records every call."""

    def __init__(self) -> None:
        self.markets = load("markets")
        self.last_response_headers: dict[str, str] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.answers: dict[str, Any] = {}
        self.options: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def method(*args: Any) -> Any:
            self.calls.append((name, *args))
            answer = self.answers[name]
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return method

    def amount_to_precision(self, symbol: str, amount: float) -> str:
        return f"{amount:.5f}"

    def price_to_precision(self, symbol: str, price: float) -> str:
        return f"{price:.2f}"


def venue(**config: Any) -> tuple[CcxtVenue, FakeCcxt]:
    cfg = StrategyConfig.model_validate(
        {
            "name": "unit",
            "universe": [SPOT],
            "store_root": tempfile.mkdtemp(prefix="planar-unit-"),
            "event_tracing": {"enabled": False},
            **config,
        }
    )
    fake = FakeCcxt()
    return open_venue(cfg, exchange=fake), fake


def test_ccxt_venue_is_a_venue() -> None:
    v, _ = venue()
    assert isinstance(v, Venue) and isinstance(v, CcxtVenue) and v.name == "binance"
    assert v.caps.supports(OrderType.STOP_MARKET) and v.caps.batch_cancel == {"swap": 10}


def test_the_paper_venue_offers_what_live_offers_but_the_countdown() -> None:
    v = engine_venue(load_config(env={}, name="unit", mode="paper"))  # the simulated exchange: live's order types
    assert v.name == "paper" and v.caps.supports(OrderType.STOP_MARKET) and v.caps.supports(OrderType.GTC)
    assert v.caps.native_oco == BINANCE.caps.native_oco and not v.caps.countdown_cancel  # orders live in this process


def test_registry_has_one_line_per_venue() -> None:
    assert isinstance(VENUES["binance"].dialect, BinanceDialect)


async def test_create_order_sends_ccxt_args_once_and_reports() -> None:
    v, fake = venue()
    fake.answers["create_order"] = load("spot_limit_ack")["parsed"]
    order = PlaceOrder(symbol=SPOT, type=OrderType.GTC, side=Side.BUY, amount=0.01, price=100.0, client_order_id="rec-spot-l1")
    report = await v.create_order(order, timeout=1.0)
    assert fake.calls == [("create_order", SPOT, "limit", "buy", 0.01, 100.0, {"clientOrderId": "rec-spot-l1", "timeInForce": "GTC"})]
    assert report.status is OrderStatus.OPEN and report.client_order_id == "rec-spot-l1"


async def test_create_order_is_never_retried() -> None:
    v, fake = venue()
    fake.answers["create_order"] = ccxt.RequestTimeout("binance timed out")
    with pytest.raises(E.NetworkUncertain):
        await v.create_order(place(OrderType.MARKET), timeout=1.0)
    assert len(fake.calls) == 1


async def test_fetch_order_by_client_id() -> None:
    v, fake = venue()
    fake.answers["fetch_order"] = load("spot_fetch_order_by_client_id")["parsed"]
    report = await v.fetch_order(SPOT, OrderRef("rec-spot-l1"), timeout=1.0)
    assert fake.calls == [("fetch_order", None, SPOT, {"origClientOrderId": "rec-spot-l1"})] and report.id is not None


async def test_fetch_order_not_found_raises_typed() -> None:
    v, fake = venue()
    rec = load("error_2013_no_order")
    fake.answers["fetch_order"] = ccxt.OrderNotFound("binance " + rec["body"])
    with pytest.raises(E.OrderNotFound):
        await v.fetch_order(SPOT, OrderRef("nobody"), timeout=1.0)


async def test_futures_cancel_orders_batches_and_reports_each() -> None:
    v, fake = venue(margin=True, universe=[PERP])
    rows = load("usdm_batch_cancel")["parsed"]
    fake.answers["cancel_orders"] = rows
    refs = [OrderRef(r["clientOrderId"], r["id"]) for r in rows]
    result = await v.cancel_orders(PERP, refs, timeout=1.0)
    assert fake.calls == [("cancel_orders", [r.order_id for r in refs], PERP, {})] and result.requests == 1
    assert set(result.cancelled) == {r.client_order_id for r in refs}
    assert all(rep.status is OrderStatus.CANCELED for rep in result.cancelled.values())


async def test_cancel_orders_says_not_open_per_order() -> None:
    v, fake = venue()
    fake.answers["cancel_order"] = ccxt.OrderNotFound("binance " + load("error_2011_cancel_unknown")["body"])
    result = await v.cancel_orders(SPOT, [OrderRef("gone", "7")], timeout=1.0)
    assert result.not_open == {"gone"} and not result.cancelled and not result.unconfirmed


async def test_open_orders_of_a_futures_symbol_read_both_books() -> None:
    v, fake = venue(margin=True, universe=[PERP])
    fake.answers["fetch_open_orders"] = load("usdm_open_algo_orders")["parsed"]
    reports = await v.open_orders(PERP, timeout=1.0)
    assert [c[-1] for c in fake.calls] == [{}, {"trigger": True}] and all(r.conditional for r in reports)


async def test_balances_and_positions_are_reports() -> None:
    v, fake = venue(margin=True, universe=[PERP])
    fake.answers["fetch_balance"] = load("usdm_balance")["parsed"]
    fake.answers["fetch_positions"] = load("usdm_positions_one_way")["parsed"]
    b = await v.balances("swap", timeout=1.0)
    positions = await v.positions([PERP], timeout=1.0)
    assert fake.calls[0] == ("fetch_balance", {"type": "swap"}) and b.complete and b.assets["USDT"].available is not None
    assert positions[0].side is PositionSide.LONG


async def test_my_trades_of_one_order() -> None:
    v, fake = venue()
    fake.answers["fetch_my_trades"] = load("spot_my_trades")["parsed"]
    fills = await v.my_trades(SPOT, timeout=1.0, until=5, order_id="42")
    assert fake.calls == [("fetch_my_trades", SPOT, None, None, {"until": 5, "orderId": "42"})] and fills[0].amount > 0


async def test_set_margin_mode_already_set_is_no_error() -> None:
    v, fake = venue(margin=True, universe=[PERP])
    fake.answers["set_margin_mode"] = ccxt.ExchangeError('binance {"code":-4046,"msg":"No need to change margin type."}')
    await v.set_margin_mode(PERP, "isolated", timeout=1.0)
    fake.answers["set_margin_mode"] = ccxt.ExchangeError(
        'binance {"code":-4047,"msg":"Margin type cannot be changed if there exists open orders."}'
    )
    with pytest.raises(E.PermanentError):
        await v.set_margin_mode(PERP, "isolated", timeout=1.0)


async def test_stream_caches_are_reports() -> None:
    v, fake = venue()
    execution = load("ws_executionReport")["messages"]
    trades = [p["value"] for m in execution for p in m["parsed"] if p["kind"] == "trade"]
    fake.myTrades = trades  # type: ignore[attr-defined]
    fills = v.cached_fills(SPOT, 100)
    assert [f.id for f in fills] == [t["id"] for t in trades] and all(f.stamp is not None for f in fills)
    assert v.cached_fills(SPOT, 100)[0] is fills[0]  # parsed once
    fake.balance = {"spot": load("ws_outboundAccountPosition")["messages"][0]["balance"]}  # type: ignore[attr-defined]
    cached = v.cached_balance("spot")
    assert cached is not None and not cached.complete and cached.stamp is not None


async def test_the_order_cache_is_read_from_its_end_as_far_as_it_changed() -> None:
    """The engine reads ccxt's order cache after every stream event, and the cache holds up to a thousand orders:
    only the orders changed since the last read are returned and parsed (reading every open order made each order
    cost ~200 parses with 1 000 resting, bench/open_orders_bench.py), and a change is never missed."""
    from ccxt.async_support.base.ws.cache import ArrayCacheBySymbolById

    v, fake = venue()
    execution = load("ws_executionReport")["messages"]
    raw = next(p["value"] for m in execution for p in m["parsed"] if p["kind"] == "order")
    cache = ArrayCacheBySymbolById(1000)
    for i in range(1, 501):
        cache.append({**raw, "symbol": SPOT if i % 2 else "ETH/USDT", "id": str(i), "clientOrderId": f"c{i}", "status": "open"})
    fake.orders = cache  # type: ignore[attr-defined]
    parsed: list[object] = []
    parse_order = v.parse.order
    v.parse.order = lambda row: parsed.append(row) or parse_order(row)  # type: ignore[method-assign]
    assert len(v.cached_order_updates(SPOT)) == 250  # the first read: everything of the symbol is new
    parsed.clear()
    cache.append({**raw, "symbol": SPOT, "id": "7", "clientOrderId": "c7", "status": "canceled"})  # moved to the end
    cache.append({**raw, "symbol": "ETH/USDT", "id": "8", "clientOrderId": "c8", "status": "canceled"})
    cache.append({**raw, "symbol": SPOT, "id": "9", "clientOrderId": "c9", "status": "closed", "filled": 1.0})
    assert [(r.client_order_id, r.status) for r in v.cached_order_updates(SPOT)] == [
        ("c7", OrderStatus.CANCELED),
        ("c9", OrderStatus.CLOSED),
    ]
    assert len(parsed) == 2  # not the 250 the cache holds of the symbol
    assert v.cached_order_updates(SPOT) == [] and len(parsed) == 2  # nothing changed since


def test_watch_results_are_found_from_the_cache_end_as_ccxt_finds_them() -> None:
    """``StrictBinance.filter_by_symbol_since_limit``: the same list as ccxt's for every symbol and limit, without
    reading the whole cache (it did, on every stream message: 1 000 resting orders doubled the CPU per order)."""
    import random

    from ccxt.async_support.base.ws.cache import ArrayCacheBySymbolById

    from planar_core.exchange.binance import StrictBinance

    reads = [0]

    class Row(dict[str, object]):
        def get(self, key: str, default: object = None) -> object:
            reads[0] += 1
            return super().get(key, default)

    ex = StrictBinance({})
    rng = random.Random(7)
    cache = ArrayCacheBySymbolById(1000)
    for i in range(1500):  # evictions and moves included
        cache.append(Row(symbol=rng.choice(["A/USDT", "B/USDT", "C/USDT"]), id=str(rng.randrange(1200)), timestamp=i))
    for symbol in ("A/USDT", "B/USDT", "C/USDT", "D/USDT"):
        for limit in (None, 0, 1, 3, 50, 5000):
            for since in (None, 700):
                got = ex.filter_by_symbol_since_limit(cache, symbol, since, limit, True)
                want = ccxt.Exchange.filter_by_symbol_since_limit(ex, cache, symbol, since, limit, True)
                assert got == want, (symbol, limit, since)
    reads[0] = 0
    last = cache[len(cache) - 1]["symbol"]
    assert ex.filter_by_symbol_since_limit(cache, last, None, 1, True) == [cache[len(cache) - 1]]
    assert reads[0] == 1  # the newest update, read from the end


def test_an_updated_order_is_found_in_ccxts_order_cache_from_the_newest_end() -> None:
    """``ws_cache.order_cache``: the same cache as ccxt's (order, evictions, moves), but an update of a recent order
    finds it from the newest end; ccxt's search compared every cached token from the oldest (about a thousand, once a
    thousand orders had passed: ~50 us of CPU per order). Both dialects' clients make their order cache this way."""
    import random

    from ccxt.async_support.base.ws.cache import ArrayCacheBySymbolById

    from planar_core.exchange.binance import StrictBinance
    from planar_core.exchange.bybit import StrictBybit
    from planar_core.exchange.ws_cache import order_cache

    compared = [0]

    class Id(str):  # an order id that counts the comparisons it takes part in (a new object each update: no shortcut)
        __hash__ = str.__hash__

        def __eq__(self, other: object) -> bool:
            compared[0] += 1
            return str.__eq__(self, other)

    rng = random.Random(11)
    ours, theirs = order_cache(1000), ArrayCacheBySymbolById(1000)
    for i in range(3000):  # evictions and moves included
        row = {"symbol": rng.choice(["A/USDT", "B/USDT"]), "id": str(rng.randrange(1500)), "n": i}
        ours.append(dict(row))
        theirs.append(dict(row))
    assert list(ours) == list(theirs) and list(ours._index) == list(theirs._index)
    for held in (ours, theirs):
        held.append({"symbol": "A/USDT", "id": "new", "n": -1})
    compared[0] = 0
    ours.append({"symbol": "A/USDT", "id": Id("new"), "n": -2})
    assert compared[0] <= 10 and ours[len(ours) - 1]["n"] == -2
    compared[0] = 0
    theirs.append({"symbol": "A/USDT", "id": Id("new"), "n": -2})
    assert compared[0] > 400  # what the fix removes: ccxt's own search, from the oldest
    assert list(ours) == list(theirs)

    class Client:
        def resolve(self, result: object, message_hash: str) -> None:
            pass

    parsed = {"symbol": "BTC/USDT", "id": "1", "status": "open", "timestamp": 1}
    binance = StrictBinance({})
    binance.parse_ws_order = lambda message: dict(parsed)  # type: ignore[method-assign]
    binance.handle_order(Client(), {})
    bybit = StrictBybit({})
    bybit.parse_order = lambda message, market=None: dict(parsed)  # type: ignore[method-assign]
    bybit.handle_order(Client(), {"data": [{"category": "spot"}]})
    for ex in (binance, bybit):
        assert type(ex.orders._index).__name__ == "NewestFirstIndex" and len(ex.orders) == 1  # type: ignore[attr-defined]
