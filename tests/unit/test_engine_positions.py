"""Position reports applied by the engine (``Strategy.apply_positions`` / ``fetch_positions``) and the futures margin
operations (engine/margin.py: modes, leverage, funding) against the in-memory venue. No socket, no sleep."""

from __future__ import annotations

import asyncio

import pytest

from planar_core.config import ConfigError
from planar_core.engine.margin import apply_position_mode, ensure_margin_mode, record_funding, sync_funding, update_leverage
from planar_core.engine.watchers import apply_cached_positions
from planar_core.exchange.errors import InvalidOrder
from planar_core.model import LeverageOutcome, OrderStatus, OrderType, PositionSide, RefusalReason, Side
from planar_core.model.stamp import Stamp
from planar_core.model.venue import FundingPayment, OrderReport, PositionReport

from .fake_venue import started
from .stubs import sink_of

SYM = "BTC/USDT:USDT"
L, SH, B = PositionSide.LONG, PositionSide.SHORT, PositionSide.BOTH


def pos(contracts: float, side: PositionSide = L, entry: float = 100.0, **kw) -> PositionReport:
    return PositionReport(SYM, side, contracts, entry_price=entry, **kw)


async def futures(hedged: bool = False, running: bool = False, **config):
    s, venue, clock = await started((SYM,), margin=True, hedged=hedged, running=running, **config)
    return s, venue, clock, s.universe[SYM]


async def test_one_way_a_long_report_is_a_positive_position() -> None:
    s, _, _, ai = await futures()
    s.apply_positions([pos(0.01, entry=100.0, unrealized_pnl=1.5, leverage=5.0)])
    p = ai.position
    assert (p.contracts, p.entry_price, p.unrealized_pnl, p.leverage, p.unrealized_known) == (0.01, 100.0, 1.5, 5.0, True)


async def test_one_way_a_short_report_replaces_the_long_one() -> None:
    s, _, _, ai = await futures()
    s.apply_positions([pos(0.01, L)])
    s.apply_positions([pos(0.02, SH, 101.0)])
    assert ai.position.contracts == pytest.approx(-0.02) and len(ai.open_positions()) == 1


async def test_hedge_mode_keeps_both_sides() -> None:
    s, _, _, ai = await futures(hedged=True)
    s.apply_positions([pos(0.01, L), pos(0.02, SH, 101.0)])
    assert ai.position_of(L).contracts == 0.01 and ai.position_of(SH).contracts == pytest.approx(-0.02)
    assert len(ai.open_positions()) == 2


async def test_hedge_mode_ignores_a_row_that_names_no_side() -> None:
    s, _, _, ai = await futures(hedged=True)
    s.apply_positions([pos(0.05, B)])
    assert ai.open_positions() == []


async def test_a_complete_snapshot_flattens_what_it_does_not_list() -> None:
    s, venue, _, ai = await futures(hedged=True)
    s.apply_positions([pos(0.01, L), pos(0.02, SH)])
    await s.fetch_positions()  # the venue holds none
    assert ai.open_positions() == []
    assert venue.ops("positions") == [((SYM,),)]
    changed = sink_of(s).of("position_updated")[-1]["payload"]
    assert set(changed) == {f"{SYM}#long", f"{SYM}#short"}  # type: ignore[arg-type]


async def test_fetch_positions_applies_the_venues_snapshot() -> None:
    s, venue, _, ai = await futures()
    venue.set_position(pos(0.3, SH, 95.0, margin_mode="isolated", time_ms=5))
    await s.fetch_positions()
    assert ai.position.contracts == pytest.approx(-0.3) and ai.margin_mode == "isolated" and ai.position.timestamp == 5


async def test_a_change_is_recorded_with_what_it_was_before() -> None:
    s, _, _, _ = await futures()
    s.apply_positions([pos(0.01)])
    s.apply_positions([pos(0.03)])
    ev = sink_of(s).of("position_updated")[-1]["payload"]
    assert ev == {SYM: {"contracts": 0.03, "entry_price": 100.0, "before": 0.01}}


