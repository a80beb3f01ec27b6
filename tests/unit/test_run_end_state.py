"""How a live run ends: a breaker trip is Failed even when the e-stop run its own event started reached the engine
first (the stop agent makes that the usual order); stops by hand stay Cancelled."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import cast

from flows.control import EngineControl
from planar_core.engine.strategy import Strategy


def control(cause: str | None, detail: str = "") -> EngineControl:
    c = EngineControl(cast(Strategy, None), asyncio.Event(), datetime.now(UTC))
    c.cause, c.detail = cause, detail
    return c


def test_breaker_then_estop_run_is_failed_and_says_both() -> None:
    c = control("emergency stop", "circuit breaker: Daily loss limit exceeded: -3513.61 USDT")
    assert c.ends_failed("stopped", "daily_loss")
    said = c.ended_because("stopped", "emergency stop: circuit breaker: Daily loss", "daily_loss")
    assert said.startswith("halted by the daily_loss circuit breaker, then emergency stop (circuit breaker: Daily loss")


def test_breaker_alone_is_failed() -> None:
    c = control(None)
    assert c.ends_failed("halted", "drawdown")
    assert (
        c.ended_because("halted", "circuit breaker: Maximum drawdown exceeded", "drawdown")
        == "halted: circuit breaker: Maximum drawdown exceeded"
    )


def test_stops_by_hand_are_cancelled_even_when_they_halt() -> None:
    for cause in ("emergency stop", "cancelled", "terminated"):
        assert not control(cause, "by hand").ends_failed("halted", None)
    assert control(None).ends_failed("halted", None)  # a halt with no stop by hand (a store failure, an e-stop in logic)
    assert not control(None).ends_failed("duration", None)
