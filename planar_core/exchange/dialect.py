"""What the ccxt adapter asks of a venue's dialect: everything ccxt leaves to the exchange.

ccxt's unified API covers the requests; the dialect covers the rest (how an order is named by its client id, the
parameters of conditional orders and closes, the fields of raw payloads ccxt does not map, the error codes, the
kline "closed" flag, the capability table). ``exchange/binance.py`` and ``exchange/bybit.py`` implement it; the
adapter (``client.py``, ``ccxt_venue.py``, ``reports.py``, ``requests.py``) reads nothing else of a venue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import ccxt

from ..model.stamp import Stamp
from ..model.types import Json
from ..model.venue import AssetBalance, Capabilities
from . import errors as E
from .budget import Pacer
from .ccxt_types import CcxtExchange
from .ws_cache import order_cache

if TYPE_CHECKING:
    from ..config import StrategyConfig

STAMP_KEY = "planar_stamp"  # set on private stream messages as they arrive (StrictBinance.stamp, StrictBybit)


def parse_strict(ex: CcxtExchange, http_response: str) -> object:
    """A dialect client's ``parse_json``: an answer that starts like JSON but does not parse raises ``BadResponse``.
    ccxt returns None for it and its methods then parse an empty answer, so a truncated open-orders list would read
    as "nothing open" and an emergency stop would report clean with every order live."""
    if ex.is_json_encoded_object(http_response):
        try:
            return ex.on_json_response(http_response)
        except ValueError as exc:
            raise ccxt.BadResponse(f"{ex.id} malformed JSON answer ({len(http_response)} bytes): {http_response[:80]!r}") from exc
    return None


class DialectClient:
    """What every dialect's ccxt client adds to ccxt's (a mixin, first among its bases): a strict JSON parse
    (``parse_strict``), the engine's counter to stamp private stream messages with as they arrive
    (``ExchangeClient`` hands it in), and the host's request budgets when the venue's requests draw from them."""

    planar_seq: Callable[[], int]
    pacer: Pacer | None = None

    def parse_json(self, http_response: str) -> object:
        return parse_strict(self, http_response)

    def handle_order(self, client: object, message: Json) -> None:
        """ccxt's, with its order cache made first as ``order_cache`` makes it (an update found from the newest end:
        ws_cache.py); ccxt makes the cache here when it has none, with the same limit."""
        if getattr(self, "orders", None) is None:
            self.orders = order_cache(self.safe_integer(self.options, "ordersLimit", 1000))  # type: ignore[attr-defined]
        super().handle_order(client, message)  # type: ignore[misc]


def stamp_in(info: object) -> Stamp | None:
    """The stamp a dialect client put on a stream message (a parsed report's ``info``); None: not from the stream."""
    mark = info.get(STAMP_KEY) if isinstance(info, dict) else None
    if not isinstance(mark, dict) or not isinstance(mark.get("seq"), int):
        return None
    assets = mark.get("assets")
    return Stamp(mark["seq"], mark.get("ms"), frozenset(assets) if isinstance(assets, list) else None)


def refined(exc: BaseException, code: int | None, kinds: Mapping[int, type[E.ExchangeOpError]]) -> E.ExchangeOpError | None:
    """The engine's typed error for an exchange code ccxt leaves generic (None: ccxt's class decides)."""
    kind = kinds.get(code) if code is not None else None
    return kind(str(exc), code, exc) if kind is not None else None


class Dialect(Protocol):
    name: str  # the venue's registry name
    caps: Capabilities
    history_methods: tuple[str, ...]  # the ccxt methods whose answers together are a symbol's order history
    listing_params: Json  # ccxt params of every listing (open orders, history, fills): Bybit's cursor paging
    account_positions_params: Json  # ccxt params of a listing of every futures position of the account (no symbol)

    def build(self, cfg: StrategyConfig, markets_type: str | None = None) -> CcxtExchange:
        """A ccxt.pro client configured from the strategy: credentials, limits, the sandbox endpoint."""
        ...

    # -------------------------------------------------------------- naming orders, building requests
    def by_client_id(self, client_order_id: str, waiting_trigger: bool = False) -> Json: ...
    def trigger_params(self, contract: bool, waiting_trigger: bool) -> Json: ...
    def conditional_params(
        self,
        trigger: str,
        contract: bool,
        trigger_price: float | None,
        trailing_percent: float | None,
        side: str,
        reference: float | None = None,
    ) -> Json: ...
    def position_params(self, position_side: str) -> Json:
        """ccxt params naming the hedge-mode position (``long`` / ``short``) an order opens or closes."""
        ...

    def oco_request(self, market_id: str, side: str, amount: str, take_profit: str, stop: str, above_cid: str, below_cid: str) -> Json: ...
    async def create_oco(self, ex: CcxtExchange, request: Json) -> Json: ...
    def order_trades_params(self, order_id: str) -> Json: ...
    def order_books(self, contract: bool) -> list[Json]:
        """ccxt params of each book of open orders to read or cancel (Binance's futures conditional orders waiting
        for their trigger are a book of their own)."""
        ...

    def cancel_all_books(self, contract: bool) -> list[Json]:
        """ccxt params of each cancel-all that together cancel every open order of a symbol (the account e-stop):
        Binance's books; Bybit's spot kinds of order, which its cancel-all takes one at a time."""
        ...

    # -------------------------------------------------------------- reading raw payloads
    def trigger_phase(self, raw: Json) -> str | None: ...
    def triggered_order_id(self, raw: Json) -> str | None: ...
    def is_algo_record(self, raw: Json) -> bool: ...
    def stamp_of(self, raw: object) -> Stamp | None: ...
    def snapshot_time(self, raw: object) -> int | None: ...
    def position_time(self, raw: object) -> int | None: ...
    def position_side(self, info: object) -> str | None: ...
    def fill_client_id(self, info: object) -> str | None: ...
    def realized_pnl(self, info: object) -> float | None: ...
    def reject_reason(self, info: object) -> str | None: ...
    def futures_balances(self, raw: Json) -> dict[str, AssetBalance] | None: ...
    def reports_funding(self, raw: Json) -> bool: ...
    def funding_received(self, raw: Json) -> float | None:
        """What the account received (< 0: paid) in a ccxt funding-history row (ccxt's sign differs per exchange)."""
        ...

    async def funding_history(self, ex: CcxtExchange, since: int | None) -> list[Json]:
        """ccxt funding-history rows of every payment booked since ``since``, however the exchange pages them."""
        ...

    def forced_close(self, raw: Json) -> str | None: ...
    def closed_through(self, ex: object, symbol: str, timeframe: str) -> int | None: ...
    def used_weight(self, headers: dict[str, str] | None) -> int | None: ...
    def balance_cache_key(self, market_type: str) -> str:
        """Where ccxt's stream cache (``ex.balance``) keeps the account section's latest balance."""
        ...

    def cached_position_rows(self, ex: CcxtExchange) -> list[Json]:
        """The futures positions ccxt's stream cache holds (``ex.positions``)."""
        ...

    # -------------------------------------------------------------- the account's switches
    def switch_scope(self, market: Json) -> str | None:
        """The exchange-side dead-man's switch that covers the market's orders (``Venue.switch_scope``): its name,
        or None where the venue has none for it."""
        ...

    async def arm_switch(self, ex: CcxtExchange, scope: str, window_ms: int) -> int:
        """Arm the switch ``scope`` again (``Venue.arm_switch``); returns the window the exchange applies (ms)."""
        ...

    async def disarm_switch(self, ex: CcxtExchange, scope: str) -> None:
        """Stop the switch ``scope``; raises ``InvalidOrder`` where no request stops it (``SwitchKind.CONNECTION``)."""
        ...

    async def can_withdraw(self, ex: CcxtExchange) -> bool | None: ...
    async def position_mode(self, ex: CcxtExchange) -> bool:
        """Whether the account holds futures positions in hedge mode."""
        ...

    # -------------------------------------------------------------- errors
    def error_code(self, exc: BaseException) -> int | None: ...
    def already_set(self, exc: BaseException) -> bool: ...
    def map_error(self, exc: BaseException) -> E.ExchangeOpError: ...
