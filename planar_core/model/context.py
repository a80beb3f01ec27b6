"""What strategy code sees: ``StrategyContext``, the one argument every ``Logic`` callback receives.

A strategy reads the account through read-only views (model/views.py) and acts through exactly seven actions:
``call``, ``execute``, ``cancel``, ``cancel_all``, ``close_position``, ``update_leverage`` and ``alert``, with the
engine's own names and signatures. Halting, re-arming, the emergency stop, the exchange client, the event trace
and the persisted state are the operator's and the engine's, not the strategy's: the context does not have them,
so strategy code cannot reach them by accident (``ctx.halt`` is an ``AttributeError``).

This is a Protocol of the domain layer: it names no engine, venue or mode, so the live engine
(runner/context.py), paper trading and a backtest on a simulated clock can each hand strategy code the same
interface, and a strategy cannot tell them apart except through time and prices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import BaseModel

from .answers import CancelAllAnswer, CancelAnswer, CloseAnswer, LeverageAnswer
from .types import OrderType, PositionSide, Side
from .views import AssetView, BalanceView, OrderView, PortfolioMetrics, PositionView, TradeView, ViewAnswer


class StrategyContext(Protocol):
    """The strategy's window on the engine: read-only state and the actions a strategy may take."""

    # ----------------------------------------------------------------- identity and settings (read-only)
    @property
    def name(self) -> str:
        """The strategy's name (its config's ``name``)."""
        ...

    @property
    def params(self) -> BaseModel:
        """The logic's validated, frozen ``Params``."""
        ...

    @property
    def main_currency(self) -> str:
        """The currency equity and PnL are valued in."""
        ...

    @property
    def margin(self) -> bool:
        """Whether the strategy trades margin (futures) markets."""
        ...

    @property
    def timeframes(self) -> tuple[str, ...]:
        """The candle timeframes the engine feeds."""
        ...

    def now(self) -> int:
        """The engine clock, in ms since the epoch (UTC): wall time live and in paper, simulated time in a backtest."""
        ...

    # ----------------------------------------------------------------- portfolio (read-only)
    @property
    def universe(self) -> Mapping[str, AssetView]:
        """Symbol -> the asset's view, for every symbol the strategy trades."""
        ...

    def asset(self, ai: AssetView | str) -> AssetView:
        """The view of a symbol of the universe (``KeyError`` naming the universe for any other)."""
        ...

    @property
    def balances(self) -> Mapping[str, BalanceView]:
        """Currency -> balance as last reported by the exchange."""
        ...

    def cash(self, currency: str | None = None) -> BalanceView:
        """The balance of ``currency`` (default: the main currency); zero if none is held."""
        ...

    def free_margin(self, currency: str | None = None) -> float:
        """Margin available for new orders in ``currency`` (the settle currency; default: the main currency)."""
        ...

    @property
    def positions(self) -> Mapping[str, PositionView]:
        """Symbol -> the open (non-zero) position, net of both sides in hedge mode."""
        ...

    def open_orders(self, ai: AssetView | str | None = None) -> list[OrderView]:
        """The strategy's own possibly-live orders on ``ai`` (default: on every asset)."""
        ...

    def trades(self, ai: AssetView | str | None = None) -> tuple[TradeView, ...]:
        """The fills of the strategy's own orders on ``ai`` (default: on every asset)."""
        ...

    def equity(self) -> float:
        """Wallet balance + unrealized PnL in the main currency; NaN while a holding cannot be valued."""
        ...

    def metrics(self) -> PortfolioMetrics:
        """Equity, unrealized and daily PnL, drawdown, exposure, leverage, correlation, liquidity and volatility."""
        ...

    def balance_confirmed(self, ai: AssetView | str, trade: TradeView) -> bool:
        """Whether the balances and positions shown now are known to include ``trade``."""
        ...

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
        """Place an order: a ``TradeView`` (filled within ``waitfor``), ``PENDING`` (accepted), ``UNKNOWN`` (outcome
        not known yet; the verdict reaches ``on_order_update``) or ``None`` (refused: nothing booked). Never raises."""
        ...

    async def execute(self, ai: AssetView | str, side: Side | str, amount: float) -> ViewAnswer:
        """Trade ``amount`` now through the (auto-tuned) execution policy."""
        ...

    async def cancel(self, ai: AssetView | str, order: OrderView) -> CancelAnswer:
        """Cancel one of the strategy's orders. ``.outcome``: ``CANCELLED`` (the exchange confirmed it),
        ``ALREADY_CLOSED`` (no longer open: ``.status`` says how it ended), ``NOT_FOUND`` (not the strategy's order
        on ``ai``: nothing sent), ``REFUSED`` (the exchange said no: still open) or ``UNKNOWN`` (no answer: it may be
        cancelled or not; ``on_order_update`` says). Never raises; has no truth value (read ``.cancelled``)."""
        ...

    async def cancel_all(self, ai: AssetView | str) -> CancelAllAnswer:
        """Cancel every order the strategy has open on ``ai``, verified by the exchange's listing: which were
        cancelled, which had ended otherwise, which are still open and why, and whether the listing verified it."""
        ...

    async def close_position(
        self, ai: AssetView | str, side: PositionSide | str | None = None, *, price: float | None = None, waitfor: float | None = None
    ) -> CloseAnswer[ViewAnswer]:
        """Close the position (hedge mode: one ``side`` or both): reduce-only market, or limit at ``price``. One
        ``call`` answer per side that had a position (``.answers``, and ``.refusals`` for a side refused);
        ``.nothing_to_close`` when there was none (nothing sent)."""
        ...

    async def update_leverage(self, ai: AssetView | str, leverage: int) -> LeverageAnswer:
        """Set the asset's leverage (flat, no open orders): ``.outcome`` ``APPLIED``, ``REFUSED`` (``.refusal``: the
        typed reason) or ``UNKNOWN`` (the exchange did not answer). Never raises; has no truth value."""
        ...

    def alert(self, message: str, level: str = "warning") -> None:
        """Send an alert through the configured channels."""
        ...
