"""Point an unmodified ccxt (or ccxt.pro) binance client at a sandbox endpoint.

ccxt's own sandbox switch (``set_sandbox_mode(True)``) swaps ``urls['api']``
for ``urls['test']``; we fill ``urls['test']`` with the sandbox's loopback
addresses first, so nothing in ccxt is patched and the client behaves as it
does against Binance's testnet.

A client configured as for mainnet (no sandbox flag, ``urls['api']`` itself replaced, as people do to reach Binance
through a proxy) takes another path through ccxt: ``point_as_mainnet`` configures a client that way, for a proxy or
relay that forwards to Binance with Binance's paths, and for the sandbox, which serves that path too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

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


# Binance's websocket hosts -> the path prefix the sandbox serves each under. Binance tells its stream services apart
# by host (spot streams on stream., USDⓈ-M on fstream. ...), one sandbox by path: the layout of ``sandbox_urls``'
# "ws" table (spot ``{ws}/stream/ws``, USDⓈ-M ``{ws}/fstream/ws``); the WebSocket API hosts' paths already name their API.
WS_HOSTS = {
    "stream.binance.com": "/stream",
    "fstream.binance.com": "/fstream",
    "dstream.binance.com": "/dstream",
    "nbstream.binance.com": "/nbstream",
    "ws-api.binance.com": "",
    "ws-fapi.binance.com": "",
    "ws-dapi.binance.com": "",
}


def _is_binance(host: str) -> bool:
    return host == "binance.com" or host.endswith(".binance.com")


def _mainnet_url(url: str, base_url: str, ws_url: str) -> str:
    if url.startswith((base_url + "/", ws_url + "/")):  # already pointed (the helper applied twice)
        return url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    if parts.scheme in ("http", "https") and _is_binance(host):
        return base_url + tail
    if parts.scheme in ("ws", "wss") and host in WS_HOSTS:
        return ws_url + WS_HOSTS[host] + tail
    # never leave a request (signed, with the account's key) on its way to an address nobody chose
    raise ValueError(f"no mapping for {url!r}: not one of Binance's REST or websocket hosts")


def mainnet_urls(api: Json, base_url: str, ws_url: str) -> Json:
    """ccxt's ``urls['api']`` table (as ccxt ships it, for mainnet) with every Binance host replaced.

    A REST URL (``https://api.binance.com/sapi/v1``, ``https://fapi.binance.com/fapi/v1`` ...) becomes ``base_url`` +
    its path (``{base_url}/sapi/v1``); a websocket URL becomes ``ws_url`` + the prefix of its host in ``WS_HOSTS`` + its
    path (``wss://fstream.binance.com/ws`` -> ``{ws_url}/fstream/ws``). A URL on any other host raises ``ValueError``:
    nothing is left pointing at an address the caller did not name. Nested tables (``ws``, ``ws-api``) are mapped
    alike; the input is not modified."""
    base_url, ws_url = base_url.rstrip("/"), ws_url.rstrip("/")
    out: Json = {}
    for name, value in api.items():
        if isinstance(value, dict):
            out[name] = mainnet_urls(value, base_url, ws_url)
        elif isinstance(value, str):
            out[name] = _mainnet_url(value, base_url, ws_url)
        else:
            out[name] = value
    return out


def point_as_mainnet(exchange: CcxtExchange, base_url: str, ws_url: str) -> CcxtExchange:
    """Configure a ccxt binance instance as a mainnet user with a proxy does; returns it.

    ``urls['api']`` is replaced by ``mainnet_urls`` and the sandbox switch stays off, so ccxt runs its mainnet path:
    it loads margin pairs and (with a key) currencies from ``/sapi`` at ``load_markets`` and fetches the COIN-M
    markets, which its testnet path skips (see docs/sandbox.md, "Clients configured as for mainnet"). Unlike
    ``point_at_sandbox`` this points every request of the client, public and private, at ``base_url`` / ``ws_url``:
    use it for a sandbox, or a proxy or relay that forwards to Binance with Binance's paths."""
    if exchange.options.get("sandboxMode"):
        raise ValueError("the client is in sandbox mode: use point_at_sandbox, or a client without set_sandbox_mode")
    exchange.urls["api"] = mainnet_urls(exchange.urls["api"], base_url, ws_url)
    return exchange


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
