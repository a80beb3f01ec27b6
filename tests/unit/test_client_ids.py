"""Client order ids encode their strategy exactly: ownership is parsed, never a prefix match."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from planar_core.exchange.client_ids import MAX_LEN, ClientOrderIds, parse

NAMES = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


def test_a_name_that_prefixes_another_owns_none_of_its_ids(tmp_path: Path) -> None:
    """``mm`` and ``mm-eth`` on one account: neither claims the other's orders (the old prefix rule gave ``mm``
    every ``mm-eth-…`` id)."""
    mm = ClientOrderIds(tmp_path / "mm", "mm")
    mm_eth = ClientOrderIds(tmp_path / "mm-eth", "mm-eth")
    for _ in range(3):
        a, b = mm.next(), mm_eth.next()
        assert mm.owns(a) and mm_eth.owns(b)
        assert not mm.owns(b) and not mm_eth.owns(a)


def test_names_alike_in_their_first_characters_differ(tmp_path: Path) -> None:
    x = ClientOrderIds(tmp_path / "x", "grid_btc_usdt_fast")
    y = ClientOrderIds(tmp_path / "y", "grid_btc_usdt_slow")
    assert not x.owns(y.next()) and not y.owns(x.next())


@settings(max_examples=200, deadline=None)
@given(a=NAMES, b=NAMES)
def test_ownership_is_exact_whatever_the_names(tmp_path_factory: object, a: str, b: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        ia = ClientOrderIds(Path(root) / "a", a)
        ib = ClientOrderIds(Path(root) / "b", b)
        ida, idb = ia.next(), ib.next()
        assert len(ida) <= MAX_LEN and len(idb) <= MAX_LEN
        assert ia.owns(ida) and ib.owns(idb)
        assert ia.owns(idb) == (a == b) and ib.owns(ida) == (a == b)


def test_another_store_of_the_same_strategy_is_owned_but_not_issued_here(tmp_path: Path) -> None:
    """Two store roots, one strategy: both own each other's ids (same identity), neither issued the other's (its
    epoch differs): what the twin-engine check looks for."""
    here = ClientOrderIds(tmp_path / "a", "mm")
    there = ClientOrderIds(tmp_path / "b", "mm")
    if here.epoch == there.epoch:  # created within the same millisecond
        there.epoch = "zz"
        there.prefix = f"{there.identity}-zz"
    cid = there.next()
    assert here.owns(cid) and not here.issued_here(cid)
    assert here.issued_here(here.next())
    p = parse(cid)
    assert p is not None and p.identity == here.identity and p.epoch == there.epoch


def test_ids_of_the_earlier_format_from_this_store_stay_owned(tmp_path: Path) -> None:
    ids = ClientOrderIds(tmp_path, "mm")
    assert ids.owns(f"mm-{ids.epoch}-1042") and ids.issued_here(f"mm-{ids.epoch}-1042")
    assert not ids.owns(f"mm-eth-{ids.epoch}-1042")  # another strategy's, earlier format
    assert not ids.owns("mm-otherep-7")  # another store's earlier ids: not provably ours
    assert not ids.owns("x-AbC123")  # a hand-placed order
