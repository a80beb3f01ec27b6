"""``LocalBinance``: ccxt's binance client whose HTTP requests are answered in the same process by the sandbox's own
request handlers, without a socket.

Why this and not a second implementation of the exchange's rules: the simulated venue must accept and refuse exactly
what live accepts and refuses. Live, an order goes engine -> ``CcxtVenue`` -> ccxt (request building, parameter
names, precision) -> HTTP -> the sandbox's handler (Binance's parameter checks, filters, price bands, balances,
matching) -> JSON -> ccxt (parsing, error mapping) -> the dialect -> a report. Here every one of those steps is the
same code (but for a plain spot order, below); only the HTTP hop is replaced by a function call, so a parameter the
live path gets wrong is wrong here too, and a refusal reads the same (the same Binance error code through ccxt's own
exception table).

What the socket used to add and is left out on purpose: request weights and order counts (the simulated venue has
no rate limits: a backtest sends a year of orders in seconds), signatures and timestamps (nothing travels), and the
sandbox's injected faults (latency, lost acknowledgements): a backtest is a model of the market, not of the network.

A new spot order of the plain endpoint, the backtest's most frequent request, skips the steps that only the wire
needs (``place_spot``): ccxt's request is given to the handler as its query string would carry it, without being
signed, encoded and parsed back, and its answer is read from the exchange's records (``spot_reports.answer_report``)
instead of through JSON and ccxt's parse; tests/backtest/test_sim_parity.py holds both to the full path's answers.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from ccxt.base.errors import ExchangeError

from ..exchange.binance import StrictBinance
from ..model.types import Json
from ..sandbox import errors as SE
from ..sandbox.accounts import Account
from ..sandbox.server import Ctx, SandboxServer

UNSIGNED = ("signature", "timestamp", "recvWindow")  # what ``sign`` adds for the wire: the handlers never see it
SPOT_ORDER = "/api/v3/order"
BASE_URL = "http://127.0.0.1:9"  # never connected to: every request is answered in process (port 9: discard)


@dataclass(frozen=True)
class _Request:
    """What the sandbox's handlers read from an aiohttp request (path, method, remote, transport)."""

    path: str
    method: str
    remote: str = "127.0.0.1"
    transport: None = None


class LocalBinance(StrictBinance):
    """A ccxt binance client answered by ``server``'s handlers, as ``account`` (module docstring)."""

    def __init__(self, config: Json, server: SandboxServer, account: Account) -> None:
        super().__init__(config)
        self.local_server = server
        self.local_account = account

    async def fetch(self, url: str, method: str = "GET", headers: object = None, body: object = None) -> object:
        """One request, answered by the sandbox's route for it; then ccxt's own answer handling (its error table,
        its HTTP status mapping), as after a real response."""
        parts = urlsplit(url)
        params: dict[str, str] = dict(parse_qsl(parts.query, keep_blank_values=True))
        if isinstance(body, str) and body:
            params.update(dict(parse_qsl(body, keep_blank_values=True)))
        for unsigned in UNSIGNED:
            params.pop(unsigned, None)
        status, answer = await self._answer(method, parts.path, params)
        text = json.dumps(answer)
        self.last_response_headers: dict[str, str] = {}
        json_response = self.parse_json(text)
        self.last_http_response = text
        self.last_json_response = json_response
        self._read_status(status, url, method, text, json_response, headers, body)
        return json_response if json_response is not None else text

    def _read_status(self, status: int, url: str, method: str, text: str, answer: object, headers: object, body: object) -> None:
        """ccxt's reading of an answer's status: a refusal raises the exception its error table names."""
        reason = "OK" if status == 200 else "Error"
        self.handle_errors(status, reason, url, method, {}, text, answer, headers, body)
        self.handle_http_status_code(status, reason, url, method, text)

    async def _answer(self, method: str, path: str, params: dict[str, str]) -> tuple[int, object]:
        """The route's status and answer (the JSON object the sandbox would send)."""
        server = self.local_server
        route = server.routes.get((method, path))
        if route is None:
            return 404, {"code": -1000, "msg": f"Unknown endpoint {path}."}
        account = self.local_account if route.auth != "none" else None
        ctx = Ctx(cast(web.Request, _Request(path, method)), params, account, route.kind)
        try:
            with server.ex.at_one_instant():
                result = route.handler(ctx)
                if inspect.isawaitable(result):
                    result = await result
        except SE.ApiError as exc:
            return exc.status, exc.body()
        return 200, result

    # ------------------------------------------------------------------ spot orders without the HTTP steps
    def plain_spot(self, symbol: str, params: Json) -> bool:
        """Whether ccxt's ``create_order`` sends this order to the plain spot endpoint (``POST /api/v3/order``): a
        spot market that is not a stock, no market type or margin mode in the parameters, no portfolio margin, no
        smart order routing, not a test order. Stricter than ccxt where that is simpler (a ``type`` of "spot" in
        the parameters, or portfolio margin on in the options and off in the parameters, go the full way): an order
        that goes the full way is answered as live answers it, whatever it is."""
        market = self.markets.get(symbol) if self.markets else None
        if not market or market.get("type") != "spot" or market.get("option") or market.get("stock"):
            return False
        if "type" in params or params.get("marginMode") is not None:
            return False
        flags = [self.safe_bool_2(params, "papi", "portfolioMargin"), self.safe_bool_2(self.options, "papi", "portfolioMargin")]
        flags += [self.safe_bool_2(params, "sor", "SOR"), self.safe_bool(params, "test")]
        return not any(flags)

    async def place_spot(self, symbol: str, type: str, side: str, amount: float, price: float | None, params: Json) -> Json:
        """``create_order`` of a ``plain_spot`` order up to the answer, without what only the wire needs: ccxt's
        own request (``create_order_request``, then the client order id as ``sign`` completes it), given to the
        sandbox's handler as the query string would carry it (``query_text``); a refusal raises through ccxt's
        error table as after a real response. Answers the handler's answer (``POST /api/v3/order``, FULL), not
        parsed: a backtest places tens of thousands of orders, and skipping those steps (with the parse,
        ``SimVenue.create_order``) took 13 % off a 30-day run."""
        request = self.create_order_request(
            symbol, type, side, amount, price, self.extend(self.omit(params, ["sor", "SOR", "test"]), {"isAlgoOrder": False})
        )
        query = self.handle_client_order_id(request, "private", "order", "POST")  # the engine's id is always set: kept as sign has it
        sent = {k: query_text(v) for k, v in query.items() if k not in UNSIGNED}
        status, answer = await self._answer("POST", SPOT_ORDER, sent)
        if status != 200:
            text = json.dumps(answer)
            self._read_status(status, f"{self.urls['api']['private']}/order", "POST", text, self.parse_json(text), None, None)
            raise ExchangeError(f"{self.id} {text}")  # not reached: the handlers' error statuses all raise above
        if not isinstance(answer, dict):
            raise ExchangeError(f"{self.id} unexpected answer to a new order: {str(answer)[:200]}")
        return answer


def query_text(value: object) -> str:
    """A request parameter as the handler reads it from the query string ccxt writes (``urlencode``: booleans as
    ``true``/``false``, bytes as their text, anything else as ``str`` gives it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else str(value)
