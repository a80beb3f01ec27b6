"""Who the engine tells what: the subscriptions of one strategy, typed, in the order they were made.

The risk manager subscribes to balance and price changes (its breakers are event-driven), to a lost connection
and with a task of its own; the logic host listens to closed bars, order updates and fills; brackets and the
re-send of absent orders listen too. They subscribe here, through methods that say what they want, rather than
appending to the engine's public lists; the engine reads the subscriptions back as tuples, so a subscriber that
unsubscribes while an event is being delivered does not disturb the delivery.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from ..alerts import AlertDispatcher
from ..alerts.dispatcher import send_alert
from ..model import AssetInstance
from ..model.health import TaskHealth
from ..model.sink import EventSink
from .notices import EngineEvent

if TYPE_CHECKING:
    from ..risk.estop import EStopReport
    from .strategy import Strategy

Listener = Callable[[EngineEvent], None]
BalanceHook = Callable[["Strategy"], object]
PriceHook = Callable[["Strategy", AssetInstance], object]
EStopHook = Callable[["Strategy", "EStopReport"], None]
TaskBody = Callable[[TaskHealth], Awaitable[None]]
ConnectionLost = Callable[["Strategy", str], Awaitable[None]]
log = logging.getLogger("planar.engine")


class Hooks:
    """One strategy's subscriptions (``Strategy.hooks``), and their delivery: a subscriber that fails is recorded
    and alerted, never silent, and the others still run (the breakers are subscribers)."""

    def __init__(self, name: str = "strategy", sink: EventSink | None = None, alerts: AlertDispatcher | None = None) -> None:
        self.name = name
        self.sink = sink
        self.alerts = alerts
        self._listeners: list[Listener] = []
        self._balance: list[BalanceHook] = []
        self._price: list[PriceHook] = []
        self._valuation: list[BalanceHook] = []
        self._together = 0  # inside prices_together(): the valuation hooks wait for its end
        self._valuation_due = False
        self._estop: list[EStopHook] = []
        self._tasks: dict[str, TaskBody] = {}
        self._connection_lost: ConnectionLost | None = None

    # ------------------------------------------------------------------ subscribing
    def listen(self, listener: Listener) -> Callable[[], None]:
        """``listener`` gets every closed bar, order update and fill (it must not block); returns its unsubscribe."""
        self._listeners.append(listener)
        return lambda: self.unlisten(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def on_balance(self, hook: BalanceHook, *, first: bool = False) -> None:
        """``hook(s)`` after every balance change; ``first``: before the hooks already there."""
        self._balance.insert(0, hook) if first else self._balance.append(hook)

    def on_price(self, hook: PriceHook) -> None:
        """``hook(s, ai)`` after every price update of ``ai``."""
        self._price.append(hook)

    def on_valuation(self, hook: BalanceHook) -> None:
        """``hook(s)`` after prices changed: once for prices that change together (``prices_together``), else
        after each price update, before the price hooks (the breakers value the whole account)."""
        self._valuation.append(hook)

    def on_emergency_stop(self, hook: EStopHook) -> None:
        """``hook(s, report)`` once an emergency stop of this strategy has acted and been recorded."""
        self._estop.append(hook)

    def add_task(self, name: str, body: TaskBody) -> None:
        """A task started beside the watchers, supervised like them (the risk monitor, the heartbeat)."""
        self._tasks[name] = body

    def on_connection_lost(self, handler: ConnectionLost | None) -> None:
        """Who decides what a lost connection means (the risk manager); None: the engine halts."""
        self._connection_lost = handler

    # ------------------------------------------------------------------ reading them back (the engine)
    def listeners(self) -> tuple[Listener, ...]:
        return tuple(self._listeners)

    def balance_hooks(self) -> tuple[BalanceHook, ...]:
        return tuple(self._balance)

    def price_hooks(self) -> tuple[PriceHook, ...]:
        return tuple(self._price)

    def estop_hooks(self) -> tuple[EStopHook, ...]:
        return tuple(self._estop)

    def tasks(self) -> tuple[tuple[str, TaskBody], ...]:
        return tuple(self._tasks.items())

    def connection_lost_handler(self) -> ConnectionLost | None:
        return self._connection_lost

    # ------------------------------------------------------------------ delivering (the engine)
    def balance_changed(self, s: "Strategy") -> None:
        """A balance, a position or a valuation price changed: every balance hook, in order."""
        for hook in self.balance_hooks():
            self._run(hook, s)

    def price_changed(self, s: "Strategy", ai: AssetInstance) -> None:
        if self._together:
            self._valuation_due = True
        else:
            for valuation in tuple(self._valuation):
                self._run(valuation, s)
        for hook in self.price_hooks():
            self._run(hook, s, ai)

    @contextlib.contextmanager
    def prices_together(self, s: "Strategy") -> Iterator[None]:
        """Prices that change at one moment (a backtest's candles of one time): the account is valued once, after
        all of them, not once per price on a mix of new and old prices (the price hooks of each asset still run
        as its price changes)."""
        self._together += 1
        try:
            yield
        finally:
            self._together -= 1
            if not self._together and self._valuation_due:
                self._valuation_due = False
                for valuation in tuple(self._valuation):
                    self._run(valuation, s)

    def deliver(self, event: EngineEvent) -> None:
        """A closed bar, an order update or a fill to every listener (the logic host queues it)."""
        for listener in self.listeners():
            self._run(listener, event)

    def _run(self, hook: Callable[..., object], *args: object) -> None:
        try:
            hook(*args)
        except Exception as exc:
            log.exception("update hook %s failed", getattr(hook, "__qualname__", hook))
            msg = f"{self.name}: an update hook failed ({type(exc).__name__}: {exc}); risk checks may have been skipped"
            if self.sink is not None:
                self.sink.record("error_occurred", reason=msg)
            send_alert(self.alerts, msg, "error")
