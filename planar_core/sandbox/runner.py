"""Build and run a sandbox from command-line style options (used by the CLI, the demo and tests)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .exchange import SandboxExchange
from .limits import Limits
from .market_data import DEFAULT_DATA_DIR, DEFAULT_MARKETS, PathLibrary, default_markets, synthetic_markets
from .server import SandboxServer

DEFAULT_BALANCES = "USDT=10000,BTC=0.5,ETH=5"


def parse_balances(text: str) -> dict[str, Decimal]:
    """``"USDT=10000,BTC=0.5"`` -> {"USDT": Decimal("10000"), ...}; a clear error otherwise."""
    out: dict[str, Decimal] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        asset, sep, amount = part.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal(-1)
        if not sep or not asset.isalnum() or not value.is_finite() or value < 0:
            raise ValueError(f"--balance: expected ASSET=AMOUNT with a non-negative amount, got {part!r}")
        out[asset.upper()] = value
    return out


def build_exchange(
    data: list[Path] | None = None, speed: float = 1.0, seed: int = 7, limits: Limits | None = None, synthetic: int = 0
) -> SandboxExchange:
    """An exchange whose paths come from ``data`` files (named like the shared data set) or the default data dir."""
    extra: dict[str, Path] = {}
    data_dir = DEFAULT_DATA_DIR if DEFAULT_DATA_DIR.is_dir() else None
    known = {spec.data_file for spec in DEFAULT_MARKETS}
    for path in data or []:
        if not path.is_file():
            raise ValueError(f"--data: no such file {path}")
        if path.name not in known:
            raise ValueError(f"--data: {path.name} drives no market; expected one of {sorted(known)}")
        for spec in default_markets():
            if spec.data_file == path.name:
                extra[spec.symbol] = path
    ex = SandboxExchange(
        speed=speed,
        seed=seed,
        paths=PathLibrary(data_dir=data_dir, seed=seed, extra_files=extra),
        specs=default_markets() + synthetic_markets(synthetic),
    )
    if limits is not None:
        ex.limiter.limits = limits
    return ex


async def serve_forever(server: SandboxServer, api_key: str, api_secret: str) -> None:
    """Start, print the one JSON line a caller parses, and serve until SIGINT/SIGTERM."""
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(json.dumps({"url": server.url, "ws_url": server.ws_url, "api_key": api_key, "api_secret": api_secret}) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.stop()
