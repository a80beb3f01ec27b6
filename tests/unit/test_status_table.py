"""The order status machine (model/status.py): every pair of statuses, legal or not, against the rules its
docstring gives, and ccxt's statuses read into it."""

from __future__ import annotations

import itertools

import pytest

from planar_core.model.status import FROM_CCXT, TRANSITIONS, OrderStatus, legal

S = OrderStatus
OPEN_STATES = {S.INTENT, S.UNKNOWN, S.OPEN}
TERMINAL = {S.CLOSED, S.CANCELED, S.EXPIRED, S.REJECTED}  # the exchange's final word: nothing moves them
EXCHANGE_SAYS = {S.OPEN, *TERMINAL}


def expected(old: OrderStatus, new: OrderStatus) -> bool:
    """The rules, written from the module's docstring independently of its table."""
    if old == new:
        return True
    if old in TERMINAL:
        return False
    if old is S.INTENT:  # anything the exchange says, or not knowing, or refused locally
        return new in EXCHANGE_SAYS | {S.UNKNOWN, S.FAILED}
    if old is S.UNKNOWN:  # only the exchange's word (or proof of absence) moves it; never back to intent
        return new in EXCHANGE_SAYS | {S.FAILED}
    if old is S.OPEN:  # booked: it can only end (a conditional's trigger may still be refused)
        return new in TERMINAL
    # FAILED: proven absent, then found after all: the exchange's word wins, except a refusal of something it booked
    return new in EXCHANGE_SAYS - {S.REJECTED}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(S, S)), ids=lambda s: s.value)
def test_every_transition_follows_the_rules(old: OrderStatus, new: OrderStatus) -> None:
    assert legal(old, new) is expected(old, new)


def test_a_stale_open_snapshot_never_reopens_an_order_the_stream_closed() -> None:
    for final in TERMINAL:
        assert not legal(final, S.OPEN) and not legal(final, S.UNKNOWN) and not legal(final, S.INTENT)


def test_nothing_goes_back_to_intent_or_into_unknown_after_an_answer() -> None:
    assert [old for old in S if old is not S.INTENT and legal(old, S.INTENT)] == []
    assert [old for old in S if old not in (S.INTENT, S.UNKNOWN) and legal(old, S.UNKNOWN)] == []


def test_the_table_lists_every_status_and_never_itself() -> None:
    assert set(TRANSITIONS) == set(S)
    assert all(status not in targets for status, targets in TRANSITIONS.items())


@pytest.mark.parametrize("status", list(S), ids=lambda s: s.value)
def test_open_means_possibly_live_on_the_exchange(status: OrderStatus) -> None:
    assert status.is_open is (status in OPEN_STATES)
    assert status.is_final is (status not in OPEN_STATES)


def test_ccxt_statuses_map_to_their_namesakes_and_are_the_exchange_states() -> None:
    assert {k: v.value for k, v in FROM_CCXT.items()} == {k: k for k in FROM_CCXT}
    assert set(FROM_CCXT.values()) == EXCHANGE_SAYS


def test_statuses_are_their_strings_on_the_wire() -> None:
    assert S("canceled") is S.CANCELED and f"{S.UNKNOWN}" == "unknown"
    with pytest.raises(ValueError):
        S("cancelled")  # ccxt's spelling only
