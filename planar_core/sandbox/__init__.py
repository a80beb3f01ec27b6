"""A local Binance-compatible exchange (REST + websocket) that unmodified ccxt trades against."""

from .exchange import SandboxExchange
from .faults import Faults
from .limits import Limits
from .server import SandboxServer

__all__ = ["Faults", "Limits", "SandboxExchange", "SandboxServer"]
