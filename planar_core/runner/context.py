"""``LiveContext``: the ``StrategyContext`` (model/context.py) of a live engine, the one thing strategy code holds.

It wraps the ``Strategy`` and answers with read-only views; its actions are the engine's own, called with the
engine's objects looked up again from what the strategy hands back (a symbol, an ``AssetView``, an
``OrderView``), so strategy code never holds, nor passes back, a piece of the engine's mutable state. An order
that is not one the engine tracks on that asset (another strategy's, a made-up one) is never cancelled.

The wrapped strategy is kept in a name-mangled slot and the object refuses assignment: this keeps honest code
honest; it is not a sandbox against code that digs for it on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, NoReturn

from pydantic import BaseModel

from ..model import (
    AssetInstance,
    CancelAllAnswer,
    CancelAnswer,
    CancelOutcome,
    CloseAnswer,
    LeverageAnswer,
    OrderAnswer,
    OrderType,
    PositionSide,
    Side,
    Trade,
)
from ..model.clock import now_ms
from ..model.views import AssetView, BalanceView, OrderView, PortfolioMetrics, PositionView, TradeView, ViewAnswer
from ..risk import metrics as M

if TYPE_CHECKING:
    from ..engine.strategy import Strategy


def answer_view(answer: OrderAnswer, ai: AssetInstance | None = None) -> ViewAnswer:
    """An order answer with its fill as a ``TradeView`` (``PENDING``, ``UNKNOWN`` and ``None`` as they are); with
    ``ai``, the view carries the order's amount as sent and what the engine changed from what was asked."""
    if not isinstance(answer, Trade):
        return answer
    order = ai.orders.get(answer.client_order_id) if ai is not None and answer.client_order_id else None
    return TradeView.of(answer, order)


