"""An engine process that places conditional orders, says so, and waits to be killed (the SIGKILL scenario of
tests/orders/test_conditional_restart.py)."""

import asyncio
import json
import sys

from planar_core.engine import strategy
from planar_core.model import OrderType, Side


async def main(cfg: dict) -> None:
    orders = cfg.pop("orders")
    s = strategy(cfg.pop("name"), env=cfg.pop("env"), **cfg)
    await s.start()
    ai = next(iter(s.universe.values()))
    for o in orders:
        o = dict(o)
        then = o.pop("then", None)
        await s.call(ai, OrderType(o.pop("type")), Side(o.pop("side")), waitfor=o.pop("waitfor", 0), **o)
        while then == "position" and not ai.position.contracts:  # reduce-only orders need the position seen
            await asyncio.sleep(0.05)
    print("placed", json.dumps({o.client_order_id: o.status.value for o in ai.orders.values()}), flush=True)
    await asyncio.Event().wait()


asyncio.run(main(json.loads(sys.argv[1])))
