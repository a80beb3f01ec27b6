"""Error mapping against a table of ccxt exceptions and Binance codes: transient ones retried, permanent never."""

from __future__ import annotations

import ccxt
import pytest

from planar_core.exchange import errors as E
from planar_core.exchange.binance import BINANCE

TABLE = [
    (ccxt.RateLimitExceeded("binance 429"), E.RateLimited, True),
    (ccxt.DDoSProtection("binance 418 banned"), E.RateLimited, True),
    (ccxt.AuthenticationError('binance {"code":-2015,"msg":"Invalid API-key"}'), E.AuthError, False),
    (ccxt.PermissionDenied("binance no permission"), E.AuthError, False),
    (ccxt.InsufficientFunds('binance {"code":-2010,"msg":"Account has insufficient balance"}'), E.InsufficientFunds, False),
    (ccxt.ExchangeError('binance {"code":-2019,"msg":"Margin is insufficient."}'), E.InsufficientFunds, False),
    (ccxt.OrderNotFound('binance {"code":-2013,"msg":"Order does not exist."}'), E.OrderNotFound, False),
    (ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'), E.DuplicateOrder, False),
    (ccxt.InvalidOrder('binance {"code":-4116,"msg":"ClientOrderId is duplicated."}'), E.DuplicateOrder, False),
    (ccxt.ExchangeError('binance {"code":-2022,"msg":"ReduceOnly Order is rejected."}'), E.InvalidOrder, False),
    (ccxt.ExchangeError('binance {"code":-4164,"msg":"Order notional must be no smaller than 5"}'), E.InvalidOrder, False),
    (ccxt.BadRequest('binance {"code":-1013,"msg":"Filter failure: LOT_SIZE"}'), E.InvalidOrder, False),
    (ccxt.InvalidNonce('binance {"code":-1021,"msg":"Timestamp outside recvWindow"}'), E.ClockSkew, True),
    (ccxt.ExchangeError('binance {"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}'), E.ClockSkew, True),
    (ccxt.BadSymbol("binance does not have market symbol FOO/BAR"), E.BadSymbol, False),
    (ccxt.BadResponse("binance malformed"), E.MalformedResponse, True),
    (ccxt.NullResponse("binance empty"), E.MalformedResponse, True),
    (ccxt.RequestTimeout("binance timed out"), E.NetworkUncertain, True),
    (ccxt.ExchangeNotAvailable("binance 503"), E.NetworkUncertain, True),
    (ccxt.NetworkError("connection reset"), E.NetworkUncertain, True),
    (TimeoutError("create_order timed out after 10s"), E.NetworkUncertain, True),
    (ConnectionResetError("reset by peer"), E.NetworkUncertain, True),
    (ccxt.ExchangeError("binance something else"), E.PermanentError, False),
    (ValueError("a bug of ours"), E.UnexpectedError, False),
]


@pytest.mark.parametrize(("raw", "expected", "transient"), TABLE, ids=[f"{type(r).__name__}-{e.__name__}" for r, e, _ in TABLE])
def test_binance_errors_map_to_typed_errors(raw: BaseException, expected: type[E.ExchangeOpError], transient: bool) -> None:
    err = BINANCE.map_error(raw)
    assert type(err) is expected
    assert err.transient is transient


def test_the_binance_code_is_kept_on_the_error() -> None:
    err = BINANCE.map_error(ccxt.InvalidOrder('binance {"code":-1013,"msg":"Filter failure: PRICE_FILTER"}'))
    assert err.code == -1013


def test_without_a_venue_only_ccxt_classes_decide() -> None:
    assert type(E.map_error(ccxt.ExchangeError('binance {"code":-2019,"msg":"Margin is insufficient."}'))) is E.PermanentError
