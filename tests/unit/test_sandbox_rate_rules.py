"""The sandbox's request weights and order-count windows (sandbox/limits.py), driven with fixed timestamps: Binance's
documented weights, clock-aligned intervals, 429 then 418 with bans that double, per-IP weight and per-account
order counts."""

from __future__ import annotations

import pytest

from planar_core.sandbox.limits import DAY, MINUTE, SECOND, Interval, Limits, RateLimited, RateLimiter, family_of, interval_of, weight_of

MINUTE_START = 1_700_000_040_000  # a whole minute of the epoch
T0 = MINUTE_START + 40_000  # 40 s into it


# ------------------------------------------------------------------ weights
@pytest.mark.parametrize(
    ("method", "path", "query", "weight"),
    [
        ("GET", "/api/v3/exchangeInfo", {}, 20),
        ("GET", "/api/v3/order", {"symbol": "BTCUSDT"}, 4),
        ("DELETE", "/api/v3/order", {"symbol": "BTCUSDT"}, 1),  # the GET weight is the GET's only
        ("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}, 6),
        ("GET", "/api/v3/openOrders", {}, 80),  # all symbols
        ("GET", "/fapi/v1/openOrders", {}, 40),
        ("GET", "/api/v3/ticker/price", {"symbols": '["BTCUSDT"]'}, 2),
        ("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}, 0),  # new futures orders count on the order limits only
        ("GET", "/api/v3/nothing-documented", {}, 1),
    ],
)
def test_weights_as_binance_documents_them(method: str, path: str, query: dict[str, str], weight: int) -> None:
    assert weight_of(method, path, query) == weight


@pytest.mark.parametrize(
    ("path", "limit", "weight"),
    [
        ("/api/v3/depth", None, 5),  # default limit 100
        ("/api/v3/depth", "100", 5),
        ("/api/v3/depth", "101", 25),
        ("/api/v3/depth", "5000", 250),
        ("/api/v3/depth", "9999", 250),  # past the table: its heaviest weight
        ("/api/v3/depth", "abc", 5),  # unreadable: the default limit's weight
        ("/fapi/v1/klines", "99", 1),
        ("/fapi/v1/klines", "100", 2),
        ("/fapi/v1/klines", None, 5),  # default limit 500
        ("/fapi/v1/klines", "1500", 10),
    ],
)
def test_depth_and_kline_weights_grow_with_the_limit_asked(path: str, limit: str | None, weight: int) -> None:
    assert weight_of("GET", path, {} if limit is None else {"limit": limit}) == weight


def test_each_api_has_its_own_budget() -> None:
    paths = ("/api/v3/order", "/fapi/v1/order", "/sapi/v1/x", "/dapi/v1/exchangeInfo", "/eapi/v1/exchangeInfo", "/admin/x")
    assert [family_of(p) for p in paths] == ["api", "fapi", "sapi", "dapi", "eapi", "api"]


def test_what_a_mainnet_configured_ccxt_loads_weighs_as_binance_documents() -> None:
    """ccxt's load_markets without the sandbox flag (docs/sandbox.md, "Clients configured as for mainnet")."""
    paths = ("margin/allPairs", "margin/isolated/allPairs", "capital/config/getall")
    assert [weight_of("GET", f"/sapi/v1/{p}") for p in paths] == [1, 10, 10]
    assert weight_of("GET", "/dapi/v1/exchangeInfo") == weight_of("GET", "/eapi/v1/exchangeInfo") == 1


# ------------------------------------------------------------------ intervals
@pytest.mark.parametrize(
    ("span", "name"),
    [(10 * SECOND, ("SECOND", 10, "10S")), (MINUTE, ("MINUTE", 1, "1M")), (3_600_000, ("HOUR", 1, "1H")), (DAY, ("DAY", 1, "1D"))],
)
def test_interval_names(span: int, name: tuple[str, int, str]) -> None:
    assert interval_of(span) == name


def test_an_interval_of_part_of_a_second_has_no_name() -> None:
    with pytest.raises(ValueError, match="1500 ms"):
        interval_of(1500)


def test_an_interval_is_clock_aligned_not_sliding() -> None:
    win = Interval(MINUTE)
    win.add(MINUTE_START + MINUTE - 1, 7)  # the last millisecond of a minute
    assert win.used(MINUTE_START + MINUTE - 1) == 7
    assert win.used(MINUTE_START + MINUTE) == 0  # the next minute starts from zero, one millisecond later
    assert win.left_ms(MINUTE_START + 15_000) == 45_000


# ------------------------------------------------------------------ published limits
def test_futures_limits_default_to_binance_ratios_of_the_spot_ones() -> None:
    limits = Limits()
    assert (limits.weight_limit("api"), limits.weight_limit("fapi"), limits.weight_limit("sapi")) == (6000, 2400, 12_000)
    assert limits.order_limits("api") == {10 * SECOND: 100, DAY: 200_000}
    assert limits.order_limits("fapi") == {10 * SECOND: 300, MINUTE: 1200}
    assert Limits(futures_weight_per_minute=999).weight_limit("fapi") == 999
    assert limits.weight_limit("dapi") == limits.weight_limit("eapi") == 2400  # COIN-M and options: as USDⓈ-M
    assert limits.order_limits("dapi") == limits.order_limits("eapi") == {MINUTE: 1200}


def test_exchange_info_rate_limits_say_what_is_enforced() -> None:
    limits = Limits(weight_per_minute=1000, orders_per_10s=7, weight_interval_s=10)
    assert limits.rate_limits("linear") == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": 10, "limit": 400},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 21},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 84},
    ]


def test_a_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="weight_per_minute"):
        Limits(weight_per_minute=0)


