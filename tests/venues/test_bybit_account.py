"""The engine on a Bybit account (issue 29, item 3): funding settlements, a liquidation, the account-wide
emergency stop and a strategy's own e-stop beside another strategy, on the Bybit v5 dialect of the sandbox over real
HTTP/websocket with unmodified ccxt; every check against the exchange's own state before anything resyncs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from planar_core.engine.margin import sync_funding
from planar_core.exchange.bybit import BYBIT
from planar_core.model import PENDING, OrderStatus, OrderType, Side, Trade
from planar_core.risk.account_estop import FOREIGN
from planar_core.runner.account import account_emergency_stop_standalone
from planar_core.runner.host import status
from planar_core.sandbox.accounts import Account
from planar_core.sandbox.bybit import BybitServer, wire
from planar_core.state import StateStore

from ..conftest import START_BALANCES, make_bybit_client, wait_for
from ..orders.test_conditional import shock

PERP = "BTC/USDT:USDT"


@pytest.fixture
def trader(bybit_sandbox: BybitServer) -> Account:
    return bybit_sandbox.ex.add_account(dict(START_BALANCES))


@pytest.fixture
async def bybit_strategy(bybit_sandbox: BybitServer, trader: Account, tmp_path: Any) -> AsyncIterator[Any]:
    from planar_core.engine import strategy as build

    made: list[Any] = []

    async def factory(name: str, **overrides: Any) -> Any:
        overrides.setdefault("store_root", str(tmp_path / "store"))
        overrides.setdefault("sandbox_endpoint", {"url": bybit_sandbox.url, "ws_url": bybit_sandbox.ws_url})
        overrides.setdefault("connection", {"health_interval": 3600})
        s = build(name, env=env_of(trader), exchange="bybit", **overrides)
        made.append(s)
        await s.start()
        return s

    yield factory
    for s in made:
        await s.stop()


def env_of(acct: Account) -> dict[str, str]:
    return {"EXCHANGE_API_KEY": acct.api_key, "EXCHANGE_API_SECRET": acct.api_secret}


def view(server: BybitServer, acct: Account) -> dict:
    return server.ex.snapshot()["accounts"][acct.api_key]


def unified_usdt(server: BybitServer, acct: Account) -> float:
    """USDT's wallet balance on the unified account, from the exchange's state: spot USDT plus what futures trading
    and funding added to (or took from) the USDT the futures wallet started with."""
    v = view(server, acct)
    spot = v["spot_balances"]["USDT"]
    return float(Decimal(spot["free"]) + Decimal(spot["locked"]) + Decimal(v["futures"]["wallet"]) - acct.futures_deposit)


def subscribed(server: BybitServer, acct: Account, topic: str) -> bool:
    """The account's private connection has subscribed to ``topic`` (what a test waits on, not a sleep)."""
    return any(c.kind == "private" and acct.api_key in c.users and topic in c.streams for c in server.hub.conns)


def bid(server: BybitServer, symbol: str = "BTCUSDT", kind: str = "spot") -> float:
    (price, _), _ = server.ex.best_bid_ask(server.ex.markets[(kind, symbol)])
    return float(price)


async def settle_funding(server: BybitServer, rate: float) -> None:
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{server.url}/admin/funding", json={"symbol": "BTCUSDT", "rate": rate})
        assert r.status == 200, await r.text()


def events(s: Any, kind: str) -> list[dict]:
    return [e for e in s.sink.events if e["kind"] == kind]


async def rest(s: Any, server: BybitServer, symbol: str, n: int, kind: str = "spot", amount: float = 0.001) -> set[str]:
    """``n`` resting buys of ``s`` well below the market; their client ids."""
    before = {o.client_order_id for o in s.universe[symbol].open_orders()}
    price = bid(server, symbol.split(":")[0].replace("/", ""), kind)
    for i in range(n):
        assert await s.call(symbol, OrderType.GTC, Side.BUY, amount=amount, price=price * (0.97 - i / 1000), waitfor=0) is PENDING
    return {o.client_order_id for o in s.universe[symbol].open_orders()} - before


