"""USDⓈ-M accounts as Binance keeps them (issue 14): hedge mode, isolated margin, liquidation, funding.

Driven by unmodified ccxt; the exchange's own state is read from the admin snapshot (never repaired first)."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from planar_core.sandbox import Limits, SandboxExchange, SandboxServer

from .conftest import make_client, wait_for


async def _swap(sandbox: SandboxServer, usdt: int) -> tuple[object, object]:
    acct = sandbox.ex.add_account({"USDT": Decimal(usdt)})
    ex = make_client(sandbox, acct, options={"defaultType": "swap"})
    await ex.load_markets()
    return acct, ex


async def test_hedge_mode_holds_a_long_and_a_short(sandbox: SandboxServer) -> None:
    acct, ex = await _swap(sandbox, 100_000)
    try:
        await ex.set_position_mode(True)
        with pytest.raises(ccxt.ExchangeError, match="-4061"):  # hedge mode needs a positionSide
            await ex.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.1"})
        await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.1, params={"positionSide": "LONG"})
        await ex.create_order("BTC/USDT:USDT", "market", "sell", 0.05, params={"positionSide": "SHORT"})
        positions = {p["side"]: p for p in await ex.fetch_positions(["BTC/USDT:USDT"]) if p["contracts"]}
        assert set(positions) == {"long", "short"} and positions["long"]["contracts"] == 0.1 and positions["short"]["contracts"] == 0.05
        assert all(p["hedged"] for p in positions.values())
        with pytest.raises(ccxt.ExchangeError, match="-2022"):  # closing more than the long holds
            await ex.create_order("BTC/USDT:USDT", "market", "sell", 0.2, params={"positionSide": "LONG"})
        with pytest.raises(ccxt.ExchangeError, match="-4068"):  # the mode cannot change with positions open
            await ex.set_position_mode(False)
        await ex.create_order("BTC/USDT:USDT", "market", "sell", 0.1, params={"reduceOnly": True, "hedged": True})  # ccxt: SELL LONG
        snap = sandbox.ex.snapshot()["accounts"][acct.api_key]["futures"]["positions"]  # type: ignore[attr-defined]
        assert set(snap) == {"BTCUSDT:SHORT"} and Decimal(snap["BTCUSDT:SHORT"]["amount"]) == Decimal("-0.05")
        # the trades name their order's position side, as Binance's userTrades does (they all said BOTH)
        trades = await ex.fetch_my_trades("BTC/USDT:USDT")
        assert [t["info"]["positionSide"] for t in trades] == ["LONG", "SHORT", "LONG"]
    finally:
        await ex.close()  # type: ignore[attr-defined]


async def test_isolated_position_is_liquidated_and_loses_only_its_margin(sandbox: SandboxServer) -> None:
    acct, ex = await _swap(sandbox, 1_000)
    try:
        await ex.set_margin_mode("isolated", "BTC/USDT:USDT")
        await ex.set_leverage(50, "BTC/USDT:USDT")
        await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.2)
        with pytest.raises(ccxt.ExchangeError, match="-4048"):  # no margin-type change with a position open
            await ex.set_margin_mode("cross", "BTC/USDT:USDT")
        pos = sandbox.ex.position(acct, "BTCUSDT")  # type: ignore[arg-type]
        margin, wallet = pos.isolated_wallet, acct.futures_wallet  # type: ignore[attr-defined]
        risk = (await ex.fapiPrivateV3GetPositionRisk({"symbol": "BTCUSDT"}))[0]
        liquidation = Decimal(risk["liquidationPrice"])
        assert Decimal(risk["isolatedWallet"]) == margin.quantize(Decimal("1e-8")) and 0 < liquidation < pos.entry_price
        sandbox.ex.markets[("linear", "BTCUSDT")].shock = float(liquidation / sandbox.ex.mark("BTCUSDT")) * 0.999
        await wait_for(lambda: not sandbox.ex.position(acct, "BTCUSDT").amount, timeout=5)  # type: ignore[arg-type]
        assert acct.futures_wallet == wallet - margin  # type: ignore[attr-defined] # the isolated margin, no more
        forced = [o for o in await ex.fetch_orders("BTC/USDT:USDT") if o["clientOrderId"].startswith("autoclose-")]
        assert len(forced) == 1 and forced[0]["info"]["type"] == "LIQUIDATION" and forced[0]["status"] == "closed"
        income = await ex.fapiPrivateGetIncome({"symbol": "BTCUSDT"})
        assert {"REALIZED_PNL", "COMMISSION"} <= {r["incomeType"] for r in income}
    finally:
        await ex.close()  # type: ignore[attr-defined]


async def test_cross_account_is_liquidated_when_margin_runs_out(sandbox: SandboxServer) -> None:
    acct, ex = await _swap(sandbox, 1_000)
    try:
        await ex.set_leverage(50, "ETH/USDT:USDT")
        await ex.create_order("ETH/USDT:USDT", "market", "sell", 10)
        risk = (await ex.fapiPrivateV3GetPositionRisk({"symbol": "ETHUSDT"}))[0]
        liquidation = Decimal(risk["liquidationPrice"])
        assert liquidation > Decimal(risk["entryPrice"])  # a short is liquidated above its entry
        sandbox.ex.markets[("linear", "ETHUSDT")].shock = float(liquidation / sandbox.ex.mark("ETHUSDT")) * 1.001
        await wait_for(lambda: not sandbox.ex.position(acct, "ETHUSDT").amount, timeout=5)  # type: ignore[arg-type]
        income = await ex.fapiPrivateGetIncome({"symbol": "ETHUSDT", "incomeType": "INSURANCE_CLEAR"})
        assert len(income) == 1 and Decimal(income[0]["income"]) < 0
        assert acct.futures_wallet >= 0  # type: ignore[attr-defined]
    finally:
        await ex.close()  # type: ignore[attr-defined]


async def test_funding_is_paid_every_8_hours_of_path_time() -> None:
    """At 28 800x the path's clock crosses an 8-hour funding time every second of the wall clock."""
    exchange = SandboxExchange(seed=11, speed=28_800)
    exchange.limiter.limits = Limits(weight_per_minute=1_000_000, orders_per_10s=100_000)
    async with SandboxServer(exchange) as sandbox:
        acct, ex = await _swap(sandbox, 100_000)
        try:
            await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.1)

            def funded() -> bool:
                return any(r.kind == "FUNDING_FEE" for r in acct.income)  # type: ignore[attr-defined]

            await wait_for(funded, timeout=5)
            rows = await ex.fapiPrivateGetIncome({"incomeType": "FUNDING_FEE"})
            assert rows and all(Decimal(r["income"]) < 0 for r in rows)  # a long pays a positive rate
            ledger = await ex.fetch_ledger("USDT")
            assert any(e["type"] == "fee" or e["info"]["incomeType"] == "FUNDING_FEE" for e in ledger)
        finally:
            await ex.close()  # type: ignore[attr-defined]


