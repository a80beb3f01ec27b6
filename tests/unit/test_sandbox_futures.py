"""USDⓈ-M futures accounting of the sandbox (sandbox/futures.py) on a hand-set mark price: maintenance brackets,
fills into positions and the wallet, available balance, liquidation price, liquidation and funding. The mixin is
hosted by a minimal class (fixed clock, mark prices set by the test); no exchange, no server."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from planar_core.sandbox import futures as F
from planar_core.sandbox.accounts import ZERO, Account, Position, SandboxOrder
from planar_core.sandbox.errors import ApiError

D = Decimal
T = 1_700_000_000_000
SYM = "BTCUSDT"


class Host(F.FuturesAccounting):
    """What ``SandboxExchange`` gives the mixin: leverage and fee defaults, a clock, ids, events and mark prices."""

    def __init__(self, marks: dict[str, Decimal]) -> None:
        self.default_leverage = 20
        self.futures_taker_fee = D("0.0005")
        self.marks = marks
        self.events: list[tuple[str, dict[str, object]]] = []
        self._trade_ids = itertools.count(1)
        self._order_ids = itertools.count(1)

    def now_ms(self) -> int:
        return T

    def emit(self, acct: Account, kind: str, event: str, payload: dict[str, object]) -> None:
        self.events.append((event, payload))

    def mark(self, symbol: str) -> Decimal:
        return self.marks[symbol]

    def cancel_for_liquidation(self, acct: Account, order: SandboxOrder) -> None:
        order.status = "CANCELED"


def order(side: str, qty: str, price: str = "0", reduce_only: bool = False, position_side: str = "BOTH") -> SandboxOrder:
    return SandboxOrder(
        next(_ids),
        f"o{next(_ids)}",
        SYM,
        "linear",
        side,
        "LIMIT",
        "GTC",
        D(price),
        D(qty),
        T,
        reduce_only=reduce_only,
        position_side=position_side,
    )


_ids = itertools.count(1)


def setup(wallet: str = "10000", mark: str = "60000") -> tuple[Host, Account]:
    host = Host({SYM: D(mark)})
    return host, Account.create({"USDT": D(wallet)}, api_key="k", api_secret="s")


def fill(host: Host, acct: Account, side: str, qty: str, price: str, fee: str = "0") -> tuple[Decimal, Decimal]:
    return host.settle_futures(acct, order(side, qty, price), D(price), D(qty), D(fee))


# ------------------------------------------------------------------ brackets
def test_the_bracket_holding_a_notional_is_the_first_whose_cap_is_above_it() -> None:
    assert F.bracket_for(D(49_999)) == (D("0.004"), D(0))
    assert F.bracket_for(D(50_000)) == (D("0.005"), D(50))  # a cap belongs to the next tier
    assert F.bracket_for(D(2_000_000_000)) == (D("0.5"), D(301481450))  # past the last cap: the last tier


@pytest.mark.parametrize("tier", range(len(F.BRACKETS) - 1))
def test_maintenance_margin_is_continuous_at_every_tier_boundary(tier: int) -> None:
    """Binance's cumulative amounts make notional x rate - cum the same on both sides of each cap."""
    _, cap, rate, cum, _ = F.BRACKETS[tier]
    _, _, next_rate, next_cum, _ = F.BRACKETS[tier + 1]
    assert D(cap) * rate - cum == D(cap) * next_rate - next_cum


def test_maintenance_margin_of_a_position_is_its_notional_at_mark_times_the_rate() -> None:
    host, _ = setup(mark="60000")
    assert host.maint_margin(SYM, Position(D("0.1"), D(50_000))) == D("24.0000")  # 6 000 x 0.4 %, whatever the entry
    assert host.maint_margin(SYM, Position(D(-2), D(60_000))) == D(120_000) * D("0.005") - D(50)


# ------------------------------------------------------------------ fills into positions
def test_opening_a_long_sets_its_entry_and_charges_the_fee_to_the_wallet() -> None:
    host, acct = setup()
    fee, realized = fill(host, acct, "BUY", "0.1", "60000", fee="0.0005")
    assert (fee, realized) == (D("3.00000000"), ZERO)
    pos = host.position(acct, SYM)
    assert (pos.amount, pos.entry_price) == (D("0.1"), D(60_000))
    assert acct.futures_wallet == D(10_000) - D(3)


def test_adding_to_a_position_averages_its_entry() -> None:
    host, acct = setup()
    fill(host, acct, "BUY", "0.1", "60000")
    fill(host, acct, "BUY", "0.3", "62000")
    assert host.position(acct, SYM).entry_price == (D(6_000) + D(18_600)) / D("0.4")


def test_reducing_a_long_realizes_pnl_and_keeps_the_entry() -> None:
    host, acct = setup()
    fill(host, acct, "BUY", "0.2", "61000")
    _, realized = fill(host, acct, "SELL", "0.1", "63000")
    pos = host.position(acct, SYM)
    assert realized == D(200) and (pos.amount, pos.entry_price) == (D("0.1"), D(61_000))
    assert acct.futures_wallet == D(10_200)


