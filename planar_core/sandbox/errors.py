"""Binance error shapes raised by the sandbox, so ccxt maps them to its own classes."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered as Binance does: HTTP status plus ``{"code": .., "msg": ..}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def invalid_symbol() -> ApiError:
    return ApiError(400, -1121, "Invalid symbol.")


def mandatory(name: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str) -> ApiError:
    return ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.")


def filter_failure(name: str) -> ApiError:
    return ApiError(400, -1013, f"Filter failure: {name}")


def insufficient_balance() -> ApiError:
    return ApiError(400, -2010, "Account has insufficient balance for requested action.")


def margin_insufficient() -> ApiError:
    return ApiError(400, -2019, "Margin is insufficient.")


def duplicate_order(kind: str) -> ApiError:
    if kind == "linear":
        return ApiError(400, -4116, "ClientOrderId is duplicated.")
    return ApiError(400, -2010, "Duplicate order sent.")


def order_not_found() -> ApiError:
    return ApiError(400, -2013, "Order does not exist.")


def unknown_order() -> ApiError:
    return ApiError(400, -2011, "Unknown order sent.")


def reduce_only_rejected() -> ApiError:
    return ApiError(400, -2022, "ReduceOnly Order is rejected.")


def would_take() -> ApiError:
    return ApiError(400, -2010, "Order would immediately match and take.")


def bad_api_key() -> ApiError:
    return ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def api_key_format() -> ApiError:
    return ApiError(401, -2014, "API-key format invalid.")


def bad_signature() -> ApiError:
    return ApiError(400, -1022, "Signature for this request is not valid.")


def bad_timestamp() -> ApiError:
    return ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