async def test_mark_price_is_not_the_last_price(sandbox: SandboxServer) -> None:
    """Unrealized PnL, margins and MARK_PRICE triggers use the mark, which departs from the last (index) price by a
    basis of up to ``basis_bps`` (admin API), as on Binance."""
    import aiohttp

    _acct, ex = await _swap(sandbox, 100_000)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{sandbox.url}/admin/price", json={"symbol": "BTCUSDT", "kind": "linear", "factor": 1.0, "basis_bps": 50}
            ) as r:
                assert r.status == 200
        await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.1)
        with sandbox.ex.at_one_instant():  # the whole exchange held at one instant, so mark, index and position agree
            index = await ex.fapiPublicGetPremiumIndex({"symbol": "BTCUSDT"})
            risk = (await ex.fapiPrivateV3GetPositionRisk({"symbol": "BTCUSDT"}))[0]
        mark, last = Decimal(index["markPrice"]), Decimal(index["indexPrice"])
        assert mark != last and abs(mark / last - 1) <= Decimal("0.005")
        upnl = (Decimal(risk["markPrice"]) - Decimal(risk["entryPrice"])) * Decimal(risk["positionAmt"])
        assert abs(Decimal(risk["unRealizedProfit"]) - upnl) < Decimal("0.0001") and risk["markPrice"] == index["markPrice"]
    finally:
        await ex.close()  # type: ignore[attr-defined]


async def test_margin_call_warns_before_the_liquidation(sandbox: SandboxServer) -> None:
    """Close to its liquidation price a position gets Binance's MARGIN_CALL on the user stream (once), and is not
    liquidated yet; the message has Binance's recorded shape."""
    import asyncio
    import json
    from pathlib import Path

    import aiohttp

    from .test_sandbox_shapes import compare

    acct, ex = await _swap(sandbox, 1_000)
    sandbox.ex.markets[("linear", "ETHUSDT")].basis_bps = 0  # mark = last, so the move below lands where it is aimed
    try:
        await ex.set_leverage(50, "ETH/USDT:USDT")
        await ex.create_order("ETH/USDT:USDT", "market", "sell", 10)
        risk = (await ex.fapiPrivateV3GetPositionRisk({"symbol": "ETHUSDT"}))[0]
        entry, liquidation = Decimal(risk["entryPrice"]), Decimal(risk["liquidationPrice"])
        key = (await ex.fapiPrivatePostListenKey())["listenKey"]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{sandbox.ws_url}/fstream/ws/{key}") as ws:
            target = entry + (liquidation - entry) * Decimal("0.98")
            sandbox.ex.markets[("linear", "ETHUSDT")].shock *= float(target / sandbox.ex.mark("ETHUSDT"))
            async with asyncio.timeout(5):
                while True:
                    event = json.loads((await ws.receive()).data)
                    if event["e"] == "MARGIN_CALL":
                        break
        assert [p["s"] for p in event["p"]] == ["ETHUSDT"] and sandbox.ex.position(acct, "ETHUSDT").amount  # type: ignore[arg-type]
        shapes = json.loads((Path(__file__).parent / "fixtures" / "binance_shapes.json").read_text())
        problems: list[str] = []
        compare(shapes["ws usdm MARGIN_CALL"]["fields"], event, "MARGIN_CALL", problems, {}, {"e": "the event type"})
        assert not problems, problems
        assert acct.margin_called == {("ETHUSDT", "BOTH")}  # type: ignore[attr-defined] # called once, not on every tick
    finally:
        await ex.close()  # type: ignore[attr-defined]
