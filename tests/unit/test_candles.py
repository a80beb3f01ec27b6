"""Candles: a numpy buffer that knows which candles are closed and hands each closed one out once."""

from __future__ import annotations

import numpy as np

from planar_core.model import Candle, Candles


def rows(*ts: int, close: float = 1.0) -> list[list[float]]:
    return [[t, close, close, close, close, 1.0] for t in ts]


def test_a_candle_is_closed_when_a_later_one_exists_or_the_exchange_says_so() -> None:
    c = Candles.from_rows(rows(0, 1000))
    assert c.closed_through == 0 and len(c.closed) == 1
    c.merge(rows(1000, close=2.0), closed_through=1000)  # Binance's x flag on the last candle
    assert c.closed_through == 1000 and len(c.closed) == 2 and c.last == Candle(1000, 2.0, 2.0, 2.0, 2.0, 1.0)


def test_take_closed_skips_history_then_hands_each_bar_out_once() -> None:
    c = Candles.from_rows(rows(0, 1000, 2000))
    assert c.take_closed() == []  # history: read from the buffer, not announced
    c.merge(rows(3000, 4000))
    assert [b.timestamp for b in c.take_closed()] == [2000, 3000]
    assert c.take_closed() == []
    c.merge(rows(4000, close=5.0))  # the forming candle updates in place: nothing closes
    assert c.take_closed() == [] and len(c) == 5


def test_views_do_not_copy_and_the_frame_is_cached_per_update() -> None:
    c = Candles.from_rows(rows(*range(0, 10_000, 1000)))
    assert np.shares_memory(c.close, c.array) and not c.close.flags.writeable
    df = c.df
    assert c.df is df  # no change, no rebuild
    c.merge(rows(10_000))
    assert c.df is not df and len(c.df) == 11


def test_capacity_keeps_the_newest_rows_in_order() -> None:
    c = Candles(capacity=5)
    for t in range(0, 20_000, 1000):
        c.merge(rows(t))
    assert list(c.timestamp) == [15_000, 16_000, 17_000, 18_000, 19_000]
    c.merge(rows(3000))  # older than what is kept: ignored
    assert len(c) == 5


def test_the_engine_drops_malformed_rows_and_keeps_the_good_ones() -> None:
    """``apply_ohlcv``'s row check: six finite numbers with positive prices, in a list or tuple; anything else is
    dropped and counted (one ``error_occurred``), and the good rows of the same answer are merged."""
    from tests.unit.stubs import sink_of, stub_strategy

    s = stub_strategy()
    ai = s.universe["BTC/USDT"]
    t = 1_700_000_000_000
    good = [[t, 1.0, 2.0, 0.5, 1.5, 3.0], (t + 60_000, 1, 2, 1, 2, 0)]  # ints and a zero volume are fine
    bad = [
        [t + 120_000, 1.0, 2.0, 0.5, float("nan"), 1.0],
        [t + 120_000, 1.0, 2.0, float("inf"), 1.5, 1.0],
        [t + 120_000, 0.0, 2.0, 0.5, 1.5, 1.0],  # a non-positive price
        [t + 120_000, 1.0, 2.0, 0.5, "1.5", 1.0],
        [t + 120_000, 1.0, 2.0, 0.5, 1.5],  # too short
        np.array([t + 120_000, 1.0, 2.0, 0.5, 1.5, 1.0]),  # neither a list nor a tuple
    ]
    s.apply_ohlcv(ai, "1m", good + bad)  # type: ignore[arg-type]
    assert ai.ohlcv["1m"].array[:, 0].tolist() == [t, t + 60_000]
    assert ai.last_price == 2.0
    errors = [e for e in sink_of(s).events if e["kind"] == "error_occurred"]
    assert [e["reason"] for e in errors] == ["6 malformed 1m candles dropped"]


def test_closed_candles_are_handed_out_once_each_whatever_the_merges() -> None:
    """A model of the rules (rows kept by opening time, the newest ``capacity``; a row is closed when a later one
    exists or the exchange's ``closed_through`` reaches it; each closed row handed out once, after the first call)
    against the buffer over random merges: one row at a time (the backtest's step, which takes a shorter path),
    several, updates of the forming row, stale rows, ``closed_through`` or not, a small capacity that compacts."""
    import random

    rng = random.Random(5)
    for _ in range(200):
        capacity = rng.choice([1, 2, 3, 5, 50])
        c = Candles(capacity)
        kept: dict[int, tuple[float, ...]] = {}
        closed: int | None = None
        handed: int | None = None
        started = False
        t = 0
        for _step in range(60):
            rows = []
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                t += rng.choice([0, 60, 60, 120, -60])
                rows.append((t, 1.0, 2.0, 0.5, 1.0 + rng.random(), 3.0))
            through = rows[-1][0] if rng.random() < 0.5 else None
            c.merge(rows, through)
            for r in rows:  # the model
                if not kept or r[0] >= max(kept):
                    kept[r[0]] = r
            for ts in sorted(kept)[:-capacity]:
                del kept[ts]
            newest = sorted(kept)
            candidates = newest[:-1] + ([newest[-1]] if through is not None and through >= newest[-1] else [])
            if candidates and (closed is None or max(candidates) > closed):
                closed = max(candidates)
            got = [x.timestamp for x in c.take_closed()]
            if not started:
                started, handed = closed is not None, closed
                assert got == []
                continue
            want = [ts for ts in newest if closed is not None and handed is not None and handed < ts <= closed]
            handed = closed if closed is not None else handed
            assert got == want, (capacity, rows, through)
            assert c.closed_through == closed and [int(x) for x in c.array[:, 0]] == newest