# ---------------------------------------------------------------------------------------------- funding
async def test_funding_settlements_are_booked_once_each_with_their_sign(bybit_strategy, bybit_sandbox, trader) -> None:
    """A settlement comes as a ``Funding`` execution beside the wallet update: the engine reads the settlements
    at once (the positions watcher's own reading is an hour away here), books each once with what the account
    received (< 0: paid; ccxt's Bybit amount is what it paid), and its wallet is the exchange's."""
    s = await bybit_strategy("perp", margin=True, universe=[PERP], default_leverage=5, position_watcher={"verify_interval": 3600})
    ai = s.universe[PERP]
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.02, waitfor=5), Trade)
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.02), timeout=10)
    await wait_for(lambda: subscribed(bybit_sandbox, trader, "execution") and subscribed(bybit_sandbox, trader, "wallet"), timeout=10)

    await settle_funding(bybit_sandbox, 0.001)  # a long pays a positive rate
    await settle_funding(bybit_sandbox, -0.0005)  # and receives a negative one
    booked = [i for i in trader.income if i.kind == "FUNDING_FEE"]
    assert [i.amount < 0 for i in booked] == [True, False]
    await wait_for(lambda: len(events(s, "funding_paid")) == 2, timeout=10)
    paid = {e["trade_id"]: e["amount"] for e in events(s, "funding_paid")}
    assert paid == {str(i.tran_id): pytest.approx(float(i.amount)) for i in booked}
    total = float(sum(i.amount for i in booked))
    assert s.holdings.funding.by_symbol[PERP] == pytest.approx(total) and status(s)["funding"] == pytest.approx(total)
    await wait_for(lambda: s.cash("USDT").total == pytest.approx(unified_usdt(bybit_sandbox, trader)), timeout=10)
    assert await sync_funding(s) == 0  # asked again: nothing booked twice


async def test_funding_is_read_in_bybits_seven_day_windows(bybit_strategy, bybit_sandbox, trader) -> None:
    """Bybit answers at most 7 days of executions a request, the 7 days from ``startTime`` when no end is given:
    the venue reads an older ``since`` window by window up to now, and every page of each."""
    s = await bybit_strategy("perp", margin=True, universe=[PERP], default_leverage=5, position_watcher={"verify_interval": 3600})
    assert isinstance(await s.call(PERP, OrderType.MARKET, Side.BUY, amount=0.02, waitfor=5), Trade)
    await wait_for(lambda: s.universe[PERP].position.contracts == pytest.approx(0.02), timeout=10)
    for k in range(60):  # more than a page (50 rows)
        await settle_funding(bybit_sandbox, 0.0001 * (1 + k % 3))
    month_ago = bybit_sandbox.ex.now_ms() - 30 * 86_400_000
    payments = await s.venue.funding_history(month_ago, timeout=10)
    assert sorted(p.id or "" for p in payments) == sorted(str(i.tran_id) for i in trader.income if i.kind == "FUNDING_FEE")
    assert sum(p.amount for p in payments) == pytest.approx(float(sum(i.amount for i in trader.income)))


# ---------------------------------------------------------------------------------------------- liquidation
def test_forced_closes_are_read_from_create_type() -> None:
    """Bybit's forced closes by ``createType``: laddered liquidation, the liquidation engine's takeover, and
    auto-deleveraging; anything else is nobody's forced close."""
    kinds = {
        "CreateByLiq": "liquidation",
        "CreateByTakeOver_PassThrough": "liquidation",
        "CreateByAdl_PassThrough": "adl",
        "CreateByUser": None,
        "CreateByStopOrder": None,
    }
    assert {k: BYBIT.forced_close({"info": {"createType": k}}) for k in kinds} == kinds


async def test_a_liquidation_is_a_forced_close_and_the_position_and_wallet_match(bybit_strategy, bybit_sandbox, trader) -> None:
    s = await bybit_strategy("perp", margin=True, universe=[PERP], margin_mode="isolated", default_leverage=50)
    ai = s.universe[PERP]
    ai.last_price = await shock(bybit_sandbox, "BTCUSDT", 1.0, "linear")
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.05, waitfor=5), Trade)
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.05), timeout=10)
    await shock(bybit_sandbox, "BTCUSDT", 0.97, "linear")  # 3 % down at 50x isolated: past maintenance
    liq = next(o for o in view(bybit_sandbox, trader)["orders"] if o["type"] == "LIQUIDATION")
    assert "BTCUSDT" not in view(bybit_sandbox, trader)["futures"]["positions"]
    await wait_for(lambda: bool(events(s, "forced_close")), timeout=15)
    (forced,) = events(s, "forced_close")
    # the exchange's order, named by its id (Bybit shows no orderLinkId for it)
    assert (forced["client_order_id"], forced["reason"], forced["side"]) == (f"ext-{liq['order_id']}", "liquidation", "sell")
    assert forced["amount"] == pytest.approx(float(liq["qty"]))
    await wait_for(lambda: not ai.position.contracts, timeout=10)
    await wait_for(lambda: s.cash("USDT").total == pytest.approx(unified_usdt(bybit_sandbox, trader)), timeout=10)