class LiveContext:
    """What a ``Logic`` running on a live (or paper) ``Strategy`` sees. Satisfies ``StrategyContext``."""

    __slots__ = ("__params", "__s")
    __s: Strategy
    __params: BaseModel

    def __init__(self, s: Strategy, params: BaseModel) -> None:
        object.__setattr__(self, "_LiveContext__s", s)
        object.__setattr__(self, "_LiveContext__params", params)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"the strategy context is read-only: {name} cannot be set")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"the strategy context is read-only: {name} cannot be deleted")

    def __repr__(self) -> str:
        return f"LiveContext({self.__s.name!r})"

    def _set_params(self, params: BaseModel) -> None:
        """The runner's, when a new params version is applied between two callbacks (runner/params.py)."""
        object.__setattr__(self, "_LiveContext__params", params)

    def _view(self, ai: AssetInstance) -> AssetView:
        return AssetView(ai, self.__s.ids.owns, tuple(self.__s.config.timeframes))

    def _engine_asset(self, ai: AssetView | str) -> AssetInstance:
        return self.__s.asset(ai if isinstance(ai, str) else ai.symbol)

    # ----------------------------------------------------------------- identity and settings
    @property
    def name(self) -> str:
        return self.__s.name

    @property
    def params(self) -> BaseModel:
        return self.__params

    @property
    def main_currency(self) -> str:
        return self.__s.config.main_currency

    @property
    def margin(self) -> bool:
        return self.__s.config.margin

    @property
    def timeframes(self) -> tuple[str, ...]:
        return tuple(self.__s.config.timeframes)

    def now(self) -> int:
        """The engine's clock in milliseconds (a simulated clock in backtest, a test clock in unit tests)."""
        return now_ms(self.__s.clock)

    # ----------------------------------------------------------------- portfolio
    @property
    def universe(self) -> Mapping[str, AssetView]:
        return MappingProxyType({sym: self._view(ai) for sym, ai in self.__s.universe.items()})

    def asset(self, ai: AssetView | str) -> AssetView:
        return self._view(self._engine_asset(ai))

    @property
    def balances(self) -> Mapping[str, BalanceView]:
        return MappingProxyType({cur: BalanceView.of(b) for cur, b in self.__s.holdings.balances.items()})

    def cash(self, currency: str | None = None) -> BalanceView:
        return BalanceView.of(self.__s.cash(currency))

    def free_margin(self, currency: str | None = None) -> float:
        return self.__s.holdings.free_margin(currency)

    @property
    def positions(self) -> Mapping[str, PositionView]:
        views = {sym: PositionView.of(ai.position) for sym, ai in self.__s.universe.items()}
        return MappingProxyType({sym: p for sym, p in views.items() if p.contracts})

    def open_orders(self, ai: AssetView | str | None = None) -> list[OrderView]:
        assets = self.universe.values() if ai is None else (self.asset(ai),)
        return [o for a in assets for o in a.open_orders()]

    def trades(self, ai: AssetView | str | None = None) -> tuple[TradeView, ...]:
        assets = self.universe.values() if ai is None else (self.asset(ai),)
        return tuple(t for a in assets for t in a.trades)

    def equity(self) -> float:
        total, unpriced = M.equity(self.__s)
        return math.nan if unpriced else total

    def metrics(self) -> PortfolioMetrics:
        m = self.__s.risk.metrics(self.__s)
        return PortfolioMetrics(
            equity=m.equity,
            unrealized_pnl=m.unrealized_pnl,
            daily_pnl=m.daily_pnl,
            drawdown=m.drawdown,
            total_exposure=m.total_exposure,
            leverage=m.leverage,
            correlation_risk=m.correlation_risk,
            liquidity_risk=m.liquidity_risk,
            volatility=m.volatility,
            positions=MappingProxyType(dict(m.positions)),
            unpriced=tuple(m.unpriced),
        )

    def balance_confirmed(self, ai: AssetView | str, trade: TradeView) -> bool:
        return self.__s.balance_confirmed(self._engine_asset(ai), trade.to_trade())

    # ----------------------------------------------------------------- actions
    async def call(
        self,
        ai: AssetView | str,
        order_type: OrderType,
        side: Side,
        *,
        amount: float,
        price: float | None = None,
        waitfor: float | None = None,
        synced: bool = True,
        reduce_only: bool = False,
        trigger_price: float | None = None,
        trailing_percent: float | None = None,
        position_side: PositionSide | str = PositionSide.BOTH,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        **params: object,
    ) -> ViewAnswer:
        a = self._engine_asset(ai)
        answer = await self.__s.call(
            a,
            order_type,
            side,
            amount=amount,
            price=price,
            waitfor=waitfor,
            synced=synced,
            reduce_only=reduce_only,
            trigger_price=trigger_price,
            trailing_percent=trailing_percent,
            position_side=position_side,
            stop_loss=stop_loss,
            take_profit=take_profit,
            **params,
        )
        return answer_view(answer, a)

    async def execute(self, ai: AssetView | str, side: Side | str, amount: float) -> ViewAnswer:
        a = self._engine_asset(ai)
        return answer_view(await self.__s.execute(a, side, amount), a)

    async def cancel(self, ai: AssetView | str, order: OrderView) -> CancelAnswer:
        """Cancels only an order the engine tracks on that asset under the view's client id (else ``NOT_FOUND``,
        nothing sent)."""
        a = self._engine_asset(ai)
        tracked = a.orders.get(order.client_order_id)
        if tracked is None:
            detail = f"{order.client_order_id} is not an order of {self.__s.name} on {a.symbol}: nothing sent"
            return CancelAnswer(CancelOutcome.NOT_FOUND, order.client_order_id, None, detail)
        return await self.__s.cancel(a, tracked)

    async def cancel_all(self, ai: AssetView | str) -> CancelAllAnswer:
        return await self.__s.cancel_all(self._engine_asset(ai))

    async def close_position(
        self, ai: AssetView | str, side: PositionSide | str | None = None, *, price: float | None = None, waitfor: float | None = None
    ) -> CloseAnswer[ViewAnswer]:
        a = self._engine_asset(ai)
        closed = await self.__s.close_position(a, side, price=price, waitfor=waitfor)
        return CloseAnswer(closed.symbol, {ps: answer_view(x, a) for ps, x in closed.answers.items()}, closed.refusals)

    async def update_leverage(self, ai: AssetView | str, leverage: int) -> LeverageAnswer:
        return await self.__s.update_leverage(self._engine_asset(ai), leverage)

    def alert(self, message: str, level: str = "warning") -> None:
        self.__s.alert(message, level)
