"""Five processes on one host and one account, asking together for about twice the exchange's request weight and
order rate: with the host's shared budget none of them draws a 429 or a 418, and every order each meant to place is
placed (none refused for a budget another process used). Limits are small and the weight interval 10 s (the sandbox's
exchangeInfo says so; the engine learns it), so the run takes seconds, not minutes."""

from __future__ import annotations

from planar_core.sandbox import Faults, Limits
from planar_core.sandbox.server import SandboxServer

from .budget_worker import run_load

LIMITS = Limits(weight_per_minute=600, orders_per_10s=20, weight_interval_s=10)  # Binance's rules, smaller numbers
LOOPS, ITERATIONS = 4, 2  # per process (4 concurrent loops); an iteration weighs 28 (balance 20, open orders 6, order 1, cancel 1)


async def test_five_processes_share_the_weight_and_order_budgets(sandbox: SandboxServer, account) -> None:
    sandbox.ex.limiter.limits = LIMITS
    sandbox.ex.faults = Faults(latency_ms=20)  # answers (and the counts they carry) come back late, as over a network
    results = await run_load(
        sandbox.url, sandbox.ws_url, account.api_key, account.api_secret, shared=True, loops=LOOPS, iterations=ITERATIONS
    )
    demand, orders = 5 * LOOPS * ITERATIONS * 28, 5 * LOOPS * ITERATIONS
    assert demand > 1.8 * LIMITS.weight_per_minute and orders == 2 * LIMITS.orders_per_10s  # about twice what an interval allows
    report = sandbox.ex.limiter.report(sandbox.ex.now_ms())
    assert report["refused"] == {} and report["bans"] == {}  # the exchange refused nothing: no 429, no 418
    assert all(r.get("orders_refused", 0) == 0 and r.get("reads_failed", 0) == 0 for r in results), results
    placed = {o["client_order_id"] for o in sandbox.ex.snapshot()["accounts"][account.api_key]["orders"]}
    meant = {f"p{p}-{k}-{i}" for p in range(5) for k in range(LOOPS) for i in range(ITERATIONS)}
    assert meant <= placed  # every order each process meant to place is on the exchange
