"""A local exchange (REST + websocket) that unmodified ccxt trades against: one core, Binance's dialect and Bybit v5's (``bybit``)."""

from .exchange import SandboxExchange
from .faults import Faults
from .limits import Limits
from .server import SandboxServer

__all__ = ["Faults", "Limits", "SandboxExchange", "SandboxServer"]