# ---------------------------------------------------------------------------------------------- emergency stops
async def test_account_estop_cancels_every_order_of_the_account_spot_and_linear(bybit_strategy, bybit_sandbox, trader) -> None:
    """Two strategies (spot, linear) and orders by hand (a spot limit and a spot stop, which Bybit's cancel-all
    leaves unless asked for stops by name): every open order of the account, the linear stop still waiting too,
    is cancelled and verified, positions are closed, each strategy is halted."""
    spot = await bybit_strategy("acct", universe=["BTC/USDT"], risk={"estop_budget_s": 10.0})
    perp = await bybit_strategy("acct-perp", margin=True, universe=[PERP], default_leverage=5)
    await rest(spot, bybit_sandbox, "BTC/USDT", 3)
    await rest(perp, bybit_sandbox, PERP, 2, "linear")
    assert isinstance(await perp.call(PERP, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=5), Trade)
    trigger = bid(bybit_sandbox, "BTCUSDT", "linear") * 0.9
    assert (
        await perp.call(PERP, OrderType.STOP_MARKET, Side.SELL, amount=0.01, trigger_price=trigger, reduce_only=True, waitfor=0) is PENDING
    )
    raw = make_bybit_client(bybit_sandbox, trader)
    try:
        await raw.load_markets()
        eth = round(bid(bybit_sandbox, "ETHUSDT") * 0.9, 2)
        await raw.create_order("ETH/USDT", "limit", "buy", 0.01, eth, {"orderLinkId": "by-hand"})
        await raw.create_order("ETH/USDT", "limit", "buy", 0.01, eth, {"orderLinkId": "by-hand-stop", "triggerPrice": eth * 1.2})
    finally:
        await raw.close()
    v = view(bybit_sandbox, trader)
    assert len(v["open_orders"]) == 7 and [a["status"] for a in v["algo_orders"]] == ["NEW"] and v["futures"]["positions"]

    configs = [spot.config, perp.config]
    report = await account_emergency_stop_standalone(perp.account, configs, "test", close_positions=True, env=env_of(trader))

    v = view(bybit_sandbox, trader)  # the exchange's word, before anything resyncs
    assert v["open_orders"] == [] and all(a["status"] != "NEW" for a in v["algo_orders"])
    assert v["futures"]["positions"] == {}
    assert float(v["spot_balances"]["BTC"]["free"]) < 0.001  # acct's spot universe sold
    assert report.clean, report.summary()
    owners = {k: sorted(o.client_order_id for o in orders) for k, orders in report.by_owner().items()}
    assert {k: len(v) for k, v in owners.items()} == {"acct": 3, "acct-perp": 3, FOREIGN: 2}
    assert owners[FOREIGN] == ["by-hand", "by-hand-stop"] and report.cancelled == 8 and PERP in report.closed
    for name in ("acct", "acct-perp"):
        st = StateStore(f"{spot.config.store_root}/{name}").load()
        assert st.halted and st.halted_by_emergency_stop, name
    await wait_for(lambda: spot.halted and perp.halted, timeout=10)
    again = await account_emergency_stop_standalone(perp.account, configs, "again", env=env_of(trader))
    assert again.clean and again.found == []  # idempotent


