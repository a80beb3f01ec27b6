"""Order churn on three symbols and the invariants checked after every fault scenario."""

from __future__ import annotations

import random
from typing import Any

from planar_core.engine.sync import resync
from planar_core.model import OrderType, Side
from planar_core.trace import read_trace

AMOUNTS = {"BTC/USDT": 0.001, "ETH/USDT": 0.02, "LTC/USDT": 0.5, "BTC/USDT:USDT": 0.002, "ETH/USDT:USDT": 0.02, "XRP/USDT:USDT": 20.0}


async def churn(s: Any, n_orders: int, seed: int = 1) -> dict[str, int]:
    """Place, and cancel some of, ``n_orders`` orders: resting limits near the market, marketable limits, market orders."""
    rng = random.Random(seed)
    counts = {"placed": 0, "refused": 0, "cancelled": 0}
    symbols = list(s.universe)
    for i in range(n_orders):
        ai = s.universe[symbols[i % len(symbols)]]
        if not ai.last_price:
            await s.sync_asset_orders(ai, trades=False)
        price = ai.last_price or 0
        kind = rng.random()
        side = Side.BUY if rng.random() < 0.6 else Side.SELL
        if ai.is_margin and ai.position.contracts and rng.random() < 0.3:
            side = Side.SELL if ai.position.contracts > 0 else Side.BUY
        amount = AMOUNTS[ai.symbol]
        if kind < 0.5 and price:
            offset = rng.uniform(0.001, 0.01) * (-1 if side is Side.BUY else 1)
            r = await s.call(ai, OrderType.GTC, side, amount=amount, price=price * (1 + offset), waitfor=0)
        elif kind < 0.75 and price:
            r = await s.call(ai, OrderType.IOC, side, amount=amount, price=price * (1.01 if side is Side.BUY else 0.99), waitfor=0.2)
        else:
            r = await s.call(ai, OrderType.MARKET, side, amount=amount, waitfor=0.2)
        counts["placed" if r is not None else "refused"] += 1
        opened = ai.open_orders()
        if opened and rng.random() < 0.4:
            await s.cancel(ai, rng.choice(opened))
            counts["cancelled"] += 1
    return counts


async def verify(s: Any, sandbox: Any, account: Any) -> dict[str, int]:
    """``check`` against an in-process sandbox."""

    async def pause() -> None:
        sandbox.ex.matching_paused = True

    async def snapshot() -> dict:
        return sandbox.ex.snapshot()["accounts"][account.api_key]

    return await check(s, pause, snapshot)


async def check(s: Any, pause: Any, snapshot: Any) -> dict[str, int]:
    """After a resync: nothing lost, nothing duplicated, fills and balances equal, the trace complete and ordered.

    Resting orders are frozen first (``pause``), so the exchange does not move between the resync and ``snapshot``."""
    await pause()
    await resync(s)
    snap = await snapshot()
    ex_orders = {o["client_order_id"]: o for o in snap["orders"]}
    assert len(ex_orders) == len(snap["orders"]), "two exchange orders share a client order id"
    local = {cid: o for ai in s.universe.values() for cid, o in ai.orders.items()}
    missing = set(ex_orders) - set(local)
    assert not missing, f"exchange orders unknown locally: {sorted(missing)[:5]}"
    status = {"NEW": "open", "PARTIALLY_FILLED": "open", "FILLED": "closed", "CANCELED": "canceled", "EXPIRED": "expired"}
    for cid, o in ex_orders.items():
        lo = local[cid]
        assert lo.status == status[o["status"]], f"{cid}: local {lo.status} vs exchange {o['status']}"
        assert abs(lo.filled - float(o["filled"])) < 1e-9, f"{cid}: filled {lo.filled} vs {o['filled']}"
    for cid, lo in local.items():  # an order the exchange never saw must not look alive
        if cid not in ex_orders:
            assert lo.status in ("failed", "rejected"), f"{cid}: {lo.status} locally but unknown to the exchange"
    if s.config.margin:
        wallet = float(snap["futures"]["wallet"])
        assert abs(s.cash(s.config.main_currency).total - wallet) < 1e-6 * max(1.0, wallet), (s.cash(s.config.main_currency), snap["futures"])
        for sym, ai in s.universe.items():
            exp = float(snap["futures"]["positions"].get(ai.market["id"], {}).get("amount", 0))
            assert abs(ai.position.contracts - exp) < 1e-9, f"{sym}: position {ai.position.contracts} vs {exp}"
    else:
        for asset, b in snap["spot_balances"].items():
            if asset in s.balances:
                assert abs(s.cash(asset).free - float(b["free"])) < 1e-9 and abs(s.cash(asset).used - float(b["locked"])) < 1e-9, asset
    s.sink.flush()
    trace = read_trace(s.sink.files if hasattr(s.sink, "files") else s.sink.inner.files)
    intents = set(trace.loc[trace["kind"].astype(str) == "order_placed", "client_order_id"])
    assert set(ex_orders) <= intents, f"order intents missing from the trace: {sorted(set(ex_orders) - intents)[:5]}"
    assert trace["timestamp"].is_monotonic_increasing
    return {"orders": len(ex_orders), "fills": len(snap["fills"]), "events": len(trace)}
