"""Engines on the Bybit sandbox that place resting orders, say so, and wait to be killed (tests/venues/test_bybit_dcp.py).

argv[1]: JSON ``{"env": {...}, "common": {strategy kwargs}, "strategies": [{"name", "orders": [...], **kwargs}]}``:
every strategy is started in this one process, its orders placed (``type``, ``side``, ``amount``, ``price``); then
``placed {name: [client ids]}`` is printed and the process idles until SIGKILL."""

import asyncio
import json
import sys

from planar_core.engine import strategy
from planar_core.model import OrderType, Side


async def main(cfg: dict) -> None:
    placed: dict[str, list[str]] = {}
    running = []  # kept referenced until the kill
    for spec in cfg["strategies"]:
        spec = dict(spec)
        orders, name = spec.pop("orders"), spec.pop("name")
        s = strategy(name, env=cfg["env"], exchange="bybit", **cfg["common"], **spec)
        await s.start()
        running.append(s)
        ai = next(iter(s.universe.values()))
        for o in orders:
            await s.call(ai, OrderType(o["type"]), Side(o["side"]), amount=o["amount"], price=o["price"], waitfor=0)
        placed[name] = [o.client_order_id for o in ai.open_orders()]
    print("placed", json.dumps(placed), flush=True)
    await asyncio.Event().wait()


asyncio.run(main(json.loads(sys.argv[1])))