async def test_the_same_position_again_records_nothing() -> None:
    s, _, _, _ = await futures()
    s.apply_positions([pos(0.01)])
    s.apply_positions([pos(0.01)])
    assert len(sink_of(s).of("position_updated")) == 1


async def test_an_older_report_is_ignored() -> None:
    s, venue, _, ai = await futures()
    old = pos(0.01, stamp=venue.stamp())
    new = pos(0.02, stamp=venue.stamp())
    s.apply_positions([new])
    s.apply_positions([old])
    assert ai.position.contracts == 0.02


async def test_a_snapshot_asked_before_a_stream_report_does_not_overwrite_it() -> None:
    s, venue, _, ai = await futures()
    asked = Stamp(venue.next_seq(), rest=True)
    s.apply_positions(venue.push_positions(pos(0.05)))
    s.apply_positions([], complete=True, stamp=asked)
    assert ai.position.contracts == 0.05


async def test_a_report_without_leverage_keeps_the_one_held() -> None:
    s, _, _, ai = await futures()
    s.apply_positions([pos(0.01, leverage=7.0)])
    s.apply_positions([pos(0.02)])
    assert ai.position.leverage == 7.0


async def test_a_report_without_unrealized_pnl_says_it_is_unknown() -> None:
    s, _, _, ai = await futures()
    s.apply_positions([pos(0.01)])
    assert not ai.position.unrealized_known


async def test_a_report_without_time_takes_the_clock() -> None:
    s, _, clock, ai = await futures()
    clock.advance(3)
    s.apply_positions([pos(0.01)])
    assert ai.position.timestamp == clock.ms


async def test_rows_outside_the_universe_are_ignored() -> None:
    s, _, _, ai = await futures()
    s.apply_positions([PositionReport("ETH/USDT:USDT", L, 1.0)])
    assert ai.open_positions() == [] and not sink_of(s).of("position_updated")


async def test_the_venues_stream_cache_is_applied() -> None:
    s, venue, _, ai = await futures()
    venue.push_positions(pos(0.04))
    apply_cached_positions(s)
    assert ai.position.contracts == 0.04


async def test_a_change_outside_the_engine_is_alerted_while_running() -> None:
    s, _, _, _ = await futures(running=True, position_watcher={"alert_on_changes": True})
    s.apply_positions([pos(0.01)])
    assert "changed outside the engine" in str(sink_of(s).of("error_occurred")[-1]["reason"])


async def test_a_position_that_shrank_with_no_order_open_reads_the_last_orders() -> None:
    s, venue, _, _ai = await futures(running=True)
    s.apply_positions([pos(0.02)])
    venue.book(OrderReport(SYM, "77", "autoclose-1", OrderStatus.CLOSED, Side.SELL, None, 0.02, 0.02, 90.0, forced_close="adl"))
    s.apply_positions([pos(0.0)])
    async with asyncio.timeout(2):  # the read is spawned
        while not sink_of(s).of("forced_close"):
            await asyncio.sleep(0)
    assert venue.ops("order_history") and sink_of(s).of("forced_close")[0]["reason"] == "adl"


# ------------------------------------------------------------------ margin operations
async def test_the_position_mode_is_set_when_it_differs() -> None:
    s, venue, _, ai = await futures(position_mode="hedge")
    await apply_position_mode(s)
    assert venue.hedged and ai.hedged and venue.ops("set_position_mode") == [(True,)]
    assert sink_of(s).of("position_mode_set")


async def test_the_position_mode_is_left_alone_when_it_is_right() -> None:
    s, venue, _, _ = await futures()
    await apply_position_mode(s)
    assert venue.ops("set_position_mode") == [] and not sink_of(s).of("position_mode_set")


async def test_a_refused_position_mode_fails_the_start_naming_the_field() -> None:
    s, venue, _, _ = await futures(position_mode="hedge")
    venue.fail_next["set_position_mode"].append(InvalidOrder("open positions"))
    with pytest.raises(ConfigError, match="position_mode: the account is in one_way mode"):
        await apply_position_mode(s)


