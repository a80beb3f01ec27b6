"""Binance's symbol filters, as declared in ``exchangeInfo`` and enforced on every new order.

One module for both the declaration and the check, so that what the sandbox advertises is exactly what it
enforces. The errors are Binance's: spot answers ``-1013 Filter failure: <NAME>``, USDⓈ-M futures their own codes
(``-4013`` price below the minimum, ``-4016``/``-4024`` outside the PERCENT_PRICE band, ``-4005`` above the
market-order cap, ``-2025`` too many open orders).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from . import errors as E
from .fmt import px, qx, s
from .market_data import MarketSpec

MAX_NUM_ORDERS = 200
MAX_NUM_ALGO_ORDERS = {"spot": 5, "linear": 10}
# spot PERCENT_PRICE_BY_SIDE (against the 5-minute average price) and futures PERCENT_PRICE (against the mark price)
SPOT_BAND = (Decimal("0.2"), Decimal(5))
FUTURES_BAND = (Decimal("0.95"), Decimal("1.05"))
TRAILING_DELTA = (10, 2000)  # basis points, spot
ICEBERG_PARTS = 10
MAX_NOTIONAL = Decimal("9000000")  # spot NOTIONAL's maxNotional (limit orders; applyMaxToMarket false)


@dataclass(frozen=True)
class Bounds:
    """The price and quantity limits of one market, derived from its spec as Binance's are from its tick/step."""

    min_price: Decimal
    max_price: Decimal
    market_max_qty: Decimal

    @classmethod
    def of(cls, spec: MarketSpec, level: float | None) -> Bounds:
        """``level``: the market's price when it was listed (futures' minimum price is a fraction of it); None when
        it is not known (paper trading on live prices): the limits are then the exchange's own as its listing says
        (``MarketSpec.market_max_qty``, ``min_price``, ``max_price``), else the tick, a billion and the lot's
        maximum. Paper without the exchange's market-order cap filled a 1 000 BTC market buy that Binance refuses
        (-1013 MARKET_LOT_SIZE; an outside trial)."""
        if level is None:  # the exchange's own, where paper trading copied them from its listing
            return cls(spec.min_price or spec.tick_size, spec.max_price or Decimal(10) ** 9, spec.market_max_qty or spec.max_qty)
        if spec.kind == "spot":
            return cls(spec.tick_size, Decimal(1_000_000), spec.max_qty / 10)
        floor = (Decimal(repr(level)) / 100).quantize(spec.tick_size)
        return cls(max(floor, spec.tick_size), (Decimal(repr(level)) * 20).quantize(spec.tick_size), spec.max_qty / 8)


def declared(spec: MarketSpec, bounds: Bounds) -> list[dict[str, object]]:
    """The ``filters`` of ``exchangeInfo`` for one symbol."""
    lot: dict[str, object] = {"minQty": qx(spec, spec.min_qty), "maxQty": qx(spec, spec.max_qty), "stepSize": qx(spec, spec.step_size)}
    market_lot: dict[str, object] = {**lot, "maxQty": qx(spec, bounds.market_max_qty)}
    price: dict[str, object] = {
        "filterType": "PRICE_FILTER",
        "minPrice": px(spec, bounds.min_price),
        "maxPrice": px(spec, bounds.max_price),
        "tickSize": px(spec, spec.tick_size),
    }
    if spec.kind == "spot":
        low, high = SPOT_BAND
        return [
            price,
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "ICEBERG_PARTS", "limit": ICEBERG_PARTS},
            {"filterType": "MARKET_LOT_SIZE", **market_lot},
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": TRAILING_DELTA[0],
                "maxTrailingAboveDelta": TRAILING_DELTA[1],
                "minTrailingBelowDelta": TRAILING_DELTA[0],
                "maxTrailingBelowDelta": TRAILING_DELTA[1],
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": str(high),
                "bidMultiplierDown": str(low),
                "askMultiplierUp": str(high),
                "askMultiplierDown": str(low),
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": s(spec.min_notional),
                "applyMinToMarket": True,
                "maxNotional": s(MAX_NOTIONAL),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": MAX_NUM_ORDERS},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": MAX_NUM_ALGO_ORDERS["spot"]},
        ]
    low, high = FUTURES_BAND
    return [
        price,
        {"filterType": "LOT_SIZE", **lot},
        {"filterType": "MARKET_LOT_SIZE", **market_lot},
        {"filterType": "MAX_NUM_ORDERS", "limit": MAX_NUM_ORDERS},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": MAX_NUM_ALGO_ORDERS["linear"]},
        {"filterType": "MIN_NOTIONAL", "notional": s(spec.min_notional)},
        {"filterType": "PERCENT_PRICE", "multiplierUp": f"{high:.4f}", "multiplierDown": f"{low:.4f}", "multiplierDecimal": "4"},
    ]


def check_price(spec: MarketSpec, bounds: Bounds, price: Decimal) -> None:
    if price <= 0 or price % spec.tick_size != 0 or price > bounds.max_price:
        raise E.filter_failure("PRICE_FILTER")
    if price < bounds.min_price:
        if spec.kind == "linear":
            raise E.ApiError(400, -4013, "Price less than min price.")
        raise E.filter_failure("PRICE_FILTER")


def check_band(spec: MarketSpec, side: str, price: Decimal, reference: Decimal) -> None:
    """A limit price within the band around ``reference``: spot's 5-minute average (PERCENT_PRICE_BY_SIDE), futures'
    mark price (PERCENT_PRICE: a buy at most ``multiplierUp`` x mark, a sell at least ``multiplierDown`` x mark, and
    neither outside the band)."""
    if spec.kind == "spot":
        low, high = SPOT_BAND
        if not reference * low <= price <= reference * high:
            raise E.filter_failure("PERCENT_PRICE_BY_SIDE")
        return
    low, high = FUTURES_BAND
    if price > reference * high:
        raise E.ApiError(400, -4016, f"Limit price can't be higher than {px(spec, reference * high)}.")
    if price < reference * low:
        raise E.ApiError(400, -4024, f"Limit price can't be lower than {px(spec, reference * low)}.")


def check_market_qty(spec: MarketSpec, bounds: Bounds, qty: Decimal) -> None:
    if qty > bounds.market_max_qty:
        if spec.kind == "linear":
            raise E.ApiError(400, -4005, "Quantity greater than max quantity.")
        raise E.filter_failure("MARKET_LOT_SIZE")


def check_open_count(kind: str, open_orders: int, algo: bool) -> None:
    limit = MAX_NUM_ALGO_ORDERS[kind] if algo else MAX_NUM_ORDERS
    if open_orders < limit:
        return
    if kind == "linear":
        raise E.ApiError(400, -2025, "Reach max open order limit.")
    raise E.filter_failure("MAX_NUM_ALGO_ORDERS" if algo else "MAX_NUM_ORDERS")


def check_trailing_delta(delta: int) -> None:
    if not TRAILING_DELTA[0] <= delta <= TRAILING_DELTA[1]:
        raise E.filter_failure("TRAILING_DELTA")


def check_iceberg(spec: MarketSpec, qty: Decimal, iceberg: Decimal) -> None:
    """ICEBERG_PARTS: CEIL(quantity / icebergQty) parts at most (filters.md). An icebergQty at or above the quantity
    is one part, which passes here: the matching engine refuses it after the filters ("IcebergQty exceeds QTY.")."""
    if iceberg <= 0 or iceberg % spec.step_size != 0 or (qty / iceberg).to_integral_value(ROUND_CEILING) > ICEBERG_PARTS:
        raise E.filter_failure("ICEBERG_PARTS")
