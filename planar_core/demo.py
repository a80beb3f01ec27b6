"""The demo behind the README's first command.

Starts the sandbox exchange on a free loopback port with the shared market
data (generated data when it is absent), trades through plain ccxt and
prints balances. Later stages run the live strategy flow here.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt.async_support as ccxt_async
from rich.console import Console
from rich.table import Table

from .exchange.endpoints import point_at_sandbox
from .sandbox.runner import build_exchange
from .sandbox.server import SandboxServer


async def run_demo(console: Console | None = None) -> dict:
    """Run the demo; returns what it printed as data (for tests)."""
    console = console or Console()
    ex = build_exchange(speed=60.0)
    acct = ex.add_account({"USDT": Decimal(10_000), "BTC": Decimal("0.5"), "ETH": Decimal(5)})
    async with SandboxServer(ex) as server:
        console.print(f"[bold]sandbox exchange[/] on {server.url} (data: "
                      f"{', '.join(sorted({m.path.source for m in ex.markets.values()}))})")
        client = point_at_sandbox(ccxt_async.binance({"apiKey": acct.api_key, "secret": acct.api_secret}), server.url, server.ws_url)
        try:
            with console.status("trading through ccxt..."):
                await client.load_markets()
                orders = [
                    await client.create_order("BTC/USDT", "market", "buy", 0.01),
                    await client.create_order("ETH/USDT", "market", "sell", 0.5),
                    await client.create_order("BTC/USDT", "limit", "buy", 0.01, round(ex.mid(ex.markets[("spot", "BTCUSDT")]) * 0.95, 2)),
                ]
                balance = await client.fetch_balance()
            table = Table(title="orders")
            for col in ("symbol", "side", "type", "amount", "price", "status"):
                table.add_column(col)
            for o in orders:
                table.add_row(o["symbol"], o["side"], o["type"], str(o["amount"]), str(o.get("average") or o["price"]), o["status"])
            console.print(table)
            bal = Table(title="balances")
            for col in ("asset", "free", "used", "total"):
                bal.add_column(col)
            for asset, total in sorted(balance["total"].items()):
                bal.add_row(asset, f"{balance['free'][asset]:.8f}", f"{balance['used'][asset]:.8f}", f"{total:.8f}")
            console.print(bal)
            return {"orders": orders, "balance": balance["total"]}
        finally:
            await client.close()
