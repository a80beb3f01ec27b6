"""The strategy interface: a typed ``Logic`` with a frozen ``Params`` model and event callbacks.

Write a strategy by subclassing ``Logic`` and overriding the callbacks you need::

    class MACross(Logic):
        class Params(LogicParams):
            fast: int = 5
            slow: int = 20

        async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
            closes = ai.ohlcv[timeframe].closed[:, 4]
            ...

``Params`` is validated from the config's ``logic_params`` when the config loads (a wrong name or type
fails there, naming the field) and is frozen. Callbacks run one at a time, in the order the events happened,
on the engine's event loop: ``on_bar`` as the exchange closes a candle, ``on_order_update`` and ``on_fill``
as the watchers or an order's answer report them, ``on_tick`` every ``tick_interval`` seconds (for polling
logic; Planar's ``call!(s, ts, ctx)``). An exception in a callback is recorded and counted; it halts the
strategy or fails the run only if the config says so (``logic_errors``).

Every callback's first argument is the strategy's context (``StrategyContext``, model/context.py), not the
engine: read-only views of the account and the actions a strategy may take (``call``, ``execute``, ``cancel``,
``cancel_all``, ``close_position``, ``update_leverage``, ``alert``). Assets, orders and fills arrive as read-only
views too (``AssetView``, ``OrderView``, ``TradeView``, model/views.py). This module imports only the domain layer:
the same ``Logic`` runs live, in paper and in a backtest.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from .model import Candle
from .model.context import StrategyContext
from .model.views import AssetView, OrderView, TradeView

API_VERSION = 1
"""The interface version this engine runs. A logic declares the version it was written for
(``Logic.api_version``); a logic written for another version is refused when the config loads."""


class LogicParams(BaseModel):
    """A strategy's parameters: frozen, and unknown names are an error (a typo never goes unnoticed)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)  # a default of the wrong type fails at load


class Logic:
    """Base class of a strategy's logic; every callback is optional (the defaults do nothing)."""

    api_version: ClassVar[int] = API_VERSION
    Params: ClassVar[type[LogicParams]] = LogicParams

    def __init__(self, params: LogicParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @classmethod
    def from_config(cls, params: object) -> Logic:
        """An instance with ``params`` (the config's ``logic_params``) validated by ``Params``."""
        return cls(cls.Params.model_validate(params or {}))

    @classmethod
    def wants_ticks(cls) -> bool:
        """Whether ``on_tick`` is overridden (a logic without it is never woken by the clock)."""
        return cls.on_tick is not Logic.on_tick

    async def on_start(self, ctx: StrategyContext) -> None:
        """Once, after the engine has synced the account and started its watchers, before any other callback."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        """A candle of ``ai`` on ``timeframe`` closed (closed candles only; ``ai.ohlcv[timeframe]`` holds it too)."""

    async def on_order_update(self, ctx: StrategyContext, order: OrderView) -> None:
        """One of the strategy's orders changed status or filled more (``order.status``, ``order.filled``).

        This is also how the verdict on an order ``ctx.call`` answered ``UNKNOWN`` for arrives: ``order.verdict`` is
        "found" (``order.status`` is then its real status) or "absent" (``failed``: it was never booked). With
        ``order_monitoring.resend_absent`` a later update of the failed order names its re-send
        (``order.resent_as``), whose own updates follow."""

    async def on_fill(self, ctx: StrategyContext, order: OrderView, trade: TradeView) -> None:
        """A new fill of ``order``."""

    async def on_tick(self, ctx: StrategyContext) -> None:
        """Every ``tick_interval`` seconds, for polling logic."""

    async def on_stop(self, ctx: StrategyContext) -> None:
        """Once, when the run ends (duration, stop request, halt), while the engine is still connected."""
