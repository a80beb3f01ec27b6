"""Balances are conserved across a random sequence of 1 000 orders sent through ccxt.

Per asset: final balance + fees paid - initial == net traded flow, where a buy
of q at p adds q base and removes q*p quote. Valued at fill prices the flows
cancel, so nothing is created or destroyed.
"""

from __future__ import annotations

import random
from decimal import Decimal

import ccxt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planar_core.sandbox import SandboxExchange
from planar_core.sandbox.server import SandboxServer

from .conftest import START_BALANCES

SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT", "ETH/BTC"]


def check_conservation(ex: SandboxExchange, key: str) -> None:
    acct = ex.accounts[key]
    flows: dict[str, Decimal] = {}
    for f in acct.fills:
        if f.kind != "spot":
            continue
        spec = ex.markets[("spot", f.symbol)].spec
        sign = 1 if f.side == "BUY" else -1
        flows[spec.base] = flows.get(spec.base, Decimal(0)) + sign * f.qty
        flows[spec.quote] = flows.get(spec.quote, Decimal(0)) - sign * f.qty * f.price
    for asset in set(acct.spot) | set(flows):
        free, locked = acct.balance(asset)
        open_locked = sum((o.locked for o in acct.orders.values() if o.is_open and o.locked_asset == asset), Decimal(0))
        assert locked == open_locked, asset
        assert free >= 0 and locked >= 0, asset
        initial = START_BALANCES.get(asset, Decimal(0))
        assert free + locked + acct.fees_paid.get(asset, Decimal(0)) - initial == flows.get(asset, Decimal(0)), asset


async def test_balances_conserved_over_1000_random_orders(client, sandbox: SandboxServer, account) -> None:
    rng = random.Random(1234)
    books = {s: await client.fetch_order_book(s) for s in SYMBOLS}
    placed = rejected = 0
    for i in range(1000):
        symbol = rng.choice(SYMBOLS)
        market = client.market(symbol)
        mid = (books[symbol]["bids"][0][0] + books[symbol]["asks"][0][0]) / 2
        side = rng.choice(["buy", "sell"])
        kind = rng.choice(["market", "limit", "limit", "ioc"])
        notional = rng.uniform(20, 400) if market["quote"] == "USDT" else rng.uniform(0.0005, 0.005)
        amount = float(client.amount_to_precision(symbol, notional / mid))
        price = float(client.price_to_precision(symbol, mid * rng.uniform(0.97, 1.03)))
        try:
            if kind == "market":
                await client.create_order(symbol, "market", side, amount)
            else:
                params = {"timeInForce": "IOC"} if kind == "ioc" else {}
                await client.create_order(symbol, "limit", side, amount, price, params=params)
            placed += 1
        except (ccxt.InsufficientFunds, ccxt.InvalidOrder, ccxt.BadRequest):
            rejected += 1
        if i % 97 == 0:  # let resting orders meet a moving path
            shock = rng.uniform(0.98, 1.02)
            for m in sandbox.ex.markets.values():
                m.shock = shock
            sandbox.ex.match_resting()
        if i % 250 == 0:
            check_conservation(sandbox.ex, account.api_key)
    check_conservation(sandbox.ex, account.api_key)
    assert placed > 800 and len(sandbox.ex.accounts[account.api_key].fills) > 300


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["BTCUSDT", "ETHBTC"]),
            st.sampled_from(["BUY", "SELL"]),
            st.sampled_from(["MARKET", "LIMIT"]),
            st.integers(1, 400),
            st.floats(0.95, 1.05),
        ),
        max_size=40,
    )
)
def test_conservation_property(orders) -> None:
    """The same invariant on the matching engine itself, over generated order sequences."""
    from planar_core.sandbox import errors

    ex = SandboxExchange(seed=3)
    acct = ex.add_account(dict(START_BALANCES))
    for symbol, side, otype, size, px in orders:
        m = ex.markets[("spot", symbol)]
        step, tick = m.spec.step_size, m.spec.tick_size
        qty = step * size * (100 if symbol == "ETHBTC" else 10)
        params = {"symbol": symbol, "side": side, "type": otype, "quantity": str(qty)}
        if otype == "LIMIT":
            price = (Decimal(repr(ex.mid(m) * px)) / tick).quantize(Decimal(1)) * tick
            params.update(price=str(price), timeInForce="GTC")
        try:
            ex.place_order(acct, "spot", params)
        except errors.ApiError:
            pass
        m.shock = px
        ex.match_resting()
    check_conservation(ex, acct.api_key)