# ------------------------------------------------------------------ weight: 429 then 418
def refused(call: object, *args: object) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        call(*args)  # type: ignore[operator]
    return info.value


def test_weight_up_to_the_limit_passes_and_one_more_is_a_429_until_the_minute_ends() -> None:
    rl = RateLimiter(Limits(weight_per_minute=10))
    assert rl.charge("1.1.1.1", "api", 10, T0) == 10
    err = refused(rl.charge, "1.1.1.1", "api", 1, T0)
    assert (err.status, err.code, err.retry_after_s) == (429, -1003, 20)  # 20 s left in the minute
    assert "10 request weight per 1M" in err.msg
    assert rl.charge("1.1.1.1", "api", 1, MINUTE_START + MINUTE) == 1
    assert rl.refused["429 weight"] == 1


def test_weight_is_counted_per_ip_and_per_api() -> None:
    rl = RateLimiter(Limits(weight_per_minute=10))
    rl.charge("1.1.1.1", "api", 10, T0)
    assert rl.charge("2.2.2.2", "api", 10, T0) == 10  # another IP
    assert rl.charge("1.1.1.1", "fapi", 4, T0) == 4  # another API (its limit: 4)
    assert rl.used_weight("1.1.1.1", T0) == 10


def test_repeated_429s_within_a_minute_ban_the_ip_and_each_ban_doubles() -> None:
    rl = RateLimiter(Limits(weight_per_minute=1, violations_before_ban=3, ban_seconds=120))
    rl.charge("ip", "api", 1, T0)
    for _ in range(3):
        refused(rl.charge, "ip", "api", 1, T0)
    ban = refused(rl.charge, "ip", "api", 1, T0 + 1)
    assert (ban.status, ban.retry_after_s) == (418, 120)
    after = T0 + 120_000
    for i in range(3):  # the next minute's budget is spent again, then three more 429s
        if i == 0:
            rl.charge("ip", "api", 1, after)
        refused(rl.charge, "ip", "api", 1, after)
    assert refused(rl.charge, "ip", "api", 1, after).retry_after_s == 240
    assert rl.bans[("ip", "api")] == 2 and rl.refused["418"] == 2