async def test_the_margin_mode_is_set_once_per_run() -> None:
    s, venue, _, ai = await futures(margin_mode="isolated")
    assert await ensure_margin_mode(s, ai) is None
    assert await ensure_margin_mode(s, ai) is None
    assert venue.ops("set_margin_mode") == [(SYM, "isolated")] and ai.margin_mode == "isolated"


async def test_a_refused_margin_mode_is_the_reason() -> None:
    s, venue, _, ai = await futures(margin_mode="isolated")
    venue.fail_next["set_margin_mode"].append(InvalidOrder("position open"))
    reason = await ensure_margin_mode(s, ai)
    assert reason is not None and "margin mode isolated could not be set" in reason


async def test_leverage_changes_when_flat() -> None:
    s, venue, _, ai = await futures()
    assert (await update_leverage(s, ai, 4)).outcome is LeverageOutcome.APPLIED
    assert venue.leverage == {SYM: 4} and ai.position.leverage == 4.0


async def test_leverage_is_refused_with_a_position_open() -> None:
    s, venue, _, ai = await futures()
    s.apply_positions([pos(0.01)])
    answer = await update_leverage(s, ai, 4)
    assert answer.outcome is LeverageOutcome.REFUSED and answer.refusal is not None
    assert answer.refusal.reason is RefusalReason.NOT_FLAT and "open position" in answer.refusal.detail and venue.ops("set_leverage") == []


async def test_leverage_refused_by_the_exchange_is_the_reason() -> None:
    s, venue, _, ai = await futures()
    venue.fail_next["set_leverage"].append(InvalidOrder("too high"))
    answer = await update_leverage(s, ai, 125)
    assert answer.outcome is LeverageOutcome.REFUSED and answer.refusal is not None
    assert answer.refusal.reason is RefusalReason.EXCHANGE_REFUSED and "the exchange refused leverage 125" in answer.refusal.detail


async def test_funding_is_recorded_once_per_payment_and_summed() -> None:
    s, venue, _clock, _ = await futures()
    since = s.holdings.funding.since
    venue.funding += [
        FundingPayment(SYM, -1.0, "USDT", since + 10, id="f1"),
        FundingPayment(SYM, 0.25, "USDT", since + 20, id="f2"),
        FundingPayment("ETH/USDT:USDT", 5.0, "USDT", since + 30, id="f3"),  # not in the universe
    ]
    assert await sync_funding(s) == 2
    assert await sync_funding(s) == 0
    assert s.holdings.funding.by_symbol == {SYM: pytest.approx(-0.75)}
    assert [(e["amount"], e["fee"], e["trade_id"]) for e in sink_of(s).of("funding_paid")] == [(-1.0, 1.0, "f1"), (0.25, -0.25, "f2")]


async def test_a_run_without_payments_reads_only_what_is_new() -> None:
    """Each read starts an hour before the last answered one (a settlement is booked within moments), not at the
    last payment: a run without positions read from its start every time (on Bybit a 7-day window more a week)."""
    s, venue, clock, _ = await futures()
    hour = 3_600_000
    first = clock.ms
    await sync_funding(s)
    clock.advance(30 * 86400)
    second = clock.ms
    await sync_funding(s)
    clock.advance(600)
    venue.funding.append(FundingPayment(SYM, -1.0, "USDT", second - 1000, id="late"))  # paid before the last read, shown after
    assert await sync_funding(s) == 1
    *_, after_first, after_second = [args[0] for args in venue.ops("funding_history")]
    assert isinstance(after_first, int) and first - hour <= after_first <= first and after_second == second - hour