def test_reducing_a_short_realizes_the_fall() -> None:
    host, acct = setup()
    fill(host, acct, "SELL", "0.5", "60000")
    _, realized = fill(host, acct, "BUY", "0.5", "58000")
    assert realized == D(1_000) and host.position(acct, SYM).amount == ZERO and host.position(acct, SYM).entry_price == ZERO


def test_a_fill_past_the_position_flips_it_at_the_fill_price() -> None:
    host, acct = setup()
    fill(host, acct, "BUY", "0.1", "60000")
    _, realized = fill(host, acct, "SELL", "0.3", "61000")
    pos = host.position(acct, SYM)
    assert realized == D(100) and (pos.amount, pos.entry_price) == (D("-0.2"), D(61_000))


def test_an_isolated_position_holds_its_initial_margin_and_releases_it_pro_rata() -> None:
    host, acct = setup()
    host.set_margin_type(acct, SYM, isolated=True)
    acct.leverage[SYM] = 10
    fill(host, acct, "BUY", "0.2", "50000")
    assert host.position(acct, SYM).isolated_wallet == D(1_000)  # 10 000 notional / 10
    fill(host, acct, "SELL", "0.05", "50000")
    assert host.position(acct, SYM).isolated_wallet == D(750)
    assert host.cross_wallet(acct) == acct.futures_wallet - D(750)


# ------------------------------------------------------------------ available balance
def test_available_is_cross_wallet_plus_upnl_minus_position_and_order_margin() -> None:
    host, acct = setup(wallet="10000", mark="60000")
    fill(host, acct, "BUY", "0.1", "60000")
    host.marks[SYM] = D(61_000)
    resting = order("BUY", "0.1", "50000")
    acct.orders[resting.order_id] = resting
    m = host.futures_margins(acct)
    assert m["upnl"] == D(100)
    assert m["position_im"] == D("0.1") * D(61_000) / 20
    assert m["order_im"] == D("0.1") * D(50_000) / 20
    assert m["available"] == D(10_000) + D(100) - D(305) - D(250)


def test_reduce_only_orders_hold_no_margin() -> None:
    host, acct = setup()
    fill(host, acct, "BUY", "0.1", "60000")
    closing = order("SELL", "0.1", "65000", reduce_only=True)
    acct.orders[closing.order_id] = closing
    assert host.futures_margins(acct)["order_im"] == ZERO


def test_a_cancelled_order_holds_no_margin_any_more() -> None:
    host, acct = setup()
    resting = order("BUY", "0.1", "50000")
    acct.orders[resting.order_id] = resting
    assert host.futures_margins(acct)["available"] == D(10_000) - D(250)
    resting.status = "CANCELED"
    assert host.futures_margins(acct)["available"] == D(10_000)


def test_isolated_positions_take_nothing_from_the_cross_available_but_their_wallet() -> None:
    host, acct = setup(wallet="10000")
    host.set_margin_type(acct, SYM, isolated=True)
    fill(host, acct, "BUY", "0.1", "60000")  # 300 of isolated margin at 20x
    host.marks[SYM] = D(50_000)  # an isolated loss does not touch the cross available
    assert host.futures_margins(acct)["available"] == D(10_000) - D(300)


# ------------------------------------------------------------------ liquidation price
def backing_minus_maint(host: Host, acct: Account) -> Decimal:
    [(_, maint, backing)] = host.margin_groups(acct)
    return backing - maint


@pytest.mark.parametrize(("side", "qty"), [("BUY", "0.1"), ("SELL", "0.1")])
def test_at_the_cross_liquidation_price_the_margin_backing_meets_the_maintenance(side: str, qty: str) -> None:
    host, acct = setup(wallet="1000")
    fill(host, acct, side, qty, "60000")
    liq = host.liquidation_price(acct, SYM, host.position(acct, SYM))
    assert (liq < D(60_000)) is (side == "BUY")  # a long is liquidated below its entry, a short above
    host.marks[SYM] = liq
    assert abs(backing_minus_maint(host, acct)) < D("0.000001")
    host.marks[SYM] = liq + (D(1) if side == "BUY" else D(-1))
    assert backing_minus_maint(host, acct) > 0 and not F.FuturesAccounting.liquidation_due(host.margin_groups(acct))
    host.marks[SYM] = liq - (D(1) if side == "BUY" else D(-1))
    assert F.FuturesAccounting.liquidation_due(host.margin_groups(acct)) == [(SYM, "BOTH")]


def test_an_isolated_liquidation_price_depends_on_its_own_wallet_only() -> None:
    host, acct = setup(wallet="1000")
    host.set_margin_type(acct, SYM, isolated=True)
    fill(host, acct, "BUY", "0.1", "60000")  # isolated wallet 300 at 20x
    pos = host.position(acct, SYM)
    liq = host.liquidation_price(acct, SYM, pos)
    acct.futures_wallet += D(1_000_000)  # a richer cross wallet changes nothing
    assert host.liquidation_price(acct, SYM, pos) == liq
    assert liq == (D(300) - D(6_000)) / (D("0.1") * D("0.004") - D("0.1"))


def test_a_flat_position_has_no_liquidation_price() -> None:
    host, acct = setup()
    assert host.liquidation_price(acct, SYM, Position()) == ZERO


