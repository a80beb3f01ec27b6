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


async def test_each_request_reserves_what_the_exchange_counts(sandbox: SandboxServer, account) -> None:
    """ccxt's declared cost, converted to Binance's weight per API, against the exchange's own count of each request
    the engine makes: never less (a 429 would follow), and exactly it where ccxt follows Binance's table."""
    from planar_core.config import StrategyConfig
    from planar_core.exchange.binance import rate_counts
    from planar_core.exchange.client import ExchangeClient

    sandbox.ex.limiter.limits = Limits(weight_per_minute=1_000_000, orders_per_10s=1000, weight_interval_s=86_400)
    cfg = StrategyConfig.model_validate(
        {
            "name": "costs",
            "sandbox": True,
            "universe": ["BTC/USDT"],
            "sandbox_endpoint": {"url": sandbox.url, "ws_url": sandbox.ws_url},
            "credentials": {"api_key": account.api_key, "api_secret": account.api_secret},
        }
    )
    c = ExchangeClient(cfg)
    assert c.pacer is not None
    reserved: list[tuple[str, int]] = []
    acquire = c.pacer.acquire

    async def spy(demand, max_wait=None):  # type: ignore[no-untyped-def]
        reserved.append((demand.weight_key, demand.weight))
        return await acquire(demand, max_wait)

    c.pacer.acquire = spy  # type: ignore[method-assign]
    try:
        await c.ex.load_markets()
        bid = (await c.ex.fetch_order_book("BTC/USDT", 5))["bids"][0][0]
        ops = {
            "spot exchangeInfo": (lambda: c.ex.publicGetExchangeInfo(), 20),
            "spot account": (lambda: c.ex.fetch_balance(), 20),
            "spot depth 100": (lambda: c.ex.fetch_order_book("BTC/USDT", 100), 5),
            "spot depth 500": (lambda: c.ex.fetch_order_book("BTC/USDT", 500), 25),
            "spot recent trades": (lambda: c.ex.publicGetTrades({"symbol": "BTCUSDT"}), 25),
            "spot open orders": (lambda: c.ex.fetch_open_orders("BTC/USDT"), 6),
            "spot order": (lambda: c.ex.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.9, 2)), 1),
            "spot all orders": (lambda: c.ex.fetch_orders("BTC/USDT"), 20),
            "spot my trades": (lambda: c.ex.fetch_my_trades("BTC/USDT"), 20),
            "spot klines": (lambda: c.ex.fetch_ohlcv("BTC/USDT", "1m", limit=100), 2),
            "spot open orders, every symbol": (lambda: c.ex.fetch_open_orders(), 80),
            "futures account": (lambda: c.ex.fetch_balance({"type": "swap"}), 5),
            "futures positions": (lambda: c.ex.fetch_positions(["BTC/USDT:USDT"]), 6),  # symbolConfig 1, positionRisk 5
            "futures open orders": (lambda: c.ex.fetch_open_orders("BTC/USDT:USDT"), 1),
            "futures klines 100": (lambda: c.ex.fetch_ohlcv("BTC/USDT:USDT", "1m", limit=100), 2),
            "futures depth 50": (lambda: c.ex.fetch_order_book("BTC/USDT:USDT", 50), 2),
            "futures my trades": (lambda: c.ex.fetch_my_trades("BTC/USDT:USDT"), 5),
        }
        for name, (op, weight) in ops.items():
            kind = "fapi" if name.startswith("futures") else "api"
            await c.ex.publicGetPing() if kind == "api" else await c.ex.fapiPublicGetPing()  # the count before, read
            before = rate_counts(c.ex.last_response_headers)[0][86_400_000]
            reserved.clear()
            await op()
            counted = rate_counts(c.ex.last_response_headers)[0][86_400_000] - before
            mine = sum(w for key, w in reserved if key.endswith("/" + kind))
            assert counted == weight, name  # the sandbox weighs as Binance documents
            assert mine >= counted and (kind == "fapi" or mine == counted), (name, mine, counted)
    finally:
        await c.close()
