"""The order call's request (model/requests.OrderCall): what is wrong by itself is refused when it is built, with the
sentence the trace has always carried and a typed reason; what is right is normalised once."""

from __future__ import annotations

import math

import pytest

from planar_core.model import InvalidOrderCall, OrderCall, OrderType, PositionSide, RefusalReason, Side
from planar_core.model.venue import ConditionalKind, conditional_kind


def refused(**kw: object) -> str:
    with pytest.raises(InvalidOrderCall) as caught:
        OrderCall(**kw)  # type: ignore[arg-type]
    assert caught.value.refusal.reason is RefusalReason.INVALID_PARAMS
    assert caught.value.refusal.detail == str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"type": OrderType.MARKET, "side": Side.BUY, "amount": -1.0}, "invalid amount -1.0: must be a finite number > 0"),
        ({"type": OrderType.MARKET, "side": Side.BUY, "amount": 0.0}, "invalid amount 0.0"),
        ({"type": OrderType.MARKET, "side": Side.BUY, "amount": math.nan}, "invalid amount nan"),
        ({"type": OrderType.MARKET, "side": Side.BUY, "amount": True}, "invalid amount True"),
        ({"type": OrderType.GTC, "side": Side.BUY, "amount": 1.0}, "invalid price None: a gtc order needs a price"),
        ({"type": OrderType.GTC, "side": Side.BUY, "amount": 1.0, "price": math.inf}, "invalid price inf"),
        ({"type": OrderType.STOP_LIMIT, "side": Side.BUY, "amount": 1.0, "trigger_price": 5.0}, "a stop_limit order needs a price"),
        ({"type": OrderType.STOP_MARKET, "side": Side.SELL, "amount": 1.0}, "a stop_market order needs a trigger price"),
        (
            {"type": OrderType.TRAILING_STOP, "side": Side.SELL, "amount": 1.0},
            "invalid trailing_percent None: a trailing_stop order needs a trailing percentage > 0",
        ),
        ({"type": OrderType.TRAILING_STOP, "side": Side.SELL, "amount": 1.0, "trailing_percent": -2.0}, "invalid trailing_percent -2.0"),
        (
            {"type": OrderType.STOP_MARKET, "side": Side.SELL, "amount": 1.0, "trigger_price": 5.0, "trailing_percent": 1.0},
            "trailing_percent is for trailing_stop orders, not stop_market",
        ),
        (
            {"type": OrderType.GTC, "side": Side.BUY, "amount": 1.0, "price": 5.0, "trigger_price": 4.0},
            "trigger_price / trailing_percent are for conditional order types, not gtc",
        ),
        (
            {"type": OrderType.STOP_MARKET, "side": Side.SELL, "amount": 1.0, "trigger_price": 5.0, "stop_loss": 4.0},
            "stop_loss / take_profit attach to an entry: not to a conditional or reduce-only order",
        ),
        ({"type": OrderType.MARKET, "side": Side.SELL, "amount": 1.0, "reduce_only": True, "take_profit": 4.0}, "attach to an entry"),
        ({"type": OrderType.MARKET, "side": Side.BUY, "amount": 1.0, "stop_loss": -4.0}, "invalid stop_loss -4.0"),
        ({"type": OrderType.MARKET, "side": Side.BUY, "amount": 1.0, "params": {"quantity": 5}}, "exchange params ['quantity'] refused"),
        ({"type": "limit", "side": Side.BUY, "amount": 1.0}, "'limit' is not a valid OrderType"),
        ({"type": OrderType.MARKET, "side": "up", "amount": 1.0}, "'up' is not a valid Side"),
    ],
)
def test_a_request_wrong_by_itself_is_refused_when_built(kw: dict[str, object], says: str) -> None:
    assert says in refused(**kw)


def test_a_request_is_normalised_once() -> None:
    call = OrderCall(type="market", side="sell", amount=2, price=123.0, position_side="long", params={"workingType": "MARK_PRICE"})  # type: ignore[arg-type]
    assert (call.type, call.side, call.position_side) == (OrderType.MARKET, Side.SELL, PositionSide.LONG)
    assert call.price is None  # a market order carries no limit price
    assert call.params == {"workingType": "MARK_PRICE"} and call.conditional is None and not call.sized
    trail = OrderCall(type=OrderType.TRAILING_STOP, side=Side.SELL, amount=1.0, trailing_percent=1.5, trigger_price=90.0)
    assert trail.conditional is ConditionalKind.TRAILING
    with pytest.raises(AttributeError):
        call.amount = 3.0  # type: ignore[misc]  # frozen: checked once, never changed after


def test_conditional_kind_is_typed() -> None:
    kinds = {t: conditional_kind(t) for t in OrderType}
    assert kinds[OrderType.STOP_LIMIT] is ConditionalKind.STOP and kinds[OrderType.TAKE_PROFIT_MARKET] is ConditionalKind.TAKE
    assert kinds[OrderType.TRAILING_STOP] is ConditionalKind.TRAILING and kinds[OrderType.GTC] is None
    assert all(t.trigger is kinds[t] for t in OrderType)  # OrderType.trigger answers the enum (equal to the old strings)
    assert OrderType.STOP_MARKET.trigger == "stop"
