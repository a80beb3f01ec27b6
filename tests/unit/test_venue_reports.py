"""Binance answers recorded from the sandbox (tests/fixtures/binance/, written by its record.py) turned into the
domain's reports by ``exchange/reports.py``, field by field: what ccxt parsed at record time, and the raw REST bodies
parsed again by ccxt offline (so the path from the wire to the report is covered, not only ccxt's half)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import ccxt
import pytest

from planar_core.exchange.binance import BINANCE
from planar_core.exchange.reports import ReportParser, order_type
from planar_core.model.status import OrderStatus
from planar_core.model.types import OrderType, PositionSide, Side
from planar_core.model.venue import TriggerPhase

FIXTURES = Path(__file__).parent.parent / "fixtures" / "binance"
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"
parse = ReportParser(BINANCE)


@cache
def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def parsed(name: str) -> Any:
    return load(name)["parsed"]


def ws(kind: str) -> list[dict[str, Any]]:
    return load(f"ws_{kind}")["messages"]


def ws_values(kind: str, what: str) -> list[dict[str, Any]]:
    return [p["value"] for m in ws(kind) for p in m["parsed"] if p["kind"] == what]


@cache
def offline() -> Any:
    """ccxt's binance with the recorded markets, no network: parses recorded bodies again."""
    ex = ccxt.binance()
    ex.set_markets(list(load("markets").values()))
    return ex


# ---------------------------------------------------------------------------------------------- order acknowledgements
def test_spot_market_ack_is_closed_with_its_fills() -> None:
    r = parse.order(parsed("spot_market_ack"))
    assert (r.symbol, r.client_order_id, r.side, r.type, r.status) == (SPOT, "rec-spot-m1", Side.BUY, OrderType.MARKET, OrderStatus.CLOSED)
    assert r.amount == r.filled == pytest.approx(0.01) and r.remaining == 0
    assert r.fills and sum(f.amount for f in r.fills) == pytest.approx(0.01)
    fill = r.fills[0]
    assert fill.price > 0 and fill.fee is not None and fill.fee.currency == "BTC" and fill.id is not None
    assert r.cost == pytest.approx(sum(f.amount * f.price for f in r.fills))
    assert r.stamp is None and not r.conditional and r.forced_close is None


def test_spot_limit_ack_rests_open() -> None:
    r = parse.order(parsed("spot_limit_ack"))
    assert (r.status, r.type, r.time_in_force) == (OrderStatus.OPEN, OrderType.GTC, "GTC")
    assert r.price == pytest.approx(load("spot_limit_ack")["request"]["price"])
    assert r.filled == 0 and r.remaining == pytest.approx(0.01) and r.fills == ()


def test_spot_stop_ack_is_a_stop_market_with_its_trigger() -> None:
    r = parse.order(parsed("spot_stop_ack"))
    assert r.type is OrderType.STOP_MARKET and r.status is OrderStatus.OPEN
    assert r.trigger_price == pytest.approx(load("spot_stop_ack")["request"]["stopLossPrice"])
    assert not r.conditional  # a spot stop is a book order, never an algo record


@pytest.mark.parametrize("name", ["usdm_market_ack", "usdm_limit_ack"])
def test_usdm_acks_name_the_one_way_position_side(name: str) -> None:
    r = parse.order(parsed(name))
    assert r.symbol == PERP and r.position_side is PositionSide.BOTH and r.reduce_only is False
    assert r.status is (OrderStatus.CLOSED if "market" in name else OrderStatus.OPEN)


def test_usdm_market_ack_has_average_and_cost() -> None:
    r = parse.order(parsed("usdm_market_ack"))
    body = load("usdm_market_ack")["body"]
    assert r.average == pytest.approx(float(body["avgPrice"])) and r.cost == pytest.approx(float(body["cumQuote"]))
    assert r.updated == body["updateTime"]


