"""Point an unmodified ccxt (or ccxt.pro) binance client at a sandbox endpoint.

ccxt's own sandbox switch (``set_sandbox_mode(True)``) swaps ``urls['api']``
for ``urls['test']``; we fill ``urls['test']`` with the sandbox's loopback
addresses first, so nothing in ccxt is patched and the client behaves as it
does against Binance's testnet.
"""

from __future__ import annotations

from ..model.types import Json
from .ccxt_types import CcxtExchange

REST_PATHS = {
    "public": "/api/v3",
    "private": "/api/v3",
    "v1": "/api/v1",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
    "dapiPublic": "/dapi/v1",
    "dapiPrivate": "/dapi/v1",
    "dapiPrivateV2": "/dapi/v2",
    "dapiData": "/futures/data",
}


def sandbox_urls(base_url: str, ws_url: str) -> Json:
    """The ``urls['test']`` table for a sandbox at ``base_url`` / ``ws_url``."""
    base_url, ws_url = base_url.rstrip("/"), ws_url.rstrip("/")
    urls: Json = {name: base_url + path for name, path in REST_PATHS.items()}
    urls["ws"] = {
        "spot": f"{ws_url}/stream/ws",
        "margin": f"{ws_url}/stream/ws",
        "future": f"{ws_url}/fstream/ws",
        "linear": f"{ws_url}/fstream/ws",
        "inverse": f"{ws_url}/dstream/ws",
        "ws-api": {"spot": f"{ws_url}/ws-api/v3", "linear": f"{ws_url}/ws-fapi/v1", "inverse": f"{ws_url}/ws-dapi/v1"},
    }
    return urls


def point_at_sandbox(exchange: CcxtExchange, base_url: str, ws_url: str) -> CcxtExchange:
    """Configure a ccxt binance instance to talk to the sandbox; returns it."""
    exchange.urls["test"] = sandbox_urls(base_url, ws_url)
    exchange.set_sandbox_mode(True)
    return exchange


BYBIT_REST_APIS = ("spot", "futures", "v2", "public", "private")


def bybit_sandbox_urls(base_url: str, ws_url: str) -> Json:
    """ccxt bybit's ``urls['api']`` for a sandbox speaking Bybit v5 at ``base_url`` / ``ws_url``: every REST api
    name at the sandbox's root (Bybit's paths start with ``/v5``), the websockets at Bybit's paths."""
    base_url, ws_url = base_url.rstrip("/"), ws_url.rstrip("/")
    urls: Json = dict.fromkeys(BYBIT_REST_APIS, base_url)
    private = f"{ws_url}/v5/private"
    urls["ws"] = {
        "public": {kind: f"{ws_url}/v5/public/{kind}" for kind in ("spot", "linear", "inverse", "option")},
        "private": {
            "spot": {"unified": private, "nonUnified": f"{ws_url}/spot/private/v3"},
            "contract": private,
            "usdc": f"{ws_url}/trade/option/usdc/private/v1",
            "trade": f"{ws_url}/v5/trade",
        },
    }
    return urls


def point_bybit_at_sandbox(exchange: CcxtExchange, base_url: str, ws_url: str) -> CcxtExchange:
    """Configure an unmodified ccxt (or ccxt.pro) bybit instance to talk to a Bybit-dialect sandbox: its
    ``urls['api']`` replaced (ccxt's testnet switch would select Bybit's testnet hosts), nothing else; returns it."""
    exchange.urls["api"] = bybit_sandbox_urls(base_url, ws_url)
    return exchange
