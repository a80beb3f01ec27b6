"""An order request's answer is applied before the user-stream reports that arrived while it was awaited
(exchange/answers_first.py); those reports are handled right after it, each at the place it took on arrival, and a
late answer holds them no longer than ``HOLD_MAX_S``. Binance's dialect (the Bybit client does not hold its
stream)."""

from __future__ import annotations

import pytest

from planar_core.exchange import answers_first
from planar_core.exchange.binance import StrictBinance
from planar_core.exchange.dialect import STAMP_KEY
from planar_core.model import PENDING, OrderType, Side
from planar_core.sandbox import Faults

from ..conftest import bid_ask, user_subscribed, wait_for


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The order reports the engine's ccxt client handles, in the order it handles them (stamped)."""
    handled: list[dict] = []
    original = StrictBinance.handle_order_update

    def spy(self: StrictBinance, client: object, message: dict) -> None:
        original(self, client, message)
        handled.append(message)

    monkeypatch.setattr(StrictBinance, "handle_order_update", spy)
    return handled


async def _unfilled_ioc(s, sandbox, account) -> str:
    await wait_for(lambda: user_subscribed(sandbox, account))
    bid, _ = bid_ask(sandbox)
    assert await s.call("BTC/USDT", OrderType.IOC, Side.BUY, amount=0.01, price=bid * 0.9, waitfor=0) is PENDING
    (order,) = s.universe["BTC/USDT"].orders.values()
    return order.client_order_id


async def test_the_answer_comes_before_the_stream_reports_that_arrived_with_it(strategy_factory, sandbox, account, monkeypatch) -> None:
    monkeypatch.setattr(answers_first, "HOLD_MAX_S", 60.0)  # no early release on a loaded machine
    s = await strategy_factory()
    handled = _spy(monkeypatch)
    sandbox.ex.faults = Faults(answer_delay_ms=300)  # the stream's NEW and EXPIRED arrive 300 ms before the answer
    cid = await _unfilled_ioc(s, sandbox, account)
    after_answer = s.venue.next_seq()
    assert not [m for m in handled if m.get("c") == cid]  # none handled before the answer was applied
    assert s.universe["BTC/USDT"].orders[cid].status == "expired"
    await wait_for(lambda: len([m for m in handled if m.get("c") == cid]) == 2)  # then both, in order
    mine = [m for m in handled if m.get("c") == cid]
    assert [m["X"] for m in mine] == ["NEW", "EXPIRED"]
    seqs = [m[STAMP_KEY]["seq"] for m in mine]
    assert seqs == sorted(seqs) and seqs[-1] < after_answer  # each keeps the place it took on arrival


async def test_a_late_answer_holds_the_stream_no_longer_than_the_cap(strategy_factory, sandbox, account, monkeypatch) -> None:
    monkeypatch.setattr(answers_first, "HOLD_MAX_S", 0.05)
    s = await strategy_factory()
    handled = _spy(monkeypatch)
    sandbox.ex.faults = Faults(answer_delay_ms=1000)  # far beyond the cap
    cid = await _unfilled_ioc(s, sandbox, account)
    assert [m["X"] for m in handled if m.get("c") == cid] == ["NEW", "EXPIRED"]  # handled while the answer was late


@pytest.mark.parametrize("delay_ms", [0, 300])
async def test_held_account_updates_still_settle_a_fill(strategy_factory, sandbox, account, monkeypatch, delay_ms: int) -> None:
    """A market buy's fill and the account update after it arrive while the answer is awaited: the fill reaches
    the balance the engine holds, as the exchange has it."""
    monkeypatch.setattr(answers_first, "HOLD_MAX_S", 60.0)
    s = await strategy_factory()
    await wait_for(lambda: user_subscribed(sandbox, account))
    sandbox.ex.faults = Faults(answer_delay_ms=delay_ms)
    before = s.cash("BTC").total
    trade = await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=5)
    assert trade is not None and trade is not PENDING
    await wait_for(lambda: s.cash("BTC").total == pytest.approx(before + 0.01 - 0.00001))
    assert s.freshness.confirmed(s.universe["BTC/USDT"], trade)
