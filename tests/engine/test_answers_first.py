"""An order request's answer is applied before the user-stream reports that arrived while it was awaited
(exchange/answers_first.py); those reports are handled right after it, each at the place it took on arrival, and a
late answer holds them no longer than ``HOLD_MAX_S``. On both venues: Binance's user stream and Bybit's private
topics."""

from __future__ import annotations

import pytest

from planar_core.exchange import answers_first
from planar_core.exchange.binance import StrictBinance
from planar_core.exchange.bybit import StrictBybit
from planar_core.exchange.dialect import STAMP_KEY
from planar_core.model import PENDING, OrderType, Side
from planar_core.sandbox import Faults

from ..conftest import bid_ask, user_subscribed, venue_of, wait_for

pytestmark = pytest.mark.venues()

# an IOC buy far under the market, as each venue's stream reports it: accepted, then ended unfilled
UNFILLED_IOC = {"binance": ["NEW", "EXPIRED"], "bybit": ["New", "Cancelled"]}
# what its answer alone tells: Binance's says how it ended, Bybit's only that it was accepted
ANSWERED = {"binance": "expired", "bybit": "open"}


def _spy(monkeypatch: pytest.MonkeyPatch, venue: str) -> list[tuple[str, str, int]]:
    """The order reports the engine's ccxt client handles, in the order it handles them: (client order id, the
    exchange's status, the stamp's place in the sequence)."""
    handled: list[tuple[str, str, int]] = []
    if venue == "binance":
        original = StrictBinance.handle_order_update

        def spy(self: StrictBinance, client: object, message: dict) -> None:
            original(self, client, message)
            handled.append((message.get("c", ""), message.get("X", ""), message[STAMP_KEY]["seq"]))

        monkeypatch.setattr(StrictBinance, "handle_order_update", spy)
    else:
        original_bybit = StrictBybit.handle_order

        def spy_bybit(self: StrictBybit, client: object, message: dict) -> None:
            original_bybit(self, client, message)
            for row in message.get("data") or []:
                handled.append((row.get("orderLinkId", ""), row.get("orderStatus", ""), row[STAMP_KEY]["seq"]))

        monkeypatch.setattr(StrictBybit, "handle_order", spy_bybit)
    return handled


async def _unfilled_ioc(s, sandbox, account) -> str:
    await wait_for(lambda: user_subscribed(sandbox, account))
    bid, _ = bid_ask(sandbox)
    assert await s.call("BTC/USDT", OrderType.IOC, Side.BUY, amount=0.01, price=round(bid * 0.9, 2), waitfor=0) is PENDING
    (order,) = s.universe["BTC/USDT"].orders.values()
    return order.client_order_id


async def test_the_answer_comes_before_the_stream_reports_that_arrived_with_it(strategy_factory, sandbox, account, monkeypatch) -> None:
    monkeypatch.setattr(answers_first, "HOLD_MAX_S", 60.0)  # no early release on a loaded machine
    s = await strategy_factory()
    venue = venue_of(sandbox)
    handled = _spy(monkeypatch, venue)
    sandbox.ex.faults = Faults(answer_delay_ms=300)  # the stream's reports arrive 300 ms before the answer
    cid = await _unfilled_ioc(s, sandbox, account)
    after_answer = s.venue.next_seq()
    assert not [h for h in handled if h[0] == cid]  # none handled before the answer was applied
    order = s.universe["BTC/USDT"].orders[cid]
    assert order.status == ANSWERED[venue]
    await wait_for(lambda: len([h for h in handled if h[0] == cid]) == 2)  # then both, in order
    await wait_for(lambda: not order.is_open)  # the stream told the engine how it ended
    mine = [h for h in handled if h[0] == cid]
    assert [h[1] for h in mine] == UNFILLED_IOC[venue]
    seqs = [h[2] for h in mine]
    assert seqs == sorted(seqs) and seqs[-1] < after_answer  # each keeps the place it took on arrival


async def test_a_late_answer_holds_the_stream_no_longer_than_the_cap(strategy_factory, sandbox, account, monkeypatch) -> None:
    monkeypatch.setattr(answers_first, "HOLD_MAX_S", 0.05)
    s = await strategy_factory()
    venue = venue_of(sandbox)
    handled = _spy(monkeypatch, venue)
    sandbox.ex.faults = Faults(answer_delay_ms=1000)  # far beyond the cap
    cid = await _unfilled_ioc(s, sandbox, account)
    assert [h[1] for h in handled if h[0] == cid] == UNFILLED_IOC[venue]  # handled while the answer was late


@pytest.mark.parametrize("delay_ms", [0, 300])
async def test_held_account_updates_still_settle_a_fill(strategy_factory, sandbox, account, monkeypatch, delay_ms: int) -> None:
    """A market buy's fill and the account update after it arrive while the answer is awaited: the fill reaches
    the balance the engine holds, as the exchange has it."""
    monkeypatch.setattr(answers_first, "HOLD_MAX_S", 60.0)
    s = await strategy_factory()
    await wait_for(lambda: user_subscribed(sandbox, account))
    sandbox.ex.faults = Faults(answer_delay_ms=delay_ms)
    trade = await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=5)
    assert trade is not None and trade is not PENDING
    await wait_for(lambda: s.cash("BTC").total == pytest.approx(float(sum(account.spot["BTC"]))))  # the exchange's own figure
    assert s.freshness.confirmed(s.universe["BTC/USDT"], trade)
