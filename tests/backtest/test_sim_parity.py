"""The simulated venue (paper, backtest) accepts and refuses exactly what live accepts and refuses: the same orders
sent to the sandbox over real HTTP with unmodified ccxt (the live path) and to the simulated venue, from the same
balances at the same price, get the same answers (status, or the same typed refusal with the same exchange code)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from planar_core.config import StrategyConfig
from planar_core.exchange.errors import ExchangeOpError
from planar_core.exchange.registry import open_venue
from planar_core.model.types import OrderType, Side
from planar_core.model.venue import AssetBalance, OrderRef, OrderReport, PlaceExitList, PlaceOrder, Venue
from planar_core.sandbox import wire
from planar_core.sandbox.accounts import Account, Fill, SandboxOrder
from planar_core.sandbox.server import SandboxServer
from planar_core.sim.venue import SimVenue

pytestmark = pytest.mark.integration


def orders(p: float) -> list[PlaceOrder | PlaceExitList]:
    """Spot BTC/USDT from 10 000 USDT at price ``p``: each refused one breaks one of Binance's rules."""
    r = lambda x: round(x, 2)  # noqa: E731
    cid = iter(f"par-{i}" for i in range(100))
    o = lambda **kw: PlaceOrder(symbol="BTC/USDT", client_order_id=next(cid), **kw)  # noqa: E731
    return [
        o(type=OrderType.MARKET, side=Side.BUY, amount=0.02),  # accepted, filled
        o(type=OrderType.GTC, side=Side.BUY, amount=0.01, price=r(p * 0.97)),  # accepted, rests
        o(type=OrderType.POST_ONLY, side=Side.BUY, amount=0.01, price=r(p * 1.01)),  # would take: -2010
        o(type=OrderType.GTC, side=Side.BUY, amount=0.00001, price=r(p * 0.97)),  # below min notional
        o(type=OrderType.GTC, side=Side.BUY, amount=0.01, price=r(p * 0.1)),  # outside the price band
        o(type=OrderType.MARKET, side=Side.BUY, amount=50.0),  # more than the account can pay
        o(type=OrderType.STOP_MARKET, side=Side.SELL, amount=0.005, trigger_price=r(p * 1.05)),  # would trigger at once
        o(type=OrderType.STOP_MARKET, side=Side.SELL, amount=0.005, trigger_price=r(p * 0.95)),  # accepted, waits
        o(type=OrderType.TAKE_PROFIT_LIMIT, side=Side.SELL, amount=0.004, trigger_price=r(p * 1.05), price=r(p * 1.05)),
        o(type=OrderType.GTC, side=Side.SELL, amount=0.011, price=r(p * 1.04)),  # more base than is free (fees, locks)
        o(type=OrderType.IOC, side=Side.SELL, amount=0.005, price=r(p * 1.05)),  # nothing to take at that price: expires
        o(type=OrderType.FOK, side=Side.BUY, amount=0.01, price=r(p * 0.99)),  # not fillable in full: expires
        PlaceExitList(
            symbol="BTC/USDT",
            side=Side.SELL,
            amount=0.01,
            take_profit=r(p * 1.06),
            stop=r(p * 0.9),
            take_profit_client_id="par-tp",
            stop_client_id="par-sl",
        ),  # more than is free after the orders above: refused
        PlaceExitList(
            symbol="BTC/USDT",
            side=Side.SELL,
            amount=0.005,
            take_profit=r(p * 1.06),
            stop=r(p * 0.9),
            take_profit_client_id="par-tp2",
            stop_client_id="par-sl2",
        ),  # an OCO exit list: accepted
    ]


async def answers(venue: Venue, p: float) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for req in orders(p):
        try:
            if isinstance(req, PlaceExitList):
                legs = await venue.create_exit_list(req, 10)
                out.append(("ok", tuple(sorted((str(leg.type), str(leg.status)) for leg in legs))))
            else:
                rep = await venue.create_order(req, 10)
                out.append(("ok", str(rep.type), str(rep.status)))
        except ExchangeOpError as exc:
            out.append(("refused", type(exc).__name__, exc.code, str(exc)))
    return out


