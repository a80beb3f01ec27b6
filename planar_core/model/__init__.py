"""Orders, trades, positions, balances and the per-asset state of a strategy."""

from .types import (PENDING, AssetInstance, Balance, Order, OrderType, Pending, Position, Side, Trade)

__all__ = ["PENDING", "Pending", "AssetInstance", "Balance", "Order", "OrderType", "Position", "Side", "Trade"]
