"""One engine per strategy and account across store roots (issue 25): two engines of one strategy with different
store roots share nothing but the exchange. Before trading, orders that carry the strategy's identity but were not
placed by this engine refuse the start; while trading, they halt the strategy with a critical alert and are not
adopted; ``takeover`` adopts them once the other engine is gone. The exchange's state is read from the sandbox's
admin snapshot, before anything repairs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from planar_core.engine.lease import TwinEngineError
from planar_core.engine.sync import load_account
from planar_core.engine.twins import TAKEOVERS
from planar_core.model import OrderStatus, OrderType, Side

from ..conftest import wait_for

SYMBOL = "BTC/USDT"


def _orders(sandbox: Any, key: str) -> list[dict[str, Any]]:
    return list(sandbox.ex.snapshot()["accounts"][key]["orders"])


def _open(sandbox: Any, key: str) -> set[str]:
    return {o["client_order_id"] for o in sandbox.ex.snapshot()["accounts"][key]["open_orders"]}


async def _rest(s: Any) -> str:
    """One resting buy 20 % under the market; its client id."""
    ai = s.universe[SYMBOL]
    price = ai.last_price or float((await s.venue.ex.fetch_ticker(SYMBOL))["last"])
    before = set(ai.orders)
    await s.call(ai, OrderType.GTC, Side.BUY, amount=0.001, price=round(price * 0.8, 2), waitfor=0)
    (cid,) = set(ai.orders) - before
    assert ai.orders[cid].status is OrderStatus.OPEN
    return cid


def _watching(s: Any) -> bool:
    """The twin watch of ``s`` is subscribed to the account's order stream (or polling)."""
    h = s.supervisor.health.get("twins")
    return h is not None and h.mode in ("websocket", "polling") and h.last_update is not None


async def test_a_second_engine_from_another_store_root_is_refused_and_trades_nothing(
    strategy_factory: Any, sandbox: Any, account: Any, tmp_path: Path
) -> None:
    first = await strategy_factory("twin", store_root=str(tmp_path / "a"))
    cid = await _rest(first)
    second = await strategy_factory("twin", store_root=str(tmp_path / "b"), start=False)
    with pytest.raises(TwinEngineError) as refused:
        await second.start()
    msg = str(refused.value)
    assert cid in msg and SYMBOL in msg and "--takeover" in msg and "\n" not in msg
    assert not second.running
    # the exchange: nothing from the second engine, the first one's order untouched and still its own
    assert not [o for o in _orders(sandbox, account.api_key) if second.ids.issued_here(o["client_order_id"])]
    assert _open(sandbox, account.api_key) == {cid}
    assert first.universe[SYMBOL].orders[cid].is_open and not first.halted
    assert second.universe[SYMBOL].orders.get(cid) is None  # not adopted


async def test_takeover_adopts_the_orders_of_an_engine_that_is_gone(
    strategy_factory: Any, sandbox: Any, account: Any, tmp_path: Path
) -> None:
    first = await strategy_factory("twin", store_root=str(tmp_path / "a"))
    cids = {await _rest(first), await _rest(first)}
    epoch = first.ids.epoch
    await first.stop()  # gone (a clean stop leaves its orders resting)
    second = await strategy_factory("twin", store_root=str(tmp_path / "b"), start=False)
    await second.start(takeover=True)
    ai = second.universe[SYMBOL]
    assert {c for c, o in ai.orders.items() if o.is_open} == cids  # adopted as its own, nothing placed or cancelled
    assert _open(sandbox, account.api_key) == cids
    assert len(_orders(sandbox, account.api_key)) == 2
    assert epoch in json.loads((Path(second.config.shared_root) / TAKEOVERS).read_text())["epochs"]
    await second.stop()
    third = await strategy_factory("twin", store_root=str(tmp_path / "b"))  # later starts accept them without --takeover
    assert {c for c, o in third.universe[SYMBOL].orders.items() if o.is_open} == cids
    assert (await third.cancel_all(SYMBOL)).count == 2  # they are its own now
    await wait_for(lambda: not _open(sandbox, account.api_key), timeout=10)


async def test_an_engine_that_sees_its_identity_on_an_order_it_did_not_place_halts(
    strategy_factory: Any, sandbox: Any, account: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """Both engines start while neither has an order (the start-up check sees nothing); then the first one places
    an order. The second sees, on the account's order stream, an order of its identity that it did not place: it
    does not adopt it, halts and sends a critical alert. The first one sees nothing of the second (which placed
    nothing) and trades on."""
    first = await strategy_factory("twin", store_root=str(tmp_path / "a"))
    second = await strategy_factory("twin", store_root=str(tmp_path / "b"))
    alerts: list[tuple[str, str]] = []
    monkeypatch.setattr(second, "alert", lambda text, level="warning": alerts.append((level, text)))
    await wait_for(lambda: _watching(second), timeout=20)
    cid = await _rest(first)
    await wait_for(lambda: second.halted, timeout=30)
    assert [level for level, _ in alerts] == ["critical"] and cid in alerts[0][1] and SYMBOL in alerts[0][1]
    assert cid in (second.state.halt_reason or "")
    assert second.universe[SYMBOL].orders.get(cid) is None  # never adopted
    assert await second.call(SYMBOL, OrderType.GTC, Side.BUY, amount=0.001, price=1000.0, waitfor=0) is None  # halted: refused
    assert not first.halted and first.universe[SYMBOL].orders[cid].is_open
    assert _open(sandbox, account.api_key) == {cid}  # nobody cancelled it
    assert not [o for o in _orders(sandbox, account.api_key) if second.ids.issued_here(o["client_order_id"])]


async def test_a_copy_of_the_store_root_is_a_twin_and_a_helper_of_the_same_store_is_not(
    strategy_factory: Any, sandbox: Any, account: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """A copy of a store root issues ids of the same epoch: an order of this epoch that the journal and the trace
    do not know refuses the start. A helper process of the same store (an e-stop, a position close) journals its
    orders in the same journal: the running engine sees them as its own."""
    a, c = tmp_path / "a", tmp_path / "c"
    first = await strategy_factory("twin", store_root=str(a))
    helper = await strategy_factory("twin", store_root=str(a), start=False)  # same store, not an engine: no lease
    await load_account(helper)  # as the e-stop's helper process does: markets, balances, prices
    await _rest(first)  # the order task of the first engine watches the symbol from now on
    theirs = await _rest(helper)
    await wait_for(lambda: first.universe[SYMBOL].orders.get(theirs) is not None, timeout=20)  # adopted, no alarm
    assert not first.halted
    await first.stop()
    await helper.stop()
    shutil.copytree(a, c)  # the copy trades elsewhere
    clone = await strategy_factory("twin", store_root=str(c))
    assert clone.ids.epoch == first.ids.epoch
    copied = await _rest(clone)
    await clone.stop()
    again = await strategy_factory("twin", store_root=str(a), start=False)
    with pytest.raises(TwinEngineError, match=copied) as refused:
        await again.start()
    assert "this store's epoch" in str(refused.value)