def config(tmp: Path, **extra: object) -> StrategyConfig:
    return StrategyConfig.model_validate(
        {"name": "par", "universe": ["BTC/USDT"], "store_root": str(tmp), "logic": "planar_core.strategies.ma_cross:MACross", **extra}
    )


async def test_paper_and_backtest_accept_and_refuse_what_live_does(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.ex.matching_paused = True  # the live side's price path moves; nothing may fill between two requests
    acct = sandbox.ex.add_account({"USDT": Decimal(10_000)})
    live_cfg = config(
        tmp_path / "live",
        sandbox_endpoint={"url": sandbox.url, "ws_url": sandbox.ws_url},
        credentials={"api_key": acct.api_key, "api_secret": acct.api_secret},
    )
    live = open_venue(live_cfg)
    sim = SimVenue(config(tmp_path / "sim", initial_cash=10_000))
    try:
        await live.load_markets(10)
        await sim.load_markets(10)
        p = float(sandbox.ex.mid(sandbox.ex.market("spot", "BTCUSDT")))
        sandbox.ex.price_source = lambda m: p  # the live exchange holds its price still for the comparison
        sim.set_price("BTC/USDT", p, match=False)
        got_live = await answers(live, p)
        got_sim = await answers(sim, p)
    finally:
        await live.close()
        await sim.close()
    assert got_sim == got_live
    outcomes = [a[0] for a in got_live]
    assert outcomes.count("refused") >= 6 and outcomes.count("ok") >= 5  # both kinds were exercised


async def test_paper_accepts_and_refuses_what_live_does(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Paper's simulated exchange lists the markets with the exchange's own precision and limits (read through the
    public API): the same requests get the same answers as live."""
    from planar_core.sim.paper import PaperVenue

    sandbox.ex.matching_paused = True
    acct = sandbox.ex.add_account({"USDT": Decimal(10_000)})
    endpoint = {"url": sandbox.url, "ws_url": sandbox.ws_url}
    live = open_venue(
        config(tmp_path / "live", sandbox_endpoint=endpoint, credentials={"api_key": acct.api_key, "api_secret": acct.api_secret})
    )
    paper = PaperVenue(config(tmp_path / "paper", mode="paper", initial_cash=10_000, sandbox_endpoint=endpoint))
    try:
        await live.load_markets(10)
        await paper.load_markets(10)
        p = float(sandbox.ex.mid(sandbox.ex.market("spot", "BTCUSDT")))
        sandbox.ex.price_source = lambda m: p
        paper.set_price("BTC/USDT", p, match=False)
        got_live = await answers(live, p)
        got_paper = await answers(paper, p)
    finally:
        await live.close()
        await paper.close()
    assert got_paper == got_live


async def test_the_simulated_account_update_reads_as_ccxt_reads_the_wire(tmp_path: Path) -> None:
    """The stream's account update a simulated venue sends after each fill is built without ccxt: it must give the
    figures ccxt's parse of the same wire message gives (free, locked, their total; an asset the account never
    held reads zero), for amounts with more than the 8 decimals the wire prints."""
    sim = SimVenue(config(tmp_path, initial_cash=10_000))
    await sim.load_markets(10)
    try:
        sim.account.spot.update(
            {"BTC": [Decimal("0.123456789123"), Decimal("0.000000015")], "USDT": [Decimal("9876.54321"), Decimal("123.456789999")]}
        )
        assets = ["BTC", "USDT", "ETH"]
        built = sim._spot_update(assets, 1_700_000_000_000)
        wire_msg = wire.spot_account(sim.account, 1_700_000_000_000)
        wire_msg["balances"] = [b for b in wire_msg["balances"] if b["asset"] in assets]
        via_ccxt = sim.parse.balance(sim.ex.parse_balance_custom(wire_msg, "spot"), "spot", complete=False)
        assert set(built.assets) == set(assets)
        for a in assets:
            assert built.assets[a] == via_ccxt.assets.get(a, AssetBalance(0.0, 0.0, 0.0)), a
        assert built.assets["BTC"].total == 0.12345681  # each printed to 8 decimals, as the wire has them, then summed
    finally:
        await sim.close()


def _via_ccxt(sim: SimVenue, o: SandboxOrder, fill: Fill | None) -> OrderReport:
    """A spot order update as ccxt's parse of the wire shapes gives it (how the simulated venue built it before)."""
    symbol = sim._symbol("spot", o.symbol)
    market = sim.markets[symbol]
    report = sim.parse.order(sim.ex.parse_order(wire.spot_order(o), market))
    if fill is None:
        return report
    trade = wire.spot_trade(fill)
    trade["c"] = o.client_id
    return replace(report, fills=(sim.parse.fill(sim.ex.parse_trade(trade, market)),))


async def test_the_simulated_order_updates_read_as_ccxt_reads_the_wire(tmp_path: Path) -> None:
    """The spot order updates and fills a simulated venue streams are built without ccxt (sim/spot_reports.py): at
    every order event of a session that places, fills (taker and maker), cancels, expires,
    triggers and lists orders of every spot type, each must equal ccxt's parse of the same order's wire shape."""
    sim = SimVenue(config(tmp_path, initial_cash=10_000))
    await sim.load_markets(10)
    pairs: list[tuple[OrderReport, OrderReport]] = []

    def check(acct: Account, kind: str, event: str, payload: dict[str, object]) -> None:
        if acct is not sim.account or kind != "spot":
            return
        fill = payload.get("fill")
        events = [payload["order"]] if event == "order" else payload["orders"] if event == "list" else []
        for o in events if isinstance(events, list) else []:
            assert isinstance(o, SandboxOrder) and (fill is None or isinstance(fill, Fill))
            pairs.append(
                (sim._order_report("spot", o, fill if event == "order" else None), _via_ccxt(sim, o, fill if event == "order" else None))
            )

    sim.core.listeners.append(check)
    try:
        p = 50_000.0
        sim.set_price("BTC/USDT", p, match=False)
        await answers(sim, p)
        o = lambda cid, **kw: PlaceOrder(symbol="BTC/USDT", client_order_id=cid, **kw)  # noqa: E731
        more = [
            o("pp-buy", type=OrderType.MARKET, side=Side.BUY, amount=0.01),
            o("pp-maker", type=OrderType.POST_ONLY, side=Side.BUY, amount=0.003, price=p * 0.98),
            o("pp-ice", type=OrderType.GTC, side=Side.BUY, amount=0.004, price=p * 0.975, extra={"icebergQty": 0.001}),
            o("pp-gone", type=OrderType.GTC, side=Side.BUY, amount=0.002, price=p * 0.9),
            o("pp-sl", type=OrderType.STOP_LIMIT, side=Side.SELL, amount=0.002, trigger_price=p * 0.95, price=p * 0.945),
            o("pp-trail", type=OrderType.TRAILING_STOP, side=Side.SELL, amount=0.002, trailing_percent=1.0),
        ]
        for req in more:
            await sim.create_order(req, 10)
        await sim.cancel_order("BTC/USDT", OrderRef("pp-gone"), 10)
        for move in (0.985, 0.974, 0.96, 0.94, 1.0, 1.055, 1.07, 1.2):
            sim.set_price("BTC/USDT", p * move)
    finally:
        sim.core.listeners.remove(check)
        await sim.close()
    for built, via_ccxt in pairs:
        assert built == via_ccxt
    seen = {(r.type, r.status, r.trigger_phase, bool(r.fills)) for r, _ in pairs}
    assert len(pairs) >= 25 and len(seen) >= 12, seen
    assert {r.type for r, _ in pairs} >= {
        OrderType.MARKET,
        OrderType.GTC,
        OrderType.IOC,
        OrderType.FOK,
        OrderType.POST_ONLY,
        OrderType.STOP_MARKET,
        OrderType.TAKE_PROFIT_LIMIT,
        OrderType.STOP_LIMIT,
    }
    assert {r.client_order_id for r, _ in pairs} >= {"pp-trail", "pp-ice", "pp-gone"}  # a trailing stop, an iceberg, a cancel
    assert sum(1 for r, _ in pairs if r.fills and r.fills[0].taker is False) >= 1  # a maker fill


async def test_a_plain_spot_order_answers_what_the_full_ccxt_path_answers(tmp_path: Path) -> None:
    """Plain spot orders skip ccxt's HTTP steps and its parse of the answer in the simulated venue
    (``SimVenue.create_order``): two simulated exchanges in the same state, one taking that path and one sending
    every order through ccxt as live does, must answer every order of every spot type the same (the report, field
    by field, fills included; or the same typed refusal with the same code and text) and end in the same state."""
    clock = lambda: 1_700_000_000_000  # noqa: E731  (both exchanges stamp the same times)
    direct, full = (SimVenue(config(tmp_path / name, initial_cash=200_000), clock_ms=clock) for name in ("direct", "full"))
    full.direct = False
    p = 50_000.0
    o = lambda cid, **kw: PlaceOrder(symbol="BTC/USDT", client_order_id=cid, **kw)  # noqa: E731
    more = [
        o("d-big", type=OrderType.MARKET, side=Side.BUY, amount=1.5),  # through several levels of the book: several fills
        o("d-sell", type=OrderType.MARKET, side=Side.SELL, amount=0.3),
        o("d-maker", type=OrderType.POST_ONLY, side=Side.BUY, amount=0.003, price=p * 0.98),
        o("d-ice", type=OrderType.GTC, side=Side.BUY, amount=0.004, price=p * 0.975, extra={"icebergQty": 0.001}),
        o("d-cross", type=OrderType.GTC, side=Side.SELL, amount=0.4, price=p * 0.999),  # crosses: fills at once
        o("d-sl", type=OrderType.STOP_LIMIT, side=Side.SELL, amount=0.002, trigger_price=p * 0.95, price=p * 0.945),
        o("d-trail", type=OrderType.TRAILING_STOP, side=Side.SELL, amount=0.002, trailing_percent=1.0),
        o("d-ioc", type=OrderType.IOC, side=Side.BUY, amount=0.002, price=p * 1.01),  # fills
        o("d-fok", type=OrderType.FOK, side=Side.SELL, amount=0.002, price=p * 0.99),  # fills in full
        o("d-dup", type=OrderType.GTC, side=Side.BUY, amount=0.002, price=p * 0.9, extra={"newClientOrderId": "d-maker"}),
        o("d-tiny", type=OrderType.MARKET, side=Side.SELL, amount=0.0000001),  # below the step
        o("d-many", type=OrderType.MARKET, side=Side.SELL, amount=500.0),  # more than is held
        o("d-result", type=OrderType.MARKET, side=Side.BUY, amount=0.01, extra={"newOrderRespType": "RESULT"}),
        o("d-stp", type=OrderType.GTC, side=Side.BUY, amount=0.002, price=p * 0.97, extra={"selfTradePreventionMode": "EXPIRE_BOTH"}),
        PlaceOrder(symbol="ETH/USDT", client_order_id="d-eth", type=OrderType.MARKET, side=Side.BUY, amount=2.0),
    ]
    got: dict[str, list[object]] = {"direct": [], "full": []}
    try:
        for name, sim in (("direct", direct), ("full", full)):
            await sim.load_markets(10)
            sim.set_price("BTC/USDT", p, match=False)
            sim.set_price("ETH/USDT", 3_000.0, match=False)
            # trade ids as after about five million fills: one answer's fills cross from 7 to 8 digits, where ccxt's
            # order of them (by id as text) is not the exchange's
            sim.core._trade_ids = itertools.count(9_999_998)
            for req in [r for r in orders(p) if isinstance(r, PlaceOrder)] + more:
                try:
                    got[name].append(await sim.create_order(req, 10))
                except ExchangeOpError as exc:
                    got[name].append(("refused", type(exc).__name__, exc.code, str(exc)))
            got[name].append(wire.spot_account(sim.account, clock()))
        for a, b in zip(got["direct"], got["full"], strict=True):
            assert a == b
        reports = [r for r in got["direct"] if isinstance(r, OrderReport)]
        assert sum(1 for r in reports if len(r.fills) > 1) >= 1 and len(reports) >= 14  # several fills in one answer
        assert any([f.id for f in r.fills] == ["10000000", "9999999"] for r in reports)  # ccxt's order, not the exchange's
        assert sum(1 for r in got["direct"] if isinstance(r, tuple)) >= 6  # refusals of several kinds
    finally:
        await direct.close()
        await full.close()