def test_usdm_algo_ack_is_a_waiting_conditional_record() -> None:
    r = parse.order(parsed("usdm_algo_ack"))
    body = load("usdm_algo_ack")["body"]
    assert r.conditional and r.trigger_phase is TriggerPhase.WAITING and r.id == str(body["algoId"])
    assert r.type is OrderType.STOP_MARKET and r.client_order_id == "rec-perp-s1" and r.triggered_order_id is None


def test_usdm_take_profit_ack_is_a_take_profit_market() -> None:  # ccxt says "market" + takeProfitPrice
    r = parse.order(parsed("usdm_take_ack"))
    assert r.type is OrderType.TAKE_PROFIT_MARKET and r.conditional and r.trigger_phase is TriggerPhase.WAITING


# ---------------------------------------------------------------------------------------------- look-ups and listings
@pytest.mark.parametrize("name", ["spot_fetch_order", "spot_fetch_order_by_client_id", "usdm_fetch_order"])
def test_fetched_resting_order_is_open(name: str) -> None:
    r = parse.order(parsed(name))
    assert r.status is OrderStatus.OPEN and r.id is not None and r.client_order_id is not None and r.amount == pytest.approx(0.01)


def test_waiting_algo_lookup_says_waiting() -> None:
    r = parse.order(parsed("usdm_algo_waiting"))
    assert r.conditional and r.trigger_phase is TriggerPhase.WAITING and r.status is OrderStatus.OPEN


def test_triggered_algo_lookup_names_the_order_it_placed() -> None:
    r = parse.order(parsed("usdm_algo_triggered"))
    assert r.conditional and r.trigger_phase is TriggerPhase.TRIGGERED
    assert r.triggered_order_id == load("usdm_algo_triggered")["body"]["actualOrderId"]


@pytest.mark.parametrize(
    ("name", "cids"), [("spot_open_orders", {"rec-spot-l1", "rec-spot-s1"}), ("usdm_open_algo_orders", {"rec-perp-s1", "rec-perp-t1"})]
)
def test_open_order_listings(name: str, cids: set[str]) -> None:
    reports = parse.orders(parsed(name))
    assert {r.client_order_id for r in reports} == cids and all(r.status is OrderStatus.OPEN for r in reports)


def test_usdm_open_orders_are_book_orders() -> None:
    reports = parse.orders(parsed("usdm_open_orders"))
    assert len(reports) == 3 and not any(r.conditional for r in reports)


# ---------------------------------------------------------------------------------------------- cancels
@pytest.mark.parametrize("name", ["spot_cancel", "usdm_cancel"])
def test_cancel_answers_say_canceled(name: str) -> None:
    r = parse.order(parsed(name))
    assert r.status is OrderStatus.CANCELED and r.id == str(load(name)["request"]["id"]) and not r.conditional


def test_algo_cancel_short_answer_names_the_order_only() -> None:
    r = parse.order(parsed("usdm_cancel_algo"))
    assert (r.id, r.client_order_id, r.status, r.type) == (str(load("usdm_cancel_algo")["request"]["id"]), "rec-perp-s1", None, None)
    assert r.conditional


def test_usdm_batch_cancel_names_each_order() -> None:
    reports = parse.orders(parsed("usdm_batch_cancel"))
    assert [r.id for r in reports] == load("usdm_batch_cancel")["request"]["ids"]
    assert all(r.status is OrderStatus.CANCELED for r in reports)


# ---------------------------------------------------------------------------------------------- fills
def test_spot_my_trades_fill_fields() -> None:
    raw = parsed("spot_my_trades")[0]
    f = parse.fill(raw)
    info = raw["info"]
    assert (f.symbol, f.id, f.order_id) == (SPOT, str(info["id"]), str(info["orderId"]))
    assert f.amount == pytest.approx(float(info["qty"])) and f.price == pytest.approx(float(info["price"]))
    assert f.fee is not None and f.fee.cost == pytest.approx(float(info["commission"])) and f.fee.currency == info["commissionAsset"]
    assert f.timestamp == info["time"] and f.taker is (not info["isMaker"]) and f.stamp is None


def test_usdm_my_trades_carry_realized_pnl() -> None:
    raw = next(t for t in parsed("usdm_my_trades") if float(t["info"]["realizedPnl"]))
    assert parse.fill(raw).realized_pnl == pytest.approx(float(raw["info"]["realizedPnl"]))


