"""The venues the engine can trade on: one line each, read by the composition root (``open_venue``).

A venue is a dialect (what ccxt leaves to the exchange: parameters, error codes, raw payload fields) and a factory
that builds the ``Venue`` (model/venue.py) for a strategy's config. Paper mode is a mode, not a venue: the engine's
composition root (``engine.parts.engine_venue``) puts the simulated exchange (``sim/paper.py``) behind the venue's
keyless public client. Adding a venue is one module (its dialect) plus one line in ``VENUES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..config import ConfigError, StrategyConfig
from ..model.sink import EventSink
from ..model.venue import Venue
from .binance import BINANCE
from .bybit import BYBIT
from .ccxt_types import CcxtExchange
from .ccxt_venue import CcxtVenue
from .dialect import Dialect
from .trade_bars import BUILT


class VenueFactory(Protocol):
    """Builds the venue of one strategy; ``exchange``: a ccxt client to use instead of building one (tests)."""

    @property
    def dialect(self) -> Dialect: ...

    def __call__(self, cfg: StrategyConfig, sink: EventSink | None = None, exchange: CcxtExchange = None) -> CcxtVenue: ...


@dataclass(frozen=True)
class CcxtFactory:
    """A venue ccxt speaks: the ccxt adapter over the venue's dialect (live, sandbox, or paper by the config's mode)."""

    dialect: Dialect

    def __call__(self, cfg: StrategyConfig, sink: EventSink | None = None, exchange: CcxtExchange = None) -> CcxtVenue:
        return CcxtVenue(cfg, sink, exchange, dialect=self.dialect)


VENUES: dict[str, VenueFactory] = {"binance": CcxtFactory(BINANCE), "bybit": CcxtFactory(BYBIT)}


def factory_of(exchange: str) -> VenueFactory:
    factory = VENUES.get(exchange)
    if factory is None:
        raise ConfigError(f"exchange: {exchange!r} is not a venue Planar trades on (known: {', '.join(sorted(VENUES))})")
    return factory


def credential_fields(exchange: str) -> tuple[str, ...]:
    """The credentials the venue named ``exchange`` asks for (``Credentials.resolved``'s ``fields``)."""
    return factory_of(exchange).dialect.caps.credentials


def dialect_of(exchange: str) -> Dialect:
    """The dialect of the venue named ``exchange`` (``ConfigError`` for a venue not in the table)."""
    return factory_of(exchange).dialect


def open_venue(cfg: StrategyConfig, sink: EventSink | None = None, exchange: CcxtExchange = None) -> CcxtVenue:
    """The venue of ``cfg``: its exchange in live mode (the sandbox when configured), a local account behind the
    exchange's market data in paper mode. A timeframe the venue does not serve is a ``ConfigError`` naming the
    field, before anything is asked of the exchange."""
    factory = factory_of(cfg.exchange)
    served = factory.dialect.caps.served("swap" if cfg.margin else "spot")
    missing = [tf for tf in cfg.timeframes if tf not in served and tf not in BUILT]
    if missing:
        raise ConfigError(
            f"timeframes: {cfg.exchange} does not serve {missing} (it serves {sorted(served, key=_seconds)}; "
            f"the engine builds {sorted(BUILT)} from trades where the venue has none)"
        )
    return factory(cfg, sink, exchange)


def _seconds(timeframe: str) -> int:
    """A timeframe's length, to list them in order."""
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "M": 2_592_000}[timeframe[-1]]
    return int(timeframe[:-1]) * unit


def as_venue(venue: CcxtVenue) -> Venue:
    """A ``CcxtVenue`` is a ``Venue``: mypy checks the protocol here, so a method that drifts from it fails the check."""
    return venue