@pytest.mark.parametrize(("earlier_bans", "seconds"), [(0, 100), (3, 800), (4, 1000), (20, 1000)])
def test_a_repeat_offender_is_banned_twice_as_long_each_time_up_to_the_longest(earlier_bans: int, seconds: int) -> None:
    rl = RateLimiter(Limits(weight_per_minute=1, violations_before_ban=1, ban_seconds=100, ban_max_seconds=1000))
    rl.bans[("ip", "api")] = earlier_bans
    rl.charge("ip", "api", 1, T0)
    refused(rl.charge, "ip", "api", 1, T0)
    assert rl.banned_until[("ip", "api")] == T0 + seconds * 1000


def test_429s_more_than_a_minute_apart_never_add_up_to_a_ban() -> None:
    rl = RateLimiter(Limits(weight_per_minute=1, violations_before_ban=2))
    for k in range(4):
        now = T0 + k * (MINUTE + 1)
        rl.charge("ip", "api", 1, now)
        assert refused(rl.charge, "ip", "api", 1, now).status == 429
    assert not rl.bans


def test_sapi_answers_429_and_never_bans() -> None:
    rl = RateLimiter(Limits(weight_per_minute=1, violations_before_ban=1))
    rl.charge("ip", "sapi", 2, T0)  # sapi: twice the spot limit
    for _ in range(3):
        assert refused(rl.charge, "ip", "sapi", 1, T0).status == 429
    assert not rl.banned_until
    assert rl.weight_header("sapi") == "X-SAPI-USED-IP-WEIGHT-1M" and rl.weight_header("api") == "X-MBX-USED-WEIGHT-1M"


@pytest.mark.parametrize(("left_ms", "seconds"), [(1, 1), (1000, 1), (1001, 2), (59_999, 60)])
def test_retry_after_rounds_up_to_whole_seconds(left_ms: int, seconds: int) -> None:
    assert RateLimited(429, -1003, "x", left_ms).retry_after_s == seconds


# ------------------------------------------------------------------ order counts
def test_new_orders_are_counted_per_account_across_ips_with_no_retry_after() -> None:
    rl = RateLimiter(Limits(orders_per_10s=2))
    rl.charge_order("acct", "api", "1.1.1.1", T0)
    rl.charge_order("acct", "api", "2.2.2.2", T0)
    err = refused(rl.charge_order, "acct", "api", "3.3.3.3", T0)
    assert (err.status, err.code, err.retry_after_s) == (429, -1015, None)
    assert "2 orders per 10S" in err.msg
    rl.charge_order("other", "api", "1.1.1.1", T0)  # another account is not affected
    rl.charge_order("acct", "api", "1.1.1.1", T0 + 10 * SECOND)  # the next 10-second interval


def test_an_oco_list_counts_two_orders_and_is_refused_whole() -> None:
    rl = RateLimiter(Limits(orders_per_10s=3))
    rl.charge_order("acct", "api", "ip", T0, count=2)
    refused(rl.charge_order, "acct", "api", "ip", T0, 2)
    assert rl.used_orders("acct", T0) == 2


def test_spot_counts_unfilled_orders_a_first_fill_takes_one_off() -> None:
    rl = RateLimiter(Limits(orders_per_10s=5))
    rl.charge_order("acct", "api", "ip", T0, count=2)
    rl.order_filled("acct", "api", T0)
    assert rl.used_orders("acct", T0) == 1 and rl.used_orders("acct", T0, span_ms=DAY) == 1
    rl.order_filled("acct", "api", T0)
    rl.order_filled("acct", "api", T0)
    assert rl.used_orders("acct", T0) == 0  # never below zero


def test_futures_keep_counting_filled_orders() -> None:
    rl = RateLimiter(Limits(orders_per_10s=5))
    rl.charge_order("acct", "fapi", "ip", T0)
    rl.order_filled("acct", "fapi", T0)
    assert rl.order_headers("acct", "fapi", T0) == {"X-MBX-ORDER-COUNT-10S": "1", "X-MBX-ORDER-COUNT-1M": "1"}
