"""Orders, trades, positions, balances and the per-asset state of a strategy."""

from .candles import Candle, Candles
from .status import OrderStatus, legal
from .types import PENDING, AssetInstance, Balance, Json, Order, OrderRequest, OrderType, Pending, Position, PositionSide, Side, Trade

__all__ = [
    "PENDING",
    "AssetInstance",
    "Balance",
    "Candle",
    "Candles",
    "Json",
    "Order",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Pending",
    "Position",
    "PositionSide",
    "Side",
    "Trade",
    "legal",
]