def test_usdm_opening_fill_realized_nothing() -> None:
    raw = next(t for t in parsed("usdm_my_trades") if not float(t["info"]["realizedPnl"]))
    assert parse.fill(raw).realized_pnl == 0.0


def test_fill_without_pnl_field_says_none() -> None:
    assert parse.fill(parsed("spot_my_trades")[0]).realized_pnl is None


# ---------------------------------------------------------------------------------------------- balances
def test_spot_rest_balance_is_a_complete_snapshot() -> None:
    raw = parsed("spot_balance")
    b = parse.balance(raw, "spot", complete=True)
    assert b.complete and b.market_type == "spot" and b.stamp is None and b.time_ms == raw["timestamp"]
    assert set(b.assets) == {"BTC", "USDT"}
    btc = b.assets["BTC"]
    assert (btc.free, btc.used, btc.total, btc.available) == (raw["BTC"]["free"], raw["BTC"]["used"], raw["BTC"]["total"], None)


def test_usdm_rest_balance_keeps_the_wallet_and_available_margin() -> None:
    body = load("usdm_balance")["body"]
    row = next(a for a in body["assets"] if a["asset"] == "USDT")
    b = parse.balance(parsed("usdm_balance"), "swap", complete=True)
    usdt = b.assets["USDT"]
    assert usdt.total == pytest.approx(float(row["walletBalance"])) and usdt.available == pytest.approx(float(row["availableBalance"]))
    assert usdt.used == pytest.approx(float(row["initialMargin"])) and b.time_ms == max(a["updateTime"] for a in body["assets"])


def test_paper_style_futures_balance_takes_free_as_available() -> None:
    b = parse.balance({"info": {"paper": True}, "USDT": {"free": 90.0, "used": 10.0, "total": 100.0}}, "swap", complete=True)
    assert b.assets["USDT"].available == 90.0 and b.assets["USDT"].total == 100.0 and b.time_ms is None


def test_outbound_account_position_is_an_update_of_the_assets_it_carries() -> None:
    m = ws("outboundAccountPosition")[0]
    b = parse.balance(m["balance"], "spot", complete=False)
    carried = {row["a"] for row in m["message"]["event"]["B"]}
    assert not b.complete and b.stamp is not None and b.stamp.assets == frozenset(carried) and set(b.assets) <= carried
    assert b.stamp.ms == m["message"]["event"]["u"] and b.time_ms == b.stamp.ms


@pytest.mark.parametrize("reason", ["ORDER", "FUNDING_FEE"])
def test_account_update_balance_carries_the_wallet_only(reason: str) -> None:
    m = next(m for m in ws("ACCOUNT_UPDATE") if m["message"]["a"]["m"] == reason)
    b = parse.balance(m["balance"], "swap", complete=False)
    row = m["message"]["a"]["B"][0]
    usdt = b.assets[row["a"]]
    assert usdt.total == pytest.approx(float(row["wb"])) and usdt.available is None
    assert b.funding is (reason == "FUNDING_FEE") and b.stamp is not None and b.stamp.ms == m["message"]["T"]


# ---------------------------------------------------------------------------------------------- positions
def test_one_way_position_fields() -> None:
    raw = parsed("usdm_positions_one_way")[0]
    p = parse.position(raw)
    info = raw["info"]
    assert (p.symbol, p.side, p.hedged, p.margin_mode) == (PERP, PositionSide.LONG, False, "cross")
    assert p.contracts == pytest.approx(float(info["positionAmt"])) and p.entry_price == pytest.approx(float(info["entryPrice"]))
    assert p.unrealized_pnl == pytest.approx(float(info["unRealizedProfit"])) and p.mark_price == pytest.approx(float(info["markPrice"]))
    assert p.time_ms == info["updateTime"] and p.stamp is None and p.isolated_wallet is None