async def test_an_answer_cut_short_is_read_on_from_its_newest_row() -> None:
    """An exchange answers a funding read with at most so many rows, oldest first: the next read starts at the
    newest row it got, so the rest is read then (not skipped by moving to the time of the read)."""
    s, venue, clock, _ = await futures()
    venue.funding_rows = 2
    t = s.holdings.funding.since
    venue.funding += [FundingPayment(SYM, -1.0, "USDT", t + i, id=f"f{i}") for i in range(3)]
    clock.advance(2 * 3600)  # the reads come well after the payments
    assert await sync_funding(s) == 2
    assert await sync_funding(s) == 1
    assert await sync_funding(s) == 0 and s.holdings.funding.by_symbol == {SYM: pytest.approx(-3.0)}


async def test_funding_without_an_id_is_not_recorded() -> None:
    s, _, _, _ = await futures()
    assert record_funding(s, FundingPayment(SYM, -1.0, "USDT", 1)) == 0


async def test_a_failed_funding_read_records_nothing() -> None:
    s, venue, _, _ = await futures()
    venue.fail_next["funding_history"].append(InvalidOrder("nope"))
    assert await sync_funding(s) == 0 and s.holdings.funding.by_symbol == {}


async def test_the_default_leverage_is_set_at_start_up_on_flat_assets() -> None:
    from planar_core.engine.sync import startup_sync

    s, venue, _, ai = await futures(default_leverage=3)
    venue.prices[SYM] = 100.0
    await startup_sync(s)
    assert venue.leverage == {SYM: 3} and ai.position.leverage == 3


def test_order_types_the_fake_offers() -> None:
    from .fake_venue import FakeVenue

    assert FakeVenue().caps.supports(OrderType.TRAILING_STOP, "swap")


async def test_a_tie_the_engine_cannot_order_is_read_again_when_the_reports_disagree() -> None:
    """A snapshot asked before a stream report of the same millisecond: which came first at the exchange is unknown.
    The tie rule keeps the stream's report; since the two disagree, the account is read again (not when they agree)."""
    s, venue, _, ai = await futures()
    before = s.freshness.fetches
    asked = Stamp(venue.next_seq(), 1_000, rest=True)
    s.apply_positions(venue.push_positions(pos(0.05, time_ms=1_000)))
    s.apply_positions([pos(0.05)], complete=True, stamp=asked)  # the same position: nothing to settle
    await s.freshness.flush()
    assert s.freshness.fetches == before
    asked = Stamp(venue.next_seq(), 1_000, rest=True)
    s.apply_positions(venue.push_positions(pos(0.07, time_ms=1_000)))
    s.apply_positions([pos(0.05)], complete=True, stamp=asked)
    assert ai.position.contracts == 0.07  # kept until the read settles it
    await s.freshness.flush()
    assert s.freshness.fetches == before + 1


async def test_a_position_a_just_filled_order_explains_is_no_outside_change() -> None:
    """The exchange's answer said our order filled; its fill has not arrived on the stream when the position update
    does: that is our own change, not one made outside the engine (every first entry of a paper run alerted). What
    counts is when the engine learned of the fill, on its own clock (not when the order was placed: a review found
    the first version compared the placement's wall-clock time with the engine's clock)."""
    from planar_core.model import Order

    s, _, clock, ai = await futures(running=True, position_watcher={"alert_on_changes": True})
    placed = clock.ms - 3_600_000  # placed an hour ago (a resting order), its fill learned from the answer just now
    ai.orders["c-1"] = Order("c-1", SYM, Side.BUY, OrderType.GTC, 0.01, 100.0, status=OrderStatus.OPEN, id="9", timestamp=placed)
    s.apply_order(OrderReport(SYM, "9", "c-1", OrderStatus.CLOSED, Side.BUY, OrderType.GTC, 0.01, 0.01, 100.0))
    s.apply_positions([pos(0.01)])
    assert not sink_of(s).of("error_occurred")
    clock.advance(61)  # a minute later, a change nothing of ours explains is alerted again
    s.apply_positions([pos(0.02)])
    assert "changed outside the engine" in str(sink_of(s).of("error_occurred")[-1]["reason"])
