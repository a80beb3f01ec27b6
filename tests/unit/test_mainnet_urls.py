"""``point_as_mainnet``: ccxt's mainnet ``urls['api']`` pointed at one base (a sandbox or a proxy), no sandbox flag."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro
import pytest

from planar_core.exchange.endpoints import mainnet_urls, point_as_mainnet, sandbox_urls

BASE, WS = "http://127.0.0.1:8123", "ws://127.0.0.1:8123"


def leaves(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in table.items():
        out.update(leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


@pytest.mark.parametrize("make", [ccxtpro.binance, ccxt_async.binance, ccxtpro.binanceusdm])
def test_every_binance_url_is_pointed_at_the_base_keeping_its_path(make: Any) -> None:
    ex = make()
    shipped = leaves(ex.urls["api"])
    point_as_mainnet(ex, BASE, WS)
    pointed = leaves(ex.urls["api"])
    assert set(pointed) == set(shipped)
    for name, url in pointed.items():
        assert url.startswith(BASE + "/" if url.startswith("http") else WS + "/"), (name, url)
        assert url.endswith(urlsplit(shipped[name]).path), (name, url)  # the path kept
    assert not ex.options["sandboxMode"] and ex.urls["test"] == make().urls["test"]  # ccxt's testnet table untouched


def test_websocket_layout_is_the_sandbox_testnet_one() -> None:
    """The hosts Binance tells its streams apart by become the path prefixes the testnet mapping already uses."""
    pointed = mainnet_urls(ccxtpro.binance().urls["api"], BASE, WS)["ws"]
    testnet = sandbox_urls(BASE, WS)["ws"]
    assert isinstance(testnet, dict)
    for kind in ("spot", "margin", "linear", "inverse", "ws-api"):
        assert pointed[kind] == testnet[kind], kind
    assert pointed["option"] == f"{WS}/fstream/public/ws"


def test_a_url_on_another_host_is_refused_and_pointing_twice_changes_nothing() -> None:
    with pytest.raises(ValueError, match=r"api\.binance\.us"):
        point_as_mainnet(ccxt_async.binanceus(), BASE, WS)
    once = mainnet_urls(ccxtpro.binance().urls["api"], BASE, WS)
    assert mainnet_urls(once, BASE + "/", WS) == once


def test_a_client_in_sandbox_mode_is_refused() -> None:
    ex = ccxt_async.binance()
    ex.set_sandbox_mode(True)
    with pytest.raises(ValueError, match="point_at_sandbox"):
        point_as_mainnet(ex, BASE, WS)