def test_hedge_mode_positions_are_long_and_short_apart() -> None:
    reports = parse.positions(parsed("usdm_positions_hedge"))
    assert {p.side for p in reports} == {PositionSide.LONG, PositionSide.SHORT} and all(p.hedged for p in reports)
    assert all(p.contracts >= 0 for p in reports)


def test_a_flat_hedge_side_is_that_sides() -> None:
    """ccxt reads a position's side from its size's sign: a flat row of a hedge side has none. It is the side its
    ``positionSide`` names, so the engine's side goes flat; read as one-way's BOTH, hedge mode dropped it and the
    side stayed open in the engine (a backtest's final equity carried its unrealized PnL: an outside trial)."""
    raw = next(r for r in parsed("usdm_positions_hedge") if r["info"]["positionSide"] == "LONG")
    flat = {**raw, "side": None, "contracts": 0.0, "info": {**raw["info"], "positionAmt": "0.000"}}
    p = parse.position(flat)
    assert (p.side, p.contracts, p.hedged) == (PositionSide.LONG, 0.0, True)


def test_stream_position_is_stamped() -> None:
    raw = ws_values("ACCOUNT_UPDATE", "position")[0]
    p = parse.position(raw)
    assert p.symbol == PERP and p.stamp is not None and p.stamp.assets is None


def test_funding_payment_fields() -> None:
    raw = parsed("usdm_funding_history")[0]
    f = parse.funding(raw)
    assert (f.symbol, f.currency, f.id, f.timestamp) == (PERP, "USDT", str(raw["info"]["tranId"]), raw["info"]["time"])
    assert f.amount == pytest.approx(float(raw["info"]["income"])) and f.amount < 0


# ---------------------------------------------------------------------------------------------- user stream
def test_execution_report_order_is_stamped() -> None:
    m = next(m for m in ws("executionReport") if m["message"]["event"]["x"] == "TRADE")
    order = next(p["value"] for p in m["parsed"] if p["kind"] == "order")
    r = parse.order(order)
    assert r.stamp is not None and r.stamp.ms == m["message"]["event"]["T"] and r.status is OrderStatus.CLOSED
    assert r.reason is None  # "r": "NONE"


def test_execution_report_fill_takes_its_client_id_from_the_message() -> None:
    m = next(m for m in ws("executionReport") if m["message"]["event"]["x"] == "TRADE")
    trade = next(p["value"] for p in m["parsed"] if p["kind"] == "trade")
    assert "clientOrderId" not in trade  # ccxt leaves it in info ("c")
    f = parse.fill(trade)
    assert f.client_order_id == m["message"]["event"]["c"] and f.stamp is not None and f.taker is True


def test_order_trade_update_fill_and_order() -> None:
    m = next(m for m in ws("ORDER_TRADE_UPDATE") if m["message"]["o"]["x"] == "TRADE")
    kinds = {p["kind"]: p["value"] for p in m["parsed"]}
    f, r = parse.fill(kinds["trade"]), parse.order(kinds["order"])
    assert f.order_id == r.id == str(m["message"]["o"]["i"]) and f.stamp is not None and r.stamp is not None
    assert r.position_side is PositionSide.BOTH and f.amount == pytest.approx(float(m["message"]["o"]["l"]))


@pytest.mark.parametrize(("status", "phase"), [("NEW", TriggerPhase.WAITING), ("FINISHED", TriggerPhase.TRIGGERED)])
def test_algo_update_phases(status: str, phase: TriggerPhase) -> None:
    m = next(m for m in ws("ALGO_UPDATE") if m["message"]["o"]["X"] == status)
    r = parse.order(m["parsed"][0]["value"])
    assert r.conditional and r.trigger_phase is phase and r.stamp is not None


def test_finished_algo_update_names_the_placed_order() -> None:
    m = next(m for m in ws("ALGO_UPDATE") if m["message"]["o"]["X"] == "FINISHED" and m["message"]["o"].get("ai"))
    assert parse.order(m["parsed"][0]["value"]).triggered_order_id == str(m["message"]["o"]["ai"])