# ------------------------------------------------------------------ pre-trade checks
def test_reduce_only_must_reduce_and_not_exceed_the_position() -> None:
    host, acct = setup()
    with pytest.raises(ApiError) as flat:
        host.check_futures(acct, order("SELL", "0.1", reduce_only=True), D(60_000))
    fill(host, acct, "BUY", "0.1", "60000")
    with pytest.raises(ApiError) as over:
        host.check_futures(acct, order("SELL", "0.2", reduce_only=True), D(60_000))
    host.check_futures(acct, order("SELL", "0.1", reduce_only=True), D(60_000))
    assert flat.value.code == over.value.code == -2022


def test_an_opening_order_needs_its_initial_margin_and_taker_fee_available() -> None:
    need = D("0.1") * D(60_000) / 20 + D("0.1") * D(60_000) * D("0.0005")  # 300 + 3
    host, acct = setup(wallet=str(need))
    host.check_futures(acct, order("BUY", "0.1"), D(60_000))
    host, acct = setup(wallet=str(need - D("0.01")))
    with pytest.raises(ApiError) as info:
        host.check_futures(acct, order("BUY", "0.1"), D(60_000))
    assert info.value.code == -2019


def test_the_closing_part_of_an_order_needs_no_initial_margin() -> None:
    host, acct = setup(wallet="10000")
    fill(host, acct, "BUY", "1", "60000")  # 3 000 of position margin
    acct.futures_wallet = D(3_100)  # available 100
    host.check_futures(acct, order("SELL", "1"), D(60_000))  # closes: only the 30 of fee


def test_position_mode_and_margin_type_refuse_no_change_and_open_positions() -> None:
    host, acct = setup()
    codes = []
    for call in (lambda: host.set_position_mode(acct, False), lambda: host.set_margin_type(acct, SYM, False)):
        with pytest.raises(ApiError) as info:
            call()
        codes.append(info.value.code)
    fill(host, acct, "BUY", "0.1", "60000")
    for call in (lambda: host.set_position_mode(acct, True), lambda: host.set_margin_type(acct, SYM, True)):
        with pytest.raises(ApiError) as info:
            call()
        codes.append(info.value.code)
    assert codes == [-4059, -4046, -4068, -4048]


# ------------------------------------------------------------------ liquidation and funding
def test_a_cross_liquidation_closes_at_mark_and_pays_the_clearance_fee() -> None:
    host, acct = setup(wallet="1000")
    fill(host, acct, "BUY", "0.1", "60000")
    host.marks[SYM] = D(55_000)
    liq = host.liquidate(acct, SYM, "BOTH")
    fee = D("0.1") * D(55_000) * F.LIQUIDATION_FEE
    assert liq.client_id.startswith("autoclose-") and liq.status == "FILLED" and liq.type == "LIQUIDATION"
    assert host.position(acct, SYM).amount == ZERO
    assert acct.futures_wallet == D(1_000) - D(500) - fee
    assert [(i.kind, i.amount) for i in acct.income] == [("INSURANCE_CLEAR", -fee)]
    assert host.events[0][1]["exec"] == "CALCULATED"


def test_an_isolated_liquidation_loses_the_whole_isolated_wallet() -> None:
    host, acct = setup(wallet="1000")
    host.set_margin_type(acct, SYM, isolated=True)
    fill(host, acct, "BUY", "0.1", "60000")  # 300 isolated
    host.marks[SYM] = D(57_500)  # -250 realized: 50 left over goes to the insurance fund
    host.liquidate(acct, SYM, "BOTH")
    assert acct.futures_wallet == D(1_000) - D(300)
    assert acct.income[-1].amount == D(-50)


def test_funding_is_paid_by_longs_when_the_rate_is_positive() -> None:
    host, acct = setup(wallet="1000", mark="50000")
    fill(host, acct, "BUY", "0.2", "50000")
    host.settle_funding(acct, SYM, T)
    assert acct.income[-1].kind == "FUNDING_FEE" and acct.income[-1].amount == D("-1.00000000")  # 10 000 x 0.01 %
    host.settle_funding(acct, SYM, T, rate=D("-0.0003"))
    assert acct.income[-1].amount == D("3.00000000")
    assert acct.futures_wallet == D(1_000) - D(1) + D(3)


def test_a_margin_call_warns_once_per_episode() -> None:
    host, acct = setup(wallet="1000")
    fill(host, acct, "BUY", "0.1", "60000")
    liq = host.liquidation_price(acct, SYM, host.position(acct, SYM))
    host.marks[SYM] = liq + D(50)  # near: maintenance >= 80 % of the backing
    assert host.margin_calls(acct, host.margin_groups(acct)) == [(SYM, "BOTH")]
    assert host.margin_calls(acct, host.margin_groups(acct)) == []  # not again while at risk
    host.marks[SYM] = D(60_000)
    assert host.margin_calls(acct, host.margin_groups(acct)) == []  # recovered
    host.marks[SYM] = liq + D(50)
    assert host.margin_calls(acct, host.margin_groups(acct)) == [(SYM, "BOTH")]
