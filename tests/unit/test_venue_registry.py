"""The venue registry is the one table a new venue is added to: the config names any venue of it (no list of
exchanges in the config), and the timeframes a strategy watches are checked against what that venue serves."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from planar_core.config import ConfigError, StrategyConfig, load_config
from planar_core.exchange import registry
from planar_core.exchange.binance import BINANCE
from planar_core.model.sink import EventSink


class Dialect:
    name = "fakex"
    caps = replace(BINANCE.caps, timeframes=frozenset({"1m", "1h"}))


@dataclass(frozen=True)
class Factory:
    dialect: Dialect

    def __call__(self, cfg: StrategyConfig, sink: EventSink | None = None, exchange: object = None) -> str:
        return f"venue of {cfg.name} on {self.dialect.name}"


@pytest.fixture
def fakex(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.VENUES, "fakex", Factory(Dialect()))  # type: ignore[arg-type]


def test_a_venue_added_to_the_table_is_one_the_config_can_name(fakex: None) -> None:
    cfg = load_config(env={}, name="unit", exchange="fakex", mode="paper", timeframes=["1m", "1h"])
    assert registry.open_venue(cfg) == "venue of unit on fakex"


def test_a_timeframe_the_venue_does_not_serve_is_refused_naming_the_field(fakex: None) -> None:
    cfg = load_config(env={}, name="unit", exchange="fakex", mode="paper", timeframes=["1m", "8h"])
    with pytest.raises(
        ConfigError, match=r"^timeframes: fakex does not serve \['8h'\] \(it serves \['1m', '1h'\]; the engine builds \['1s'\] from trades"
    ):
        registry.open_venue(cfg)
    assert "8h" in BINANCE.caps.timeframes  # binance serves it


def test_one_second_candles_are_built_where_the_venue_has_none(fakex: None) -> None:
    cfg = load_config(env={}, name="unit", exchange="fakex", mode="paper", timeframes=["1s", "1m"])
    assert registry.open_venue(cfg) == "venue of unit on fakex"


def test_a_venue_outside_the_table_is_refused_naming_the_field() -> None:
    cfg = load_config(env={}, name="unit", exchange="kraken", mode="paper")
    with pytest.raises(ConfigError, match=r"^exchange: 'kraken' is not a venue Planar trades on \(known: binance, bybit\)"):
        registry.open_venue(cfg)
