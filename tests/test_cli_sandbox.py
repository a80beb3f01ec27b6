"""``planar sandbox serve`` as a user runs it: a subprocess, one JSON line, plain ccxt, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import ccxt

from planar_core.exchange.endpoints import point_at_sandbox

PLANAR = [sys.executable, "-m", "planar_core"]


def test_serve_prints_credentials_trades_and_stops_cleanly() -> None:
    proc = subprocess.Popen(
        [*PLANAR, "sandbox", "serve", "--port", "0", "--balance", "USDT=5000,BTC=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        info = json.loads(line)
        assert info["url"].startswith("http://127.0.0.1:") and info["ws_url"].startswith("ws://127.0.0.1:")
        ex = point_at_sandbox(ccxt.binance({"apiKey": info["api_key"], "secret": info["api_secret"]}), info["url"], info["ws_url"])
        assert ex.fetch_balance()["total"] == {"USDT": 5000.0, "BTC": 1.0}
        order = ex.create_order("BTC/USDT", "market", "sell", 0.01)
        assert order["status"] == "closed"
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
    assert rc == 0


def test_serve_refuses_non_loopback_and_bad_balance() -> None:
    r = subprocess.run([*PLANAR, "sandbox", "serve", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "non-loopback" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*PLANAR, "sandbox", "serve", "--balance", "USDT=-3"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--balance" in r.stderr


def test_help_lists_commands() -> None:
    r = subprocess.run([*PLANAR, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "sandbox" in r.stdout


def test_serve_bybit_venue_prints_the_same_line_and_speaks_bybit() -> None:
    """``--venue bybit``: the same JSON line; unmodified ccxt.bybit trades on it with only ``urls['api']`` replaced."""
    from planar_core.exchange.endpoints import point_bybit_at_sandbox

    proc = subprocess.Popen(
        [*PLANAR, "sandbox", "serve", "--port", "0", "--balance", "USDT=5000,BTC=1", "--venue", "bybit"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        assert set(info) == {"url", "ws_url", "api_key", "api_secret"}
        ex = point_bybit_at_sandbox(ccxt.bybit({"apiKey": info["api_key"], "secret": info["api_secret"]}), info["url"], info["ws_url"])
        assert ex.fetch_balance()["total"] == {"BTC": 1.0, "USDT": 5000.0}
        order = ex.create_order("BTC/USDT", "market", "sell", 0.01)
        assert ex.fetch_order(order["id"], "BTC/USDT", {"acknowledged": True})["status"] == "closed"
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
    assert rc == 0
    r = subprocess.run([*PLANAR, "sandbox", "serve", "--venue", "kraken"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--venue" in r.stderr
