"""Subscriptions go through ``Strategy.hooks`` (engine/hooks.py): typed methods, not the engine's public lists."""

from __future__ import annotations

from planar_core.engine.hooks import Hooks
from planar_core.engine.notices import BarClosed, EngineEvent
from planar_core.model import Candle

from .fake_venue import started


def bar_of(s: object) -> BarClosed:
    ai = next(iter(s.universe.values()))  # type: ignore[attr-defined]
    return BarClosed(ai, "1m", Candle(0, 1.0, 1.0, 1.0, 1.0, 1.0))


async def test_the_engine_keeps_no_public_subscription_lists() -> None:
    s, _venue, _clock = await started()
    for name in ("listeners", "on_balance_update", "on_price_update", "on_emergency_stop", "extra_tasks", "on_connection_lost"):
        assert not hasattr(s, name), name
    assert isinstance(s.hooks, Hooks)
    assert {name for name, _ in s.hooks.tasks()} >= {"risk-monitor"}  # the risk manager subscribed through the hooks
    assert s.hooks.connection_lost_handler() == s.risk.connection_lost


async def test_a_listener_that_unsubscribes_while_an_event_is_delivered_does_not_rob_the_next_one() -> None:
    s, _venue, _clock = await started()
    seen: list[str] = []

    def once(event: EngineEvent) -> None:
        seen.append("once")
        unsubscribe()

    unsubscribe = s.hooks.listen(once)
    s.hooks.listen(lambda e: seen.append("after"))
    s.notify(bar_of(s))
    s.notify(bar_of(s))
    assert seen == ["once", "after", "after"]


async def test_a_balance_hook_asked_first_runs_before_the_breakers_and_its_failure_stops_none() -> None:
    s, _venue, _clock = await started()
    order: list[str] = []

    def broken(_: object) -> None:
        order.append("broken")
        raise RuntimeError("boom")

    s.hooks.on_balance(lambda _: order.append("last"))
    s.hooks.on_balance(broken, first=True)
    s.hooks.balance_changed(s)
    assert order == ["broken", "last"]
    assert any("update hook failed" in str(e.get("reason")) for e in s.sink.of("error_occurred"))  # type: ignore[attr-defined]