async def test_every_position_of_the_account_is_read_past_the_first_page(bybit_strategy, bybit_sandbox, trader, monkeypatch) -> None:
    """Bybit lists an account's positions a page at a time (200 rows at most, the page size ccxt asks for) with a
    cursor to the next page. Here a page is one row and the account holds three positions, two of them opened by
    hand: the engine's reading of every position has all three (the first page alone had one), and the account
    e-stop closes them."""
    from planar_core.exchange.bybit import StrictBybit

    monkeypatch.setattr(StrictBybit, "positions_page", 1)
    perp = await bybit_strategy("pages", margin=True, universe=[PERP], default_leverage=5)
    assert isinstance(await perp.call(PERP, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=5), Trade)
    raw = make_bybit_client(bybit_sandbox, trader)
    try:
        await raw.load_markets()
        for symbol, linear in (("ETH/USDT:USDT", "ETHUSDT"), ("XRP/USDT:USDT", "XRPUSDT")):
            await raw.create_order(
                symbol, "market", "buy", float(raw.amount_to_precision(symbol, 150 / bid(bybit_sandbox, linear, "linear")))
            )
    finally:
        await raw.close()
    assert len(view(bybit_sandbox, trader)["futures"]["positions"]) == 3
    assert len(await perp.venue.positions(None, timeout=10)) == 3  # every page, each of one row

    report = await account_emergency_stop_standalone(perp.account, [perp.config], "test", close_positions=True, env=env_of(trader))

    assert view(bybit_sandbox, trader)["futures"]["positions"] == {}  # the exchange's word, before anything resyncs
    assert report.clean, report.summary()


async def test_a_strategys_estop_leaves_another_strategys_orders_alone(bybit_strategy, bybit_sandbox, trader) -> None:
    """Two strategies on one Bybit account and one USDT perpetual, each with resting orders and a stop waiting for
    its trigger: one's e-stop cancels its own orders (by id, never Bybit's cancel-all) and the other's stay open, on
    the exchange and in its engine."""
    mm = await bybit_strategy("mm", universe=[PERP], margin=True, default_leverage=5, risk={"estop_budget_s": 10.0})
    other = await bybit_strategy("mm-other", universe=[PERP], margin=True, default_leverage=5)
    trigger = bid(bybit_sandbox, "BTCUSDT", "linear") * 1.1
    ids: dict[str, set[str]] = {}
    for s, n in ((mm, 3), (other, 2)):
        ids[s.name] = await rest(s, bybit_sandbox, PERP, n, "linear")
        assert await s.call(PERP, OrderType.STOP_MARKET, Side.BUY, amount=0.001, trigger_price=trigger, waitfor=0) is PENDING
        ids[s.name] = {o.client_order_id for o in s.universe[PERP].open_orders()}
    v = view(bybit_sandbox, trader)
    assert {o["client_order_id"] for o in v["open_orders"]} | {a["client_algo_id"] for a in v["algo_orders"]} == ids["mm"] | ids["mm-other"]
    calls = len(mm.sink.of("api_call"))
    report = await mm.emergency_stop("test: one strategy of two")
    v = view(bybit_sandbox, trader)  # before any resync
    live = {o["client_order_id"] for o in v["open_orders"]} | {a["client_algo_id"] for a in v["algo_orders"] if a["status"] == "NEW"}
    assert live == ids["mm-other"]
    assert report.clean and report.cancelled == 4, report
    assert "cancel_all_orders" not in [e["endpoint"] for e in mm.sink.of("api_call")[calls:]]
    assert mm.halted and not other.halted
    held = {o.client_order_id: o.status for o in other.universe[PERP].orders.values()}
    assert held == dict.fromkeys(ids["mm-other"], OrderStatus.OPEN)


async def test_a_linear_strategys_free_margin_counts_what_spot_orders_lock(bybit_strategy, bybit_sandbox, trader) -> None:
    """The unified account is one wallet: a spot buy resting on it (another program's) locks USDT that linear orders
    cannot use. The linear strategy's free margin is the wallet less the margin of orders and positions and the
    spot lock; it left the lock out, so its local check passed orders the exchange refused (110007, an outside
    trial)."""
    s = await bybit_strategy("perp", margin=True, universe=[PERP], default_leverage=5)
    other = make_bybit_client(bybit_sandbox, trader)
    try:
        await other.load_markets()
        ask = (await other.fetch_ticker("BTC/USDT"))["ask"]
        await other.create_order("BTC/USDT", "limit", "buy", 0.5, round(ask * 0.97, 1))
    finally:
        await other.close()
    (usdt,) = [c for c in wire.unified_coins(bybit_sandbox.ex, trader) if c["coin"] == "USDT"]
    locked = float(usdt["locked"])
    assert locked > 0
    await s.fetch_balances()
    free = float(usdt["walletBalance"]) - float(usdt["totalOrderIM"]) - float(usdt["totalPositionIM"]) - locked
    assert s.cash("USDT").free == pytest.approx(free) and s.cash("USDT").total == pytest.approx(float(usdt["walletBalance"]))
