"""Exchange errors as the engine sees them: transient (retry with backoff) or permanent (don't).

ccxt's classes are the key; the venue (``exchange/binance.py``) first refines what ccxt leaves generic from
the exchange's own error codes.
"""

from __future__ import annotations

from collections.abc import Callable

import ccxt


class ExchangeOpError(Exception):
    """Base of the engine's exchange errors; ``transient`` says whether a retry may succeed."""

    transient = False

    def __init__(self, message: str, code: int | None = None, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.cause = cause


class TransientError(ExchangeOpError):
    transient = True


class NetworkUncertain(TransientError):
    """The request may or may not have reached the exchange (timeout, dropped connection, 5xx)."""


class RateLimited(TransientError):
    """429/418: the request was refused before handling; wait, then retry."""


class ClockSkew(TransientError):
    """-1021: the request's timestamp is outside the receive window; refused before handling. The client measures
    the clock offset again and retries."""


class PermanentError(ExchangeOpError):
    pass


class AuthError(PermanentError):
    pass


class InsufficientFunds(PermanentError):
    pass


class InvalidOrder(PermanentError):
    pass


class OrderNotFound(PermanentError):
    pass


class DuplicateOrder(PermanentError):
    """The exchange already has an order with this client order id."""


class BadSymbol(PermanentError):
    pass


class SwitchUnavailable(PermanentError):
    """The exchange offers the account no dead-man's switch for this scope (Bybit: DCP is enabled per account and
    product by the account manager; an account without it is refused or never listed). Not a failed heartbeat: the
    engine runs without the switch there."""


class UnexpectedError(ExchangeOpError):
    """Not an answer of the exchange: an exception of our own or of a library while a request was made. Not
    retried blindly (it may be a bug), and for an order request its outcome is unknown, never a refusal."""


class MalformedResponse(TransientError):
    """The exchange answered something that does not parse into what was asked for."""


def map_error(
    exc: BaseException,
    refine: Callable[[BaseException], ExchangeOpError | None] | None = None,
    code_of: Callable[[BaseException], int | None] | None = None,
) -> ExchangeOpError:
    """Translate a ccxt (or asyncio) exception into the engine's typed error. ``refine``: the venue's reading of
    its own error codes, asked first; ``code_of``: the venue's code, kept on the error."""
    if isinstance(exc, ExchangeOpError):
        return exc
    if refine is not None and (refined := refine(exc)) is not None:
        return refined
    code = code_of(exc) if code_of is not None else None
    text = str(exc)
    table: list[tuple[type[BaseException], type[ExchangeOpError]]] = [
        (ccxt.RateLimitExceeded, RateLimited),  # 429 (in ccxt 4.5 a sibling of DDoSProtection, not a subclass)
        (ccxt.DDoSProtection, RateLimited),  # 418
        (ccxt.AuthenticationError, AuthError),
        (ccxt.PermissionDenied, AuthError),
        (ccxt.InsufficientFunds, InsufficientFunds),
        (ccxt.OrderNotFound, OrderNotFound),
        (ccxt.BadSymbol, BadSymbol),
        (ccxt.InvalidOrder, InvalidOrder),
        (ccxt.BadRequest, InvalidOrder),
        (ccxt.InvalidNonce, ClockSkew),
        (ccxt.BadResponse, MalformedResponse),
        (ccxt.NullResponse, MalformedResponse),
        (ccxt.NetworkError, NetworkUncertain),  # RequestTimeout, ExchangeNotAvailable, dropped connections
        (TimeoutError, NetworkUncertain),
        (ConnectionError, NetworkUncertain),
        (ccxt.ExchangeError, PermanentError),
    ]
    for ccxt_cls, ours in table:
        if isinstance(exc, ccxt_cls):
            return ours(text, code, exc)
    if isinstance(exc, ccxt.BaseError):
        return PermanentError(f"{type(exc).__name__}: {text}", code, exc)
    return UnexpectedError(f"{type(exc).__name__}: {text}", code, exc)
