"""The account emergency stop (issue 25): three strategies on one sandbox account, two engines running and one
stopped (known only from its lease file), a manual order and a futures stop waiting in the Algo Service. Every open
order of the account is cancelled and verified against the exchange's admin snapshot, each strategy is halted, the
report names what each one had open, and positions are closed when asked."""

from __future__ import annotations

from typing import Any

from planar_core.exchange.client_ids import identity_of
from planar_core.model import PENDING, OrderType, Side
from planar_core.risk.account_estop import FOREIGN, Member, owner_of
from planar_core.runner.account import account_emergency_stop_standalone, account_members
from planar_core.state import StateStore

from ..conftest import wait_for
from ..engine.test_order_call import bid_ask


def snap(sandbox: Any, account: Any) -> dict:
    return sandbox.ex.snapshot()["accounts"][account.api_key]


async def rest(s: Any, sandbox: Any, symbol: str, n: int, kind: str = "spot", amount: float = 0.001) -> None:
    bid, _ = bid_ask(sandbox, symbol.split(":")[0].replace("/", ""), kind)
    for i in range(n):
        assert await s.call(symbol, OrderType.GTC, Side.BUY, amount=amount, price=bid * (0.97 - i / 1000), waitfor=0) is PENDING


def test_owner_of_names_members_exactly() -> None:
    members = [Member("mm", "/x/mm"), Member("mm-eth", "/x/mm-eth")]
    assert owner_of(f"{identity_of('mm-eth')}-abc-1", members) == "mm-eth"
    assert owner_of(f"{identity_of('mm')}-abc-1", members) == "mm"
    assert owner_of(f"{identity_of('other')}-abc-1", members) == FOREIGN
    assert owner_of("by-hand", members) == FOREIGN and owner_of(None, members) == FOREIGN


async def test_account_estop_three_strategies(strategy_factory: Any, sandbox: Any, account: Any, client: Any) -> None:
    env = {"EXCHANGE_API_KEY": account.api_key, "EXCHANGE_API_SECRET": account.api_secret}
    spot = await strategy_factory(name="acct", universe=["BTC/USDT"])
    stopped = await strategy_factory(name="acct-b", universe=["ETH/USDT"])
    perp = await strategy_factory(name="acct-perp", margin=True, universe=["BTC/USDT:USDT"], default_leverage=5)
    await rest(spot, sandbox, "BTC/USDT", 3)
    await rest(stopped, sandbox, "ETH/USDT", 2, amount=0.01)
    await rest(perp, sandbox, "BTC/USDT:USDT", 2, "linear")
    assert await perp.call("BTC/USDT:USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=1) is not None
    bid, _ = bid_ask(sandbox, "BTCUSDT", "linear")
    assert await perp.call("BTC/USDT:USDT", OrderType.STOP_MARKET, Side.SELL, amount=0.01, trigger_price=bid * 0.9, waitfor=0) is PENDING
    await client.create_order(
        "ETH/USDT", "limit", "buy", 0.01, round(bid_ask(sandbox, "ETHUSDT")[0] * 0.9, 2), {"clientOrderId": "by-hand"}
    )
    await stopped.stop()  # its orders rest on; only its lease file says it traded this account
    view = snap(sandbox, account)
    assert len(view["open_orders"]) == 8 and [a["status"] for a in view["algo_orders"]] == ["NEW"]
    assert view["futures"]["positions"]

    members, _ = account_members(perp.account, [spot.config, perp.config], env=env)
    assert {m.name for m in members} == {"acct", "acct-b", "acct-perp"}  # acct-b from the store root's lease files
    report = await account_emergency_stop_standalone(perp.account, [spot.config, perp.config], "test", close_positions=True, env=env)

    view = snap(sandbox, account)  # the exchange's word, before anything re-syncs
    assert view["open_orders"] == [] and all(a["status"] != "NEW" for a in view["algo_orders"])
    assert view["futures"]["positions"] == {}
    assert float(view["spot_balances"]["BTC"]["free"]) < 0.001  # acct's spot universe sold
    assert report.clean, report.summary()
    owners = {k: sorted(o.client_order_id for o in v) for k, v in report.by_owner().items()}
    assert {k: len(v) for k, v in owners.items()} == {"acct": 3, "acct-b": 2, "acct-perp": 3, FOREIGN: 1}
    assert owners[FOREIGN] == ["by-hand"] and any(o.book == "futures algo" for o in report.by_owner()["acct-perp"])
    assert report.cancelled == 9 and "BTC/USDT:USDT" in report.closed
    for name in ("acct", "acct-b", "acct-perp"):
        st = StateStore(f"{spot.config.store_root}/{name}").load()
        assert st.halted and st.halted_by_emergency_stop and "account emergency stop" in (st.halt_reason or ""), name
    assert spot.halted and perp.halted
    assert await spot.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.001) is None  # a running engine trades no more
    assert "| acct-b | 2 |" in report.table() and report.summary().startswith("CLEAN")
    await wait_for(lambda: not perp.universe["BTC/USDT:USDT"].open_orders(), timeout=10)  # its engine saw the cancels

    again = await account_emergency_stop_standalone(perp.account, [spot.config, perp.config], "again", env=env)
    assert again.clean and again.cancelled == 0 and again.found == []  # idempotent
