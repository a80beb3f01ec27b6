"""The engine's unit tests on the in-memory venue: ``engine_on_fake`` / ``started`` build a bare ``Strategy`` on it.

The venue, the test clock and ``market`` live in the public ``planar_core.testing`` package (testing/venue.py),
which a strategy's own tests use too (``LogicTest``); these two builders set engine fields by hand (``running``,
``hedged``), which is for the engine's own tests only.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

from planar_core.config import StrategyConfig
from planar_core.engine.parts import build_parts
from planar_core.engine.strategy import Strategy
from planar_core.model.sink import MemorySink
from planar_core.testing.venue import Call, FakeVenue, TestClock, market

__all__ = ["Call", "FakeVenue", "TestClock", "engine_on_fake", "market", "started"]


def engine_on_fake(
    symbols: Sequence[str] = ("BTC/USDT", "ETH/USDT"),
    *,
    margin: bool = False,
    hedged: bool = False,
    running: bool = False,
    **config: object,
) -> tuple[Strategy, FakeVenue, TestClock]:
    """A Strategy whose venue is a ``FakeVenue`` and whose clock is a ``TestClock``; its universe is built from the
    venue's markets (call ``await load(s)``, or use ``started``)."""
    cfg = StrategyConfig.model_validate(
        {
            "name": "unit",
            "universe": list(symbols),
            "margin": margin,
            "store_root": tempfile.mkdtemp(prefix="planar-unit-"),
            "event_tracing": {"enabled": False},
            **({"position_mode": "hedge"} if hedged else {}),
            **config,
        }
    )
    clock = TestClock()
    venue = FakeVenue(symbols, clock=clock, hedged=hedged)
    sink = MemorySink()
    s = Strategy(cfg, build_parts(cfg, sink=sink, venue=venue, clock=clock))
    s.running = running
    return s, venue, clock


async def started(
    symbols: Sequence[str] = ("BTC/USDT", "ETH/USDT"),
    *,
    margin: bool = False,
    hedged: bool = False,
    running: bool = False,
    **config: object,
) -> tuple[Strategy, FakeVenue, TestClock]:
    """``engine_on_fake`` with its markets loaded through the venue (the universe built), hedge mode applied."""
    s, venue, clock = engine_on_fake(symbols, margin=margin, hedged=hedged, running=running, **config)
    await s.load()
    for ai in s.universe.values():
        ai.hedged = hedged
    return s, venue, clock
