"""``LocalBinance``: ccxt's binance client whose HTTP requests are answered in the same process by the sandbox's own
request handlers, without a socket.

Why this and not a second implementation of the exchange's rules: the simulated venue must accept and refuse exactly
what live accepts and refuses. Live, an order goes engine -> ``CcxtVenue`` -> ccxt (request building, parameter
names, precision) -> HTTP -> the sandbox's handler (Binance's parameter checks, filters, price bands, balances,
matching) -> JSON -> ccxt (parsing, error mapping) -> the dialect -> a report. Here every one of those steps is the
same code; only the HTTP hop is replaced by a function call, so a parameter the live path gets wrong is wrong here
too, and a refusal reads the same (the same Binance error code through ccxt's own exception table).

What the socket used to add and is left out on purpose: request weights and order counts (the simulated venue has
no rate limits: a backtest sends a year of orders in seconds), signatures and timestamps (nothing travels), and the
sandbox's injected faults (latency, lost acknowledgements): a backtest is a model of the market, not of the network.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from ..exchange.binance import StrictBinance
from ..model.types import Json
from ..sandbox import errors as SE
from ..sandbox.accounts import Account
from ..sandbox.server import Ctx, SandboxServer

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
        for unsigned in ("signature", "timestamp", "recvWindow"):
            params.pop(unsigned, None)
        status, text = await self._answer(method, parts.path, params)
        self.last_response_headers: dict[str, str] = {}
        json_response = self.parse_json(text)
        self.last_http_response = text
        self.last_json_response = json_response
        reason = "OK" if status == 200 else "Error"
        self.handle_errors(status, reason, url, method, {}, text, json_response, headers, body)
        self.handle_http_status_code(status, reason, url, method, text)
        return json_response if json_response is not None else text

    async def _answer(self, method: str, path: str, params: dict[str, str]) -> tuple[int, str]:
        server = self.local_server
        route = server.routes.get((method, path))
        if route is None:
            return 404, json.dumps({"code": -1000, "msg": f"Unknown endpoint {path}."})
        account = self.local_account if route.auth != "none" else None
        ctx = Ctx(cast(web.Request, _Request(path, method)), params, account, route.kind)
        try:
            with server.ex.at_one_instant():
                result = route.handler(ctx)
                if inspect.isawaitable(result):
                    result = await result
        except SE.ApiError as exc:
            return exc.status, json.dumps(exc.body())
        return 200, json.dumps(result)
