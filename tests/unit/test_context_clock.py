"""Strategy code reads time from the engine's clock (a simulated one in backtest), never from the wall."""

from __future__ import annotations

from planar_core.logic import LogicParams
from planar_core.runner.context import LiveContext

from .fake_venue import engine_on_fake


def test_the_context_tells_the_engine_clock_s_time() -> None:
    s, _venue, clock = engine_on_fake()
    ctx = LiveContext(s, LogicParams())
    before = ctx.now()
    clock.advance(90.0)
    assert ctx.now() - before == 90_000
    assert ctx.now() == int(clock.time() * 1000)
