"""Paper mode never reaches a real account: the paper venue's only client of the exchange is keyless (its orders,
balances and fills are the simulated exchange's, in process), even when the config names credentials that resolve;
and the exchange layer refuses to build a keyed client for a paper config."""

from __future__ import annotations

import pytest

from planar_core.config import load_config
from planar_core.engine.parts import engine_venue
from planar_core.exchange.registry import open_venue
from planar_core.sim.paper import PaperVenue


def test_the_paper_venue_s_exchange_client_has_no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_API_KEY", "a-real-looking-key")
    monkeypatch.setenv("EXCHANGE_API_SECRET", "a-real-looking-secret")
    cfg = load_config(name="unit", mode="paper")
    cfg = cfg.model_copy(update={"credentials": cfg.credentials.resolved()})  # as the runner hands it to the engine
    assert cfg.credentials.api_key is not None
    venue = engine_venue(cfg)
    assert isinstance(venue, PaperVenue)
    assert not venue.public.ex.apiKey and not venue.public.ex.secret  # market data only: it cannot sign a request


def test_the_exchange_layer_builds_no_client_for_a_paper_config() -> None:
    with pytest.raises(ValueError, match="engine_venue"):
        open_venue(load_config(env={}, name="unit", mode="paper"))
