"""The ordering of account reports that come by two roads (model/stamp.py): which report replaces which, and
which account state includes which fill."""

from __future__ import annotations

from planar_core.model.stamp import Stamp

T = 1_700_000_000_000  # an exchange time, ms


def stream(seq: int, ms: int | None = T) -> Stamp:
    return Stamp(seq, ms)


def rest(seq: int, ms: int | None = T) -> Stamp:
    return Stamp(seq, ms, rest=True)


def test_each_road_keeps_its_own_order() -> None:
    assert stream(5).newer_than(stream(4)) and not stream(4).newer_than(stream(5))
    assert not stream(5).newer_than(stream(5))  # the same message (ccxt's cache read again)
    assert rest(9, T - 5).newer_than(rest(8, T))  # snapshots: the order their requests left in


def test_across_roads_the_exchange_clock_decides() -> None:
    assert not rest(9, T - 1).newer_than(stream(5, T))  # a read of the state before the stream's update
    assert rest(3, T + 1).newer_than(stream(5, T))  # a read of a later state, whatever order they arrived in
    assert not stream(12, T - 1).newer_than(rest(10, T))  # a lagging stream message
    assert stream(4, T + 1).newer_than(rest(10, T))


def test_on_a_tie_a_snapshot_asked_after_wins_and_a_lagging_stream_never_takes_one_back() -> None:
    assert rest(9).newer_than(stream(5))  # asked after the stream's report arrived: it includes it
    assert not rest(4).newer_than(stream(5))  # asked before: the stream's report may be later
    assert not stream(11).newer_than(rest(10))  # the lock message arriving after a read that shows the fill
    assert stream(11, None).newer_than(rest(10, None))  # no time at all: the order of arrival


def test_which_states_include_a_fill() -> None:
    on_stream = stream(6)  # the fill's report arrived 6th
    assert stream(7).includes(on_stream)  # the account update that followed it
    assert not stream(5).includes(on_stream)  # the one before it (the lock of the order)
    assert not stream(7, T - 1).includes(on_stream)  # arrived later, but the exchange says it is older
    assert stream(3, T + 1).includes(on_stream)  # stamped by the exchange after the fill
    assert rest(8, None).includes(on_stream) and not rest(5, None).includes(on_stream)
    by_rest = Stamp(6, None, rest=True)  # learned by REST (an acknowledgement, a poll): no place on the stream
    assert not stream(7).includes(by_rest)  # a stream message arriving later may still be older (the stream lags)
    assert rest(7, None).includes(by_rest)  # a snapshot asked after it


def test_which_orders_across_roads_are_known_and_which_are_guessed() -> None:
    assert stream(5).ordered_against(stream(9)) and rest(5).ordered_against(rest(9))  # one road: its own order
    assert rest(3, T + 1).ordered_against(stream(5, T))  # the exchange's times differ
    assert rest(9).ordered_against(stream(5))  # asked after the message arrived: read after it
    assert stream(5).ordered_against(rest(9))  # arrived before the read was asked: older
    assert not rest(4).ordered_against(stream(5))  # asked before it arrived, the same millisecond: either way
    assert not stream(11).ordered_against(rest(10))  # a cancel in the millisecond of the read, arriving after it
    assert not stream(11, None).ordered_against(rest(10))  # no time to tell
