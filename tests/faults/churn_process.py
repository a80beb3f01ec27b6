"""An engine process that churns orders until killed (the SIGKILL scenario)."""

import asyncio
import json
import sys

from planar_core.engine import strategy
from tests.faults.harness import churn


async def main(cfg: dict) -> None:
    s = strategy(cfg.pop("name"), env=cfg.pop("env"), **cfg)
    await s.start()
    print("started", flush=True)
    seed = 0
    while True:
        seed += 1
        await churn(s, 5, seed=seed)


asyncio.run(main(json.loads(sys.argv[1])))
