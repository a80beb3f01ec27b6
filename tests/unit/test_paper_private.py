"""Paper mode never reaches a real account: no order list is advertised (its request is a private endpoint the
local account does not answer), and any private endpoint it does not answer locally is refused, not forwarded to the
public client (which would send it to the exchange)."""

from __future__ import annotations

import pytest

from planar_core.config import load_config
from planar_core.exchange.binance import BINANCE
from planar_core.exchange.ccxt_venue import venue_caps
from planar_core.exchange.paper import PaperExchange


class Public:
    """The public client a paper account delegates market data to; it records what reaches it."""

    def __init__(self) -> None:
        self.reached: list[str] = []

    def __getattr__(self, name: str) -> object:
        self.reached.append(name)
        return lambda *a, **k: None


def test_paper_advertises_no_order_list_where_live_does() -> None:
    assert venue_caps(BINANCE, paper=False).native_oco == frozenset({"spot"})
    assert venue_caps(BINANCE, paper=True).native_oco == frozenset()  # a spot stop-loss and take-profit go as two orders


@pytest.mark.parametrize("endpoint", ["privatePostOrderListOco", "fapiPrivatePostCountdownCancelAll", "sapiGetAccountApiRestrictions"])
def test_a_private_endpoint_never_reaches_the_public_client(endpoint: str) -> None:
    public = Public()
    paper = PaperExchange(public, load_config(env={}, name="unit", mode="paper"))  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match=endpoint):
        getattr(paper, endpoint)
    assert public.reached == []
    paper.fetch_order_book  # noqa: B018  (public data is delegated)
    assert public.reached == ["fetch_order_book"]
