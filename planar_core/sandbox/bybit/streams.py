"""Bybit v5's websockets (not served yet: see docs/sandbox.md)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from ..accounts import Account, SandboxOrder
from ..exchange import SandboxExchange
from ..streams import StreamHub

OrderRow = Callable[[Account, SandboxOrder], dict[str, object]]


class BybitHub(StreamHub):
    """The connections of the Bybit dialect, on the Binance hub's machinery (connections, writer, close_all)."""

    def __init__(self, exchange: SandboxExchange, order_row: OrderRow) -> None:
        super().__init__(exchange)
        self.order_row = order_row

    def add_routes(self, app: web.Application) -> None:
        return None

    def _on_exchange_event(self, acct: Account, kind: str, event: str, payload: dict[str, object]) -> None:
        return None

    def _publish_market(self) -> None:
        return None
