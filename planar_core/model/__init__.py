"""Orders, trades, positions, balances and the per-asset state of a strategy."""

from .candles import Candle, Candles
from .status import OrderStatus, legal
from .types import (
    PENDING,
    UNKNOWN,
    AssetInstance,
    Balance,
    Json,
    Order,
    OrderAnswer,
    OrderRequest,
    OrderType,
    Pending,
    Position,
    PositionSide,
    Side,
    Trade,
    Unknown,
)

__all__ = [
    "PENDING",
    "UNKNOWN",
    "AssetInstance",
    "Balance",
    "Candle",
    "Candles",
    "Json",
    "Order",
    "OrderAnswer",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Pending",
    "Position",
    "PositionSide",
    "Side",
    "Trade",
    "Unknown",
    "legal",
]
