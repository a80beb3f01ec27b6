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


class _Run:
    def __init__(self, state: object) -> None:
        self.state = state


class _Client:
    """What poll_once reads: this run's state, and no e-stop request."""

    def __init__(self, state: object) -> None:
        self.run = _Run(state)

    async def read_flow_run(self, run_id: object) -> _Run:
        return self.run

    async def read_flow_runs(self, **kwargs: object) -> list[object]:
        return []


def test_a_run_set_to_failed_suspended_or_completed_from_outside_stops_the_engine() -> None:
    """The UI's Suspend, or "Change state" to Failed or Completed, on a running live run: the engine stops as a cancel
    does, and says why. It went on placing orders under "Failed" (an outside trial), where Cancel is then refused."""
    from uuid import uuid4

    from prefect.states import Completed, Failed, Running, Suspended

    for state, name in ((Failed(message="operator marked failed"), "Failed"), (Suspended(), "Suspended"), (Completed(), "Completed")):
        c = control(None)
        asyncio.run(c.poll_once(_Client(state), uuid4()))  # type: ignore[arg-type]
        assert c.stop.is_set() and c.cause == "cancelled" and name in c.detail, (name, c.detail)
    running = control(None)
    asyncio.run(running.poll_once(_Client(Running()), uuid4()))  # type: ignore[arg-type]
    assert not running.stop.is_set() and running.cause is None
