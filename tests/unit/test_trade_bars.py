"""Candles built from trades where the venue serves none of that length (exchange/trade_bars.py): the rows a kline
feed would give, flat candles for quiet intervals, and which candles are final."""

from __future__ import annotations

from planar_core.exchange.trade_bars import GRACE_MS, TradeBars, trade_rows


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


def test_a_quiet_market_still_closes_its_candles_by_the_clock() -> None:
    bars = TradeBars(1000)
    bars.add(trade_rows([t(10_100, 5.0)]))
    bars.close(11_000 + GRACE_MS - 1)  # the second is over, but not by the grace yet
    assert bars.closed_through is None
    bars.close(12_000 + GRACE_MS)
    assert bars.closed_through == 11_000 and bars.candles[-1] == [11_000, 5.0, 5.0, 5.0, 5.0, 0.0]


def test_overlapping_history_and_stream_count_each_trade_once() -> None:
    bars = TradeBars(1000)
    bars.add(trade_rows([t(10_100, 5.0, tid="a"), t(10_200, 6.0, tid="b")]))
    bars.add(trade_rows([t(10_200, 6.0, tid="b"), t(10_200, 6.5, tid="c")]))  # "b" again, "c" in the same ms
    assert bars.candles == [[10_000, 5.0, 6.5, 5.0, 6.5, 3.0]]


def test_a_trade_for_a_closed_candle_goes_into_the_next() -> None:
    bars = TradeBars(1000)
    bars.add(trade_rows([t(10_100, 5.0)]))
    bars.close(11_000 + GRACE_MS)
    assert bars.closed_through == 10_000
    bars.add(trade_rows([t(10_800, 9.0)]))  # delayed past the grace: the closed candle is not changed
    assert bars.candles[0] == [10_000, 5.0, 5.0, 5.0, 5.0, 1.0] and bars.candles[-1] == [11_000, 9.0, 9.0, 9.0, 9.0, 1.0]
