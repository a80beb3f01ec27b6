"""Orders, trades, positions, balances and the per-asset state of a strategy."""

from .answers import Adjustment, CancelAllAnswer, CancelAnswer, CancelOutcome, CloseAnswer, LeverageAnswer, LeverageOutcome
from .candles import Candle, Candles
from .refusals import InvalidOrderCall, Refusal, RefusalReason
from .requests import OrderCall
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
    "Adjustment",
    "AssetInstance",
    "Balance",
    "CancelAllAnswer",
    "CancelAnswer",
    "CancelOutcome",
    "Candle",
    "Candles",
    "CloseAnswer",
    "InvalidOrderCall",
    "Json",
    "LeverageAnswer",
    "LeverageOutcome",
    "Order",
    "OrderAnswer",
    "OrderCall",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Pending",
    "Position",
    "PositionSide",
    "Refusal",
    "RefusalReason",
    "Side",
    "Trade",
    "Unknown",
    "legal",
]
