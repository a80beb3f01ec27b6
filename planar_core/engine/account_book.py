"""The account as the engine holds it: balances, each asset's positions, funding payments, valuation prices.

This is the one owner of that state. Watchers, REST reads and the order path hand it the exchange's reports
(``apply_balance``, ``apply_positions``) or what they learned (``set_leverage``, ``set_margin_mode``,
``record_funding``, ``set_conversion_prices``); nothing else writes a balance or a position. It answers what
changed, and the coordinator (``Strategy``) decides what follows: exits of a position gone flat, the breakers,
alerts about changes made outside the engine.

Which report each balance and position holds, and whether a fill is included yet, is ``Freshness``'s business
(engine/freshness.py); a report is taken for a currency or an asset only if it is newer than the one held.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..config import StrategyConfig
from ..model import AssetInstance, Balance, Position, PositionSide
from ..model.clock import Clock, now_ms
from ..model.sink import EventSink
from ..model.stamp import Stamp
from ..model.venue import AssetBalance, BalanceReport, FundingPayment, PositionReport
from .freshness import Freshness, position_key

log = logging.getLogger("planar.engine.account")


@dataclass(frozen=True)
class PositionChange:
    """A position that moved: ``key`` is the symbol (hedge mode: ``symbol#long`` / ``symbol#short``)."""

    key: str
    symbol: str
    side: PositionSide
    contracts: float
    entry_price: float
    before: float

    @property
    def closed(self) -> bool:
        return not self.contracts and bool(self.before)

    @property
    def flipped(self) -> bool:
        """Through zero in one go (one-way mode: a sell larger than the long): the position before is closed."""
        return self.contracts * self.before < 0

    @property
    def reduced(self) -> bool:
        return abs(self.contracts) < abs(self.before)


class FundingRecord:
    """Funding payments booked on the account's universe assets in this run's record: each once, by its id."""

    def __init__(self, since_ms: int) -> None:
        self._by_symbol: dict[str, float] = {}
        self._seen: set[str] = set()
        self.since = since_ms  # the next read of the income history starts here

    @property
    def by_symbol(self) -> Mapping[str, float]:
        """Symbol -> funding received (> 0) or paid (< 0)."""
        return self._by_symbol

    def add(self, symbol: str, payment: FundingPayment) -> bool:
        """Count ``payment`` once; False if it has no id or was counted already."""
        fid = payment.id
        if fid is None or fid in self._seen:
            return False
        self._seen.add(fid)
        self.since = max(self.since, payment.timestamp)
        self._by_symbol[symbol] = self._by_symbol.get(symbol, 0.0) + payment.amount
        return True

    def read_through(self, ms: int) -> None:
        """A read answered with nothing new: every payment booked before ``ms`` was in it, so the next read starts
        there. (A read with new payments moves the start to the newest of them only: its answer may have been cut
        short at the venue's row limit.) Without it, a run without payments (no position) read from its start each
        time, one more 7-day window a week on Bybit."""
        self.since = max(self.since, ms)

    def restore(self, ids: Iterable[str], since: int) -> None:
        """Payments an earlier run recorded in the trace (counted there, not again) and where to read from."""
        self._seen.update(ids)
        self.since = since


class AccountBook:
    def __init__(
        self, config: StrategyConfig, universe: dict[str, AssetInstance], freshness: Freshness, sink: EventSink, clock: Clock
    ) -> None:
        self.margin = config.margin
        self.main_currency = config.main_currency
        self.default_leverage = config.default_leverage
        self.universe = universe  # the strategy's assets (shared: the markets' loader fills it)
        self.freshness = freshness
        self.sink = sink
        self.clock = clock
        self._balances: dict[str, Balance] = {}
        self._derived: set[str] = set()  # margin currencies whose free was derived from a stream's wallet (see apply_balance)
        self._conversion: dict[str, float] = {}
        self.funding = FundingRecord(now_ms(clock))

    # ----------------------------------------------------------------- reading
    @property
    def balances(self) -> Mapping[str, Balance]:
        """Currency -> balance (margin accounts: ``total`` is the wallet, ``free`` the margin new orders may use)."""
        return self._balances

    @property
    def conversion_prices(self) -> Mapping[str, float]:
        """Valuation markets outside the universe -> last price (``risk.metrics.price_in_main``)."""
        return self._conversion

    def cash(self, currency: str | None = None) -> Balance:
        return self._balances.get(currency or self.main_currency, Balance())

    def free_margin(self, currency: str | None = None) -> float:
        """Margin available for new orders in ``currency`` (the settle currency)."""
        return self.cash(currency).free

    # ----------------------------------------------------------------- balances
    def apply_balance(self, report: BalanceReport, stamp: Stamp | None = None) -> dict[str, Balance]:
        """Merge a balance report; returns the currencies that changed. A complete report (a REST snapshot) says a
        currency it does not list is zero; a stream update may carry only the currencies that changed, and
        touches only those. A currency takes the report only if its stamp is newer than the report it holds.

        Margin accounts keep one meaning whatever the source: ``total`` is the *wallet* balance (without unrealized
        PnL) and ``free`` the margin available for new orders (the exchange's figure when the report carries it;
        else, a stream update carries only the wallet: derived locally by ``risk.metrics.available_margin`` until
        the next snapshot)."""
        complete = report.complete
        stamp = stamp or report.stamp or self.freshness.fresh_stamp(rest=complete)
        currencies = {self.main_currency}
        if not self.margin:
            for ai in self.universe.values():
                currencies.update((ai.base, ai.quote))
        if not complete:  # an update: only the currencies its message carried
            currencies &= set(report.assets) if stamp.assets is None else stamp.assets
        changed: dict[str, Balance] = {}
        for cur in sorted(currencies):
            newer = self.freshness.newer(cur, stamp)
            doubt = self.freshness.doubtful(cur, stamp)
            if not (newer or doubt):
                continue  # what is held came later than this report
            new = self._margin_balance(report, cur) if self.margin else self._spot_balance(report, cur)
            held = self._balances.get(cur)
            if doubt and new is not None and (held is None or (new.total != held.total if self.margin else new != held)):
                self.freshness.confirm(cur)  # margin: a stream update's free is derived here, the wallet is the exchange's
            if not newer:
                continue  # kept by the tie rule until the read settles it
            if new is None:
                if complete and not self.margin:  # the snapshot says: none held
                    self.freshness.hold(cur, stamp)
                continue
            # a spot balance is never negative; a margin wallet (and what is free of it) may be: a cross
            # liquidation past bankruptcy leaves a debt, and the breakers must see it
            lowest = new.used if self.margin else min(new.free, new.used, new.total)
            if lowest < 0 or not all(map(math.isfinite, (new.free, new.used, new.total))):
                log.error("ignoring an impossible balance for %s from the exchange: %s", cur, new)
                self.sink.record("error_occurred", reason=f"impossible balance for {cur}", payload=vars(new))
                continue
            self.freshness.hold(cur, stamp)
            if self.margin:  # which figure is held: the exchange's free, or one derived here (``rederive_free``)
                entry = report.assets.get(cur)
                (self._derived.add if entry is not None and entry.available is None else self._derived.discard)(cur)
            if self._balances.get(cur) != new:
                self._balances[cur] = new
                changed[cur] = new
        if changed:
            self.sink.record("balance_updated", payload={cur: vars(b) for cur, b in changed.items()})
        return changed

    def _spot_balance(self, report: BalanceReport, cur: str) -> Balance | None:
        entry = report.assets.get(cur)
        if entry is None:
            if report.complete and cur in self._balances:
                entry = AssetBalance(0.0, 0.0, 0.0)
            else:
                return None
        return Balance(entry.free, entry.used, entry.total)

    def _margin_balance(self, report: BalanceReport, cur: str) -> Balance | None:
        entry = report.assets.get(cur)
        if entry is None:
            return None
        if entry.available is not None:  # the exchange's own figure of the margin new orders may use
            return Balance(entry.available, entry.used, entry.total)
        return self._derive(cur, entry.total)  # a stream update: the wallet only

    def _derive(self, cur: str, wallet: float) -> Balance:
        from ..risk.metrics import available_margin

        free = available_margin(self.universe.values(), self.default_leverage, cur, wallet)
        return Balance(free, max(0.0, wallet - free), wallet)

    def rederive_free(self) -> dict[str, Balance]:
        """The derived free margin worked out again on the positions held now; returns the currencies that changed.
        Why: Binance's ACCOUNT_UPDATE carries the wallet and the positions together, and the engine applies them one
        after the other (the balance and position watchers): a free derived from the wallet before the position it
        came with was applied kept the old position's margin (14 000 USDT too much after a 0.2 BTC fill, for as long
        as no snapshot came). A figure the exchange gave (a snapshot's) is left as it is."""
        changed: dict[str, Balance] = {}
        for cur in self._derived:
            held = self._balances.get(cur)
            if held is not None and (new := self._derive(cur, held.total)) != held:
                self._balances[cur] = changed[cur] = new
        if changed:
            self.sink.record("balance_updated", payload={cur: vars(b) for cur, b in changed.items()})
        return changed

    def set_balances(self, balances: Mapping[str, Balance]) -> None:
        """Balances known without an exchange report behind them (a replayed trace, a test's account)."""
        self._balances.update(balances)

    # ----------------------------------------------------------------- positions
    def apply_positions(
        self, reports: Sequence[PositionReport], complete: bool = False, stamp: Stamp | None = None
    ) -> list[PositionChange]:
        """Merge position reports; returns the positions that moved. One-way mode keeps one position per asset (a
        report of the other side replaces it: the opposite side is closed, as Planar does); hedge mode keeps the
        long and the short side apart. ``complete``: a full snapshot, where a position it does not list is flat. An
        asset takes a report only if it is newer than the one it holds; ``stamp``: where a REST snapshot's request
        left."""
        seen: set[tuple[str, PositionSide]] = set()
        changed: dict[str, PositionChange] = {}
        base = stamp or self.freshness.fresh_stamp(rest=complete)
        stamps: dict[str, Stamp] = {}  # symbol -> the report applied to it
        for p in reports:
            sym = p.symbol
            if sym not in self.universe:
                continue
            if p.stamp is not None:
                stamps.setdefault(sym, p.stamp)
            elif base.rest:  # a snapshot row: the exchange's time of its last change, if it says
                ms = max(filter(None, (p.time_ms, stamps[sym].ms if sym in stamps else None)), default=None)
                stamps[sym] = replace(base, ms=ms)
            else:
                stamps.setdefault(sym, base)
        stale = {sym for sym, st in stamps.items() if not self.freshness.newer(position_key(sym), st)}
        if complete:
            stale |= {sym for sym in self.universe if sym not in stamps and not self.freshness.newer(position_key(sym), base)}
        rows = [(ai, *row) for p in reports if (ai := self.universe.get(p.symbol)) is not None and (row := _side_of(ai, p))]
        for sym, st in stamps.items():  # a tie whose order is a guess, and the two reports disagree: read again
            if self.freshness.doubtful(position_key(sym), st):
                told = {side: c for ai, side, c, _ in rows if ai.symbol == sym}
                if told != {side: pos.contracts for side, pos in self.universe[sym].positions.items() if pos.contracts or side in told}:
                    self.freshness.confirm(position_key(sym))
        for ai, side, contracts, p in rows:
            if ai.symbol in stale:  # a later report is held: keep it
                continue
            seen.add((ai.symbol, side))
            if p.margin_mode is not None:
                ai.margin_mode = p.margin_mode
            old = ai.position_of(side)
            upnl = p.unrealized_pnl
            new = Position(
                contracts,
                p.entry_price or 0.0,
                upnl or 0.0,
                p.leverage or old.leverage,
                p.time_ms or now_ms(self.clock),
                unrealized_known=upnl is not None,
            )
            if (new.contracts, new.entry_price) != (old.contracts, old.entry_price):
                change = PositionChange(_key(ai.symbol, side), ai.symbol, side, new.contracts, new.entry_price, old.contracts)
                changed[change.key] = change
            ai.positions[side] = new
        if complete:  # a full snapshot: positions it does not list are flat
            for ai in self.universe.values():
                if ai.symbol in stale:
                    continue
                for side, pos in list(ai.positions.items()):
                    if (ai.symbol, side) not in seen and pos.contracts:
                        change = PositionChange(_key(ai.symbol, side), ai.symbol, side, 0.0, 0.0, pos.contracts)
                        changed[change.key] = change
                        ai.positions[side] = Position(leverage=pos.leverage)
        for sym in self.universe if complete else stamps:
            if sym not in stale:
                self.freshness.hold(position_key(sym), stamps.get(sym, base))
        if changed:
            self.sink.record(
                "position_updated",
                payload={k: {"contracts": c.contracts, "entry_price": c.entry_price, "before": c.before} for k, c in changed.items()},
            )
        return list(changed.values())

    def set_leverage(self, ai: AssetInstance, leverage: float) -> None:
        """The exchange took ``leverage`` for the asset (every side of its position, flat ones too: in hedge mode
        ``ai.position`` is a net view, and a leverage set on it was lost, so the margin check of a first order on a side
        used ``default_leverage``)."""
        sides = (PositionSide.LONG, PositionSide.SHORT) if ai.hedged else (PositionSide.BOTH,)
        for p in [*(ai.position_of(side) for side in sides), *ai.positions.values()]:
            p.leverage = leverage

    def set_margin_mode(self, ai: AssetInstance, mode: str) -> None:
        ai.margin_mode = mode

    def set_hedged(self, ai: AssetInstance, hedged: bool) -> None:
        """The account's position mode (hedge: a long and a short side per asset)."""
        ai.hedged = hedged

    def restore(self, balances: Mapping[str, Balance], positions: Iterable[tuple[str, PositionSide, Position]]) -> None:
        """The account as a trace recorded it (replay): balances and positions replaced whole, no report behind them."""
        self._balances = dict(balances)
        for ai in self.universe.values():
            ai.positions.clear()
        for symbol, side, position in positions:
            if symbol in self.universe:
                self.universe[symbol].positions[side] = position

    # ----------------------------------------------------------------- funding and valuation prices
    def record_funding(self, payment: FundingPayment) -> bool:
        """One funding payment of a universe asset, recorded once (by its id) as ``funding_paid``; True if new."""
        ai = self.universe.get(payment.symbol or "")
        if ai is None or not self.funding.add(ai.symbol, payment):
            return False
        self.sink.record(
            "funding_paid",
            symbol=ai.symbol,
            amount=payment.amount,
            fee=-payment.amount,
            currency=payment.currency,
            trade_id=payment.id,
            time_ms=payment.timestamp,
        )
        return True

    def set_conversion_prices(self, prices: Mapping[str, float]) -> bool:
        """Last prices of valuation markets outside the universe; True if any changed."""
        if all(self._conversion.get(k) == v for k, v in prices.items()):
            return False
        self._conversion.update(prices)
        return True

    def forget_conversion_price(self, symbol: str) -> None:
        self._conversion.pop(symbol, None)


def _side_of(ai: AssetInstance, p: PositionReport) -> tuple[PositionSide, float, PositionReport] | None:
    """Which of the asset's positions a report row is (one-way mode: the one; hedge mode: its side) and its signed
    contracts; None for a flat hedge-mode row that names no side (it says nothing)."""
    contracts = -abs(p.contracts) if p.side is PositionSide.SHORT else abs(p.contracts)
    if not ai.hedged:
        return PositionSide.BOTH, contracts, p
    if p.side is PositionSide.BOTH:
        return None
    return p.side, contracts, p


def _key(symbol: str, side: PositionSide) -> str:
    return symbol if side is PositionSide.BOTH else f"{symbol}#{side.value}"
