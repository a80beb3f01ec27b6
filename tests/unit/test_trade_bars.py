"""Candles built from trades where a market serves none of that length (exchange/trade_bars.py): the rows a kline
feed would give, flat candles for quiet intervals, and which candles are final (on evidence, never by the clock)."""

from __future__ import annotations

from planar_core.exchange.trade_bars import GAP_MS, KEPT, TradeBars, history_candles, trade_rows


def t(ts: int, price: float, amount: float = 1.0, tid: str = "") -> dict[str, object]:
    return {"timestamp": ts, "price": price, "amount": amount, "id": tid or f"{ts}-{price}"}


def test_trades_make_ohlcv_rows_and_a_later_trade_closes_a_candle() -> None:
    bars = TradeBars(1000)
    bars.add(trade_rows([t(10_100, 5.0), t(10_900, 7.0, 2.0), t(10_500, 4.0)]))  # out of order: sorted first
    assert bars.candles == [[10_000, 5.0, 7.0, 4.0, 7.0, 4.0]] and bars.closed_through is None
    bars.add(trade_rows([t(13_200, 6.0)]))
    assert bars.candles == [
        [10_000, 5.0, 7.0, 4.0, 7.0, 4.0],
        [11_000, 7.0, 7.0, 7.0, 7.0, 0.0],  # no trade: flat at the last close, volume 0
        [12_000, 7.0, 7.0, 7.0, 7.0, 0.0],
        [13_000, 6.0, 6.0, 6.0, 6.0, 1.0],
    ]
    assert bars.closed_through == 12_000  # the trade at 13.2 s says every earlier second is over


def test_a_stream_batch_is_joined_to_the_exchanges_list_first_and_after_a_silence() -> None:
    """A stream says nothing of what it missed (a stall, a reconnect): its first batch, and one that follows the
    last trade by more than GAP_MS, are joined to the exchange's recent trades before they are folded in."""
    bars = TradeBars(1000)
    first = trade_rows([t(10_100, 5.0)])
    assert bars.needs_history(first)
    bars.add(trade_rows([t(9_500, 4.0)]))  # the list
    bars.joined = True
    bars.add(first)
    assert not bars.needs_history(trade_rows([t(10_100 + GAP_MS, 5.0)]))
    assert bars.needs_history(trade_rows([t(10_101 + GAP_MS, 5.0)]))
    assert not bars.needs_history([])


def test_overlapping_history_and_stream_count_each_trade_once() -> None:
    bars = TradeBars(1000)
    bars.add(trade_rows([t(10_100, 5.0, tid="a"), t(10_200, 6.0, tid="b")]))
    bars.add(trade_rows([t(10_200, 6.0, tid="b"), t(10_200, 6.5, tid="c"), t(10_150, 9.0, tid="z")]))  # "b" again, "c" in the same ms
    assert bars.candles == [[10_000, 5.0, 6.5, 5.0, 6.5, 3.0]]


def test_a_long_silence_keeps_only_the_last_candles() -> None:
    bars = TradeBars(1000)
    bars.add(trade_rows([t(0, 5.0)]))
    bars.add(trade_rows([t(14 * 86_400_000, 6.0)]))  # two weeks later: not 1.2 M flat candles
    assert len(bars.candles) == KEPT and bars.candles[-1] == [14 * 86_400_000, 6.0, 6.0, 6.0, 6.0, 1.0]
    assert bars.candles[0] == [14 * 86_400_000 - (KEPT - 1) * 1000, 5.0, 5.0, 5.0, 5.0, 0.0]


def test_a_recent_trade_list_leaves_out_its_first_candle() -> None:
    """Its first second may have trades older than the list reaches: not a candle to trust."""
    rows = trade_rows([t(10_900, 5.0), t(11_100, 6.0), t(12_300, 7.0)])
    assert history_candles(rows, 1000, 100) == [[11_000, 6.0, 6.0, 6.0, 6.0, 1.0], [12_000, 7.0, 7.0, 7.0, 7.0, 1.0]]
