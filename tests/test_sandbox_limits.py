"""The sandbox's rate limits follow Binance's documented rules, seen through unmodified ccxt: weight per IP (every
API key from one address shares it) and per API, new orders per account, fixed clock-aligned intervals, 429 with
Retry-After (none for the order count), 418 bans that lengthen for a repeat offender."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from planar_core.sandbox import Limits
from planar_core.sandbox.server import SandboxServer

from .conftest import START_BALANCES, make_client, wait_for

DAY = 86_400  # a weight interval no test run crosses the end of (intervals are clock-aligned)


def headers(c: Any) -> dict[str, str]:
    return dict(c.last_response_headers or {})


async def status_of(coro: Any) -> int:
    try:
        await coro
    except ccxt.DDoSProtection as exc:  # ccxt's class for HTTP 429 and 418
        return 418 if " 418 " in str(exc) else 429
    return 200


async def test_weight_is_per_ip_whatever_the_api_key(sandbox: SandboxServer) -> None:
    sandbox.ex.limiter.limits = Limits(weight_per_minute=200, weight_interval_s=DAY, violations_before_ban=100)
    a, b = (make_client(sandbox, sandbox.ex.add_account(dict(START_BALANCES))) for _ in range(2))
    try:
        await a.privateGetAccount()  # weight 20, key A
        used_a = int(headers(a)["X-MBX-USED-WEIGHT-1D"])
        await b.privateGetAccount()  # weight 20, key B, same IP: the same count
        assert int(headers(b)["X-MBX-USED-WEIGHT-1D"]) == used_a + 20
        while await status_of(a.privateGetAccount()) == 200:  # key A spends the IP's budget ...
            pass
        assert await status_of(b.privateGetAccount()) == 429  # ... and key B, which spent little, is refused too
        assert int(headers(b)["Retry-After"]) > 0
    finally:
        await a.close()
        await b.close()


async def test_spot_and_futures_weights_are_counted_apart(sandbox: SandboxServer, client: Any) -> None:
    sandbox.ex.limiter.limits = Limits(weight_per_minute=1_000_000, weight_interval_s=DAY)
    await client.privateGetAccount()
    spot = int(headers(client)["X-MBX-USED-WEIGHT-1D"])
    await client.fapiPrivateV2GetAccount()
    futures = int(headers(client)["X-MBX-USED-WEIGHT-1D"])
    assert spot >= 20 and futures < spot  # /fapi has a budget of its own (2400 a minute on Binance)
    info = await client.fapiPublicGetExchangeInfo()
    assert [(r["rateLimitType"], r["interval"], r["intervalNum"]) for r in info["rateLimits"]] == [
        ("REQUEST_WEIGHT", "DAY", 1),
        ("ORDERS", "SECOND", 10),
        ("ORDERS", "MINUTE", 1),
    ]
    assert info["rateLimits"][0]["limit"] == 400_000  # Binance's ratio 2400 / 6000 of the spot limit


async def test_new_orders_are_counted_per_account(sandbox: SandboxServer) -> None:
    sandbox.ex.limiter.limits = Limits(weight_per_minute=1_000_000, orders_per_10s=3, violations_before_ban=100)
    a, b = (make_client(sandbox, sandbox.ex.add_account(dict(START_BALANCES))) for _ in range(2))
    try:
        await a.load_markets()
        bid = (await a.fetch_order_book("BTC/USDT"))["bids"][0][0]
        counts = []
        for _ in range(10):  # until refused (an interval that ends on the way restarts the count)
            try:
                await a.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.9, 2))  # resting: unfilled
            except ccxt.DDoSProtection as exc:
                assert "-1015" in str(exc) and "Retry-After" not in headers(a)  # Binance sends none for this one
                break
            counts.append(int(headers(a)["X-MBX-ORDER-COUNT-10S"]))
            assert int(headers(a)["X-MBX-ORDER-COUNT-1D"]) >= 1
        assert counts[-1] == 3
        await a.fetch_order_book("BTC/USDT")
        assert "X-MBX-ORDER-COUNT-10S" not in headers(a)  # only on order answers
        await b.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.9, 2))  # same IP, other account: free
        assert int(headers(b)["X-MBX-ORDER-COUNT-10S"]) == 1
    finally:
        await a.close()
        await b.close()


async def test_a_spot_order_that_fills_leaves_the_unfilled_count(sandbox: SandboxServer, client: Any) -> None:
    bid = (await client.fetch_order_book("BTC/USDT"))["bids"][0][0]
    await client.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.9, 2))
    resting = int(headers(client)["X-MBX-ORDER-COUNT-1D"])
    await client.create_order("BTC/USDT", "market", "buy", 0.001)  # filled at once: off the count
    assert int(headers(client)["X-MBX-ORDER-COUNT-1D"]) == resting


async def test_intervals_are_clock_aligned_and_reset(sandbox: SandboxServer, client: Any) -> None:
    sandbox.ex.limiter.limits = Limits(weight_per_minute=50, weight_interval_s=1, violations_before_ban=100)
    while await status_of(client.privateGetAccount()) == 200:
        pass
    assert int(headers(client)["Retry-After"]) == 1  # the seconds left in the interval, rounded up

    async def accepted() -> bool:
        return await status_of(client.privateGetAccount()) == 200

    await wait_for(accepted, timeout=5)
    # the next interval starts from zero: 20, where a sliding window would still hold the second request (40)
    assert headers(client)["X-MBX-USED-WEIGHT-1S"] == "20"


async def test_repeated_429s_ban_the_ip_for_longer_each_time(sandbox: SandboxServer, client: Any) -> None:
    sandbox.ex.limiter.limits = Limits(weight_per_minute=100, weight_interval_s=DAY, violations_before_ban=2, ban_seconds=1)
    statuses = [await status_of(client.privateGetAccount()) for _ in range(8)]
    assert statuses[:5] == [200] * 5 and statuses[5:7] == [429, 429] and statuses[7] == 418
    assert headers(client)["Retry-After"] == "1"
    await wait_for(lambda: sandbox.ex.limiter.report(sandbox.ex.now_ms())["banned_until"] == {}, timeout=5)
    assert [await status_of(client.privateGetAccount()) for _ in range(3)] == [429, 429, 418]
    assert headers(client)["Retry-After"] == "2"  # a repeat offender's ban doubles (Binance: 2 minutes up to 3 days)
    report = sandbox.ex.limiter.report(sandbox.ex.now_ms())
    assert report["refused"] == {"429 weight": 4, "418": 2} and report["bans"] == {"127.0.0.1 api": 2}


@pytest.mark.parametrize("kind", ["spot", "linear"])
async def test_exchange_info_publishes_the_limits_enforced(sandbox: SandboxServer, client: Any, kind: str) -> None:
    sandbox.ex.limiter.limits = Limits(weight_per_minute=600, orders_per_10s=20, weight_interval_s=10)
    info = await (client.publicGetExchangeInfo() if kind == "spot" else client.fapiPublicGetExchangeInfo())
    limits = {(r["rateLimitType"], r["interval"], r["intervalNum"]): r["limit"] for r in info["rateLimits"]}
    if kind == "spot":
        assert limits == {("REQUEST_WEIGHT", "SECOND", 10): 600, ("ORDERS", "SECOND", 10): 20, ("ORDERS", "DAY", 1): 40_000}
    else:
        assert limits == {("REQUEST_WEIGHT", "SECOND", 10): 240, ("ORDERS", "SECOND", 10): 60, ("ORDERS", "MINUTE", 1): 240}