def test_canceled_algo_update() -> None:
    m = next(m for m in ws("ALGO_UPDATE") if m["message"]["o"]["X"] == "CANCELED")
    r = parse.order(m["parsed"][0]["value"])
    assert r.status is OrderStatus.CANCELED and r.conditional and r.trigger_phase is None


# ---------------------------------------------------------------------------------------------- from the wire
@pytest.mark.parametrize(
    ("name", "symbol"),
    [("spot_market_ack", SPOT), ("spot_limit_ack", SPOT), ("usdm_market_ack", PERP), ("usdm_limit_ack", PERP), ("usdm_algo_ack", PERP)],
)
def test_raw_body_parsed_offline_gives_the_same_report(name: str, symbol: str) -> None:
    ex = offline()
    again = parse.order(ex.parse_order(load(name)["body"], ex.market(symbol)))
    recorded = parse.order(parsed(name))
    assert again == recorded


def test_forced_close_has_no_order_type() -> None:
    r = parse.order({"symbol": PERP, "id": "9", "clientOrderId": "autoclose-123", "status": "closed", "type": "liquidation", "info": {}})
    assert r.forced_close == "liquidation" and r.type is None
    adl = parse.order({"symbol": PERP, "id": "9", "clientOrderId": "adl_autoclose", "status": "closed", "info": {}})
    assert adl.forced_close == "adl"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "market"}, OrderType.MARKET),
        ({"type": "limit", "timeInForce": "GTC"}, OrderType.GTC),
        ({"type": "limit", "timeInForce": "IOC"}, OrderType.IOC),
        ({"type": "limit", "timeInForce": "FOK"}, OrderType.FOK),
        ({"type": "limit_maker", "postOnly": True}, OrderType.POST_ONLY),
        ({"type": "stop_loss_limit", "price": 1.0, "triggerPrice": 2.0}, OrderType.STOP_LIMIT),
        ({"type": "take_profit_market", "triggerPrice": 2.0}, OrderType.TAKE_PROFIT_MARKET),
        ({"type": "take_profit", "price": 1.0, "triggerPrice": 2.0}, OrderType.TAKE_PROFIT_LIMIT),
        ({"type": "trailing_stop_market"}, OrderType.TRAILING_STOP),
    ],
)
def test_order_type_of_ccxt_types(raw: dict[str, Any], expected: OrderType) -> None:
    assert order_type(raw) is expected


def test_a_balance_cache_read_after_two_account_messages_carries_both() -> None:
    """Two ``outboundAccountPosition`` back to back on one connection (a sale's BTC, then its USDT in another): the
    balance ccxt's cache gives after the second names both currencies as brought up to date, not the second's
    alone (the first's change was dropped until the next read: a false drawdown in an outside trial). Once the
    engine took them, or on a new connection, it starts again: a value from before a gap is not taken as current."""
    from types import SimpleNamespace

    from planar_core.exchange.binance import StrictBinance

    ex = StrictBinance({})
    ex.balance = {"spot": None}

    def connection() -> SimpleNamespace:  # what ccxt's handler reads of its websocket client
        return SimpleNamespace(url="wss://user", subscriptions={"spot": True}, resolve=lambda *a: None)

    first, again = connection(), connection()

    def message(asset: str, free: str, u: int) -> dict[str, Any]:
        return {"e": "outboundAccountPosition", "E": u, "u": u, "B": [{"a": asset, "f": free, "l": "0"}]}

    def cached() -> frozenset[str] | None:
        stamp = parse.balance(ex.balance["spot"], "spot", complete=False).stamp
        return None if stamp is None else stamp.assets

    ex.handle_balance(first, message("BTC", "0.35", 1))
    ex.handle_balance(first, message("USDT", "9000", 2))
    assert cached() == frozenset({"BTC", "USDT"})
    ex.balance_taken()  # the engine applied them: the next message names what comes after
    ex.handle_balance(first, message("ETH", "3", 3))
    assert cached() == frozenset({"ETH"})
    ex.handle_balance(first, message("LTC", "5", 4))
    ex.handle_balance(again, message("BNB", "1", 5))  # after a drop: only what the new connection carried
    assert cached() == frozenset({"BNB"})
