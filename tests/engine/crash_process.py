"""An engine that places orders, says so, and waits to be killed (the same-boot crash of test_startup_sync).

argv[1]: the JSON of ``strategy(name, **kwargs)``'s arguments. Prints ``resting <client id>`` once a resting buy on
SYN3/USDT is open and a market buy on SYN5/USDT filled, then idles until SIGKILL."""

import asyncio
import json
import sys

from planar_core.engine import strategy
from planar_core.model import OrderType, Side


async def main(cfg: dict) -> None:
    s = strategy(cfg.pop("name"), **cfg)
    await s.start(watchers=False)
    rest = s.universe["SYN3/USDT"]
    price = s.venue.price_to_precision(rest.symbol, (rest.last_price or 1.0) * 0.5)
    await s.call(rest, OrderType.GTC, Side.BUY, amount=s.venue.amount_to_precision(rest.symbol, 20.0 / price), price=price, waitfor=0)
    (resting,) = rest.open_orders()
    fill = s.universe["SYN5/USDT"]
    amount = s.venue.amount_to_precision(fill.symbol, 20.0 / (fill.last_price or 1.0))
    await s.call(fill, OrderType.MARKET, Side.BUY, amount=amount, waitfor=10)
    print("resting", resting.client_order_id, flush=True)
    await asyncio.Event().wait()


asyncio.run(main(json.loads(sys.argv[1])))
