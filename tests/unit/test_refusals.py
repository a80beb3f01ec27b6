"""Each refusal reason is produced by the path that should produce it (on the in-memory venue): ``call()`` answers
None, the ``order_failed`` / ``risk_rejected`` event carries ``reason_code`` next to the free-text ``reason``,
``Strategy.last_refusal`` holds the typed refusal, and nothing is sent unless the exchange itself refused."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from planar_core.exchange.errors import ExchangeOpError, InsufficientFunds, RateLimited
from planar_core.model import Balance, OrderStatus, OrderType, Refusal, RefusalReason, Side
from planar_core.storage import CorruptStateError

from .fake_venue import FakeVenue, started
from .stubs import sink_of

R = RefusalReason


async def spot(**config: Any) -> tuple[Any, FakeVenue]:
    s, venue, _ = await started(("BTC/USDT",), **config)
    s.holdings.set_balances({"USDT": Balance(10_000.0, 0.0, 10_000.0)})
    s.universe["BTC/USDT"].last_price = 50_000.0
    venue.prices["BTC/USDT"] = 50_000.0
    return s, venue


async def perp(**config: Any) -> tuple[Any, FakeVenue]:
    s, venue, _ = await started(("BTC/USDT:USDT",), margin=True, **config)
    s.holdings.set_balances({"USDT": Balance(10_000.0, 0.0, 10_000.0)})
    s.universe["BTC/USDT:USDT"].last_price = 50_000.0
    venue.prices["BTC/USDT:USDT"] = 50_000.0
    return s, venue


def refused_with(s: Any, venue: FakeVenue, reason: RefusalReason, kind: str = "order_failed", sent: int = 0) -> Refusal:
    """The last event of ``kind`` and ``s.last_refusal`` name ``reason``; ``sent`` create_order requests left."""
    event = sink_of(s).of(kind)[-1]
    assert event["reason_code"] == reason.value, event
    refusal = s.last_refusal
    assert isinstance(refusal, Refusal) and refusal.reason is reason and refusal.detail == event["reason"]
    assert len(venue.ops("create_order")) == sent
    return refusal


async def test_halted_and_breaker() -> None:
    s, venue = await spot()
    s.halt("by hand")
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    assert "strategy halted: by hand" in str(refused_with(s, venue, R.HALTED))
    s.state_store.update(breaker_tripped="drawdown")
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    refused_with(s, venue, R.BREAKER)


async def test_invalid_params_before_any_check() -> None:
    s, venue = await spot()
    assert await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01) is None
    assert "needs a price" in str(refused_with(s, venue, R.INVALID_PARAMS))
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, reduce_only=True) is None  # spot
    assert "reduce_only is for margin" in str(refused_with(s, venue, R.INVALID_PARAMS))


async def test_capability() -> None:
    s, venue = await spot()
    venue.caps = replace(venue.caps, order_types=frozenset({"market", "gtc"}))
    assert await s.call("BTC/USDT", OrderType.FOK, Side.BUY, amount=0.01, price=50_000.0) is None
    assert "order type fok is not offered by fake on spot markets" in str(refused_with(s, venue, R.CAPABILITY))
    p, pv = await perp()
    assert await p.call("BTC/USDT:USDT", OrderType.TRAILING_STOP, Side.SELL, amount=0.01, trailing_percent=25.0) is None
    assert "fake takes 0.1-10.0 % on swap markets" in str(refused_with(p, pv, R.CAPABILITY))


async def test_precision_and_market_limits() -> None:
    s, venue = await spot()
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.000001) is None  # rounds to 0 at 0.00001
    refused_with(s, venue, R.PRECISION)
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.00005) is None  # 2.5 USDT < 5
    assert "below the market minimum cost" in str(refused_with(s, venue, R.MARKET_LIMIT))


async def test_insufficient_funds_and_nothing_to_reduce() -> None:
    s, venue = await spot()
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=1.0) is None
    assert "insufficient USDT" in str(refused_with(s, venue, R.INSUFFICIENT_FUNDS))
    p, pv = await perp()
    assert await p.call("BTC/USDT:USDT", OrderType.MARKET, Side.SELL, amount=0.01, reduce_only=True) is None
    assert "does not reduce the position" in str(refused_with(p, pv, R.NOTHING_TO_REDUCE))


async def test_would_trigger_and_price_unknown() -> None:
    s, venue = await perp()
    assert await s.call("BTC/USDT:USDT", OrderType.STOP_MARKET, Side.SELL, amount=0.01, trigger_price=51_000.0) is None
    assert "would trigger at once" in str(refused_with(s, venue, R.WOULD_TRIGGER))
    s.universe["BTC/USDT:USDT"].last_price = None
    del venue.prices["BTC/USDT:USDT"]  # the exchange's ticker has no last price either
    assert await s.call("BTC/USDT:USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    refused_with(s, venue, R.PRICE_UNKNOWN)
    venue.fail_next["ticker"].append(ExchangeOpError("ticker down"))  # the exchange could not be asked
    assert await s.call("BTC/USDT:USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    assert str(refused_with(s, venue, R.PRICE_UNKNOWN)) == "ExchangeOpError: ticker down"


async def test_risk_limit_and_a_failing_check() -> None:
    s, venue = await spot()
    s.risk_check = lambda strat, ai, req: "too big"  # a strategy's own hook answers a sentence
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    assert str(refused_with(s, venue, R.RISK_LIMIT, kind="risk_rejected")) == "too big"

    def broken(strat: Any, ai: Any, req: Any) -> None:
        raise ZeroDivisionError("oops")

    s.risk_check = broken
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    assert "risk check failed: ZeroDivisionError" in str(refused_with(s, venue, R.CHECK_FAILED, kind="risk_rejected"))


async def test_valuation_incomplete_from_the_risk_manager() -> None:
    s, venue = await spot()
    s.holdings.set_balances({"ETH": Balance(1.0, 0.0, 1.0)})  # held, and no price path to USDT
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    assert "valuation incomplete" in str(refused_with(s, venue, R.VALUATION_INCOMPLETE, kind="risk_rejected"))


async def test_margin_setup() -> None:
    s, venue = await perp(margin_mode="isolated")
    venue.fail_next["set_margin_mode"].append(ExchangeOpError("-4046"))
    assert await s.call("BTC/USDT:USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    assert "margin mode isolated could not be set" in str(refused_with(s, venue, R.MARGIN_SETUP))


async def test_store_unwritable_and_unreadable() -> None:
    s, venue = await spot()

    def full() -> str:
        raise OSError(28, "No space left on device")

    s.ids.next = full  # type: ignore[method-assign]
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    assert "not sent: no client order id" in str(refused_with(s, venue, R.STORE_UNWRITABLE))
    t, tv = await spot()

    def corrupt() -> str:
        raise CorruptStateError("client order id sequence", "garbled")

    t.ids.next = corrupt  # type: ignore[method-assign]
    assert await t.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    refused_with(t, tv, R.STORE_UNREADABLE)


async def test_exchange_refused_with_its_code() -> None:
    s, venue = await spot()
    venue.fail_next["create_order"].append(InsufficientFunds("Account has insufficient balance", code=-2019))
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    refusal = refused_with(s, venue, R.EXCHANGE_REFUSED, sent=1)
    assert refusal.code == -2019 and refusal.detail.startswith("InsufficientFunds: ")
    (order,) = s.universe["BTC/USDT"].orders.values()
    assert order.status is OrderStatus.REJECTED and order.refusal == refusal


async def test_rate_limited_until_the_budget_is_spent() -> None:
    s, venue = await spot(timeouts={"order_placement": 0.3})
    venue.fail_next["create_order"].extend(RateLimited("429") for _ in range(50))
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    sent = len(venue.ops("create_order"))
    assert sent >= 1
    refused_with(s, venue, R.RATE_LIMITED, sent=sent)
