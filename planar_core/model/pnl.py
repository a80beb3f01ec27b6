"""Realised PnL of fills and round trips: FIFO lots for spot, the position's average entry for futures.

Conventions (docs/trace.md, "Realised PnL"), the same everywhere (the engine, the trace, replay, the reports):

* **gross of fees**: a fill's realised PnL is ``(exit price - entry price) x amount closed x contract size`` for a
  long (the other way round for a short); fees are kept apart, valued in the symbol's quote currency (a fee paid
  in the base currency at the fill's price; a fee in a third currency, such as BNB, is not valued: ``fee_quote``
  leaves it out and says so with None).
* **spot, FIFO lots** per symbol, of the strategy's own fills: a buy opens a lot of what it leaves in the account
  (its amount, less a fee paid in the base currency) at its price; a sell realises ``(sell price - lot price) x
  amount`` against the oldest lots first (a fee paid in the base currency on a sell takes its amount from the
  lots too, realising nothing). A sell of more than the known lots (coins held before the strategy started, or
  bought by hand) realises only the part matched with lots: the rest is ``unmatched`` and realises nothing; a sell
  with no lot at all realises ``None`` (not known), never a guess. A spot account cannot go short: the unmatched
  part opens nothing.
* **futures, average entry** per position (one-way: the symbol; hedge mode: its long and its short side): a fill
  in the position's direction (or from flat) moves the average entry; a fill against it realises against the
  average entry, and what is left of it beyond the position (one-way mode) opens the opposite position at the
  fill's price (a flip). A fill that closes nothing realises 0.0.
* **round trips**: from flat to flat again (spot: the lots of the strategy's own fills fall below one amount step
  of the market; futures: the position side is closed, or flips). Entry and exit prices are the averages of the
  fills that opened and closed it; realised PnL is the sum of its fills'; fees those of its fills (a flipping fill's
  fee is shared pro rata).

A ``Basis`` (one per symbol, or symbol and side in hedge mode) is plain data with a JSON snapshot
(``snapshot``/``from_snapshot``): each ``trade_executed`` event of the trace carries the snapshot after its fill,
so a restart or a replay rebuilds the cost basis from the last one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .json import integer, num, text
from .types import Json, Side

EPS = 1e-12


def fee_quote(fee: float, currency: str | None, price: float, base: str, quote: str) -> float | None:
    """A fee valued in the quote currency: as is in the quote (or when the venue names no currency), times the
    price in the base; None in any other currency (not valued)."""
    if not fee:
        return 0.0
    if currency is None or currency == quote:
        return fee
    if currency == base:
        return fee * price
    return None


@dataclass(frozen=True)
class RoundTrip:
    """A position from flat back to flat."""

    symbol: str
    side: str  # "long" | "short"
    entry_time: int  # ms, first opening fill
    entry_price: float  # average of the opening fills
    exit_time: int  # ms, the fill that made it flat
    exit_price: float  # average of the closing fills
    amount: float  # amount closed (contracts x contract size for futures: the base amount)
    realized_pnl: float  # sum of its fills' realised PnL (gross of fees)
    fees: float  # its fills' fees in the quote currency
    fills: int
    position_side: str = "both"  # "both" (spot, one-way) or the hedge-mode side

    @property
    def duration_s(self) -> float:
        return (self.exit_time - self.entry_time) / 1000

    def fields(self) -> Json:
        """The ``round_trip`` event's fields (besides symbol, ids: the caller adds those)."""
        return {
            "side": self.side,
            "amount": self.amount,
            "price": self.exit_price,
            "fee": self.fees,
            "realized_pnl": self.realized_pnl,
            "entry_time": self.entry_time,
            "entry_price": self.entry_price,
            "exit_time": self.exit_time,
            "exit_price": self.exit_price,
            "duration_s": self.duration_s,
            "fills": self.fills,
            "position_side": self.position_side,
        }


@dataclass
class OpenTrip:
    """A round trip under way."""

    side: str
    entry_time: int
    entry_amount: float = 0.0
    entry_value: float = 0.0
    exit_time: int = 0
    exit_amount: float = 0.0
    exit_value: float = 0.0
    realized: float = 0.0
    fees: float = 0.0
    fills: int = 0

    def snapshot(self) -> Json:
        return dict(vars(self))

    @classmethod
    def from_snapshot(cls, d: object) -> OpenTrip | None:
        if not isinstance(d, dict):
            return None
        return cls(
            text(d.get("side")) or "long",
            integer(d.get("entry_time")),
            num(d.get("entry_amount")),
            num(d.get("entry_value")),
            integer(d.get("exit_time")),
            num(d.get("exit_amount")),
            num(d.get("exit_value")),
            num(d.get("realized")),
            num(d.get("fees")),
            integer(d.get("fills")),
        )


@dataclass(frozen=True)
class Realized:
    """What one fill realised."""

    pnl: float | None  # what the trade carries: the venue's figure when it reported one, else ``computed``
    computed: float | None  # the engine's own (None: a spot sell with no known lot)
    unmatched: float  # spot: the amount sold beyond the known lots
    closed: RoundTrip | None  # the round trip this fill ended
    basis: Json  # the snapshot after the fill


@dataclass
class Totals:
    """Running figures of one basis since the strategy's first fill (kept in its snapshot)."""

    realized: float = 0.0
    fees: float = 0.0
    fills: int = 0
    trips: int = 0
    wins: int = 0

    def snapshot(self) -> Json:
        return dict(vars(self))

    @classmethod
    def from_snapshot(cls, d: object) -> Totals:
        if not isinstance(d, dict):
            return cls()
        return cls(num(d.get("realized")), num(d.get("fees")), integer(d.get("fills")), integer(d.get("trips")), integer(d.get("wins")))


@dataclass
class Basis:
    """The cost basis of one position: spot lots (``lots``: [amount, price, time ms], oldest first) or a futures
    position (``contracts`` signed: > 0 long, < 0 short, on a hedge side too; ``entry_price`` their average)."""

    symbol: str
    spot: bool
    position_side: str = "both"  # "both", "long", "short"
    step: float = 0.0  # below one amount step the position counts as flat
    contract_size: float = 1.0
    lots: list[list[float]] = field(default_factory=list)
    contracts: float = 0.0
    entry_price: float = 0.0
    trip: OpenTrip | None = None
    totals: Totals = field(default_factory=Totals)

    # ------------------------------------------------------------------ state
    @property
    def size(self) -> float:
        """Spot: the amount held in lots; futures: the signed contracts."""
        return sum(lot[0] for lot in self.lots) if self.spot else self.contracts

    def flat(self) -> bool:
        return abs(self.size) < max(self.step * (1 - 1e-9), EPS)

    def snapshot(self) -> Json:
        out: Json = {"symbol": self.symbol, "position_side": self.position_side}
        if self.spot:
            out["lots"] = [list(lot) for lot in self.lots]
        else:
            out["contracts"], out["entry_price"] = self.contracts, self.entry_price
        out["trip"] = None if self.trip is None else self.trip.snapshot()
        out["totals"] = self.totals.snapshot()
        return out

    @classmethod
    def from_snapshot(cls, d: Json, spot: bool, step: float = 0.0, contract_size: float = 1.0) -> Basis:
        lots = d.get("lots")
        return cls(
            text(d.get("symbol")) or "",
            spot,
            text(d.get("position_side")) or "both",
            step,
            contract_size,
            [[num(x[0]), num(x[1]), num(x[2])] for x in lots if isinstance(x, list) and len(x) == 3] if isinstance(lots, list) else [],
            num(d.get("contracts")),
            num(d.get("entry_price")),
            OpenTrip.from_snapshot(d.get("trip")),
            Totals.from_snapshot(d.get("totals")),
        )

    # ------------------------------------------------------------------ fills
    def apply(
        self,
        side: Side,
        amount: float,
        price: float,
        timestamp: int,
        fee: float | None = 0.0,
        base_fee: float = 0.0,
        reported: float | None = None,
    ) -> Realized:
        """Apply one fill. ``fee``: its fee in the quote currency (None: not valued); ``base_fee``: a fee paid in the
        base currency (spot: taken from the amount held); ``reported``: the venue's own realised PnL, which the
        trade carries when given (the round trip sums what the trades carry)."""
        if self.spot:
            closed, opened, computed, unmatched = self._spot(side, amount, price, timestamp, base_fee)
        else:
            closed, opened, computed, unmatched = self._futures(side, amount, price)
        pnl = reported if reported is not None else computed
        trip = self._trip(side, closed, opened, amount, price, timestamp, fee or 0.0, pnl or 0.0)
        t = self.totals
        t.realized += pnl or 0.0
        t.fees += fee or 0.0
        t.fills += 1
        if trip is not None:
            t.trips += 1
            t.wins += int(trip.realized_pnl > 0)
        return Realized(pnl, computed, unmatched, trip, self.snapshot())

    def _spot(self, side: Side, amount: float, price: float, ts: int, base_fee: float) -> tuple[float, float, float | None, float]:
        if side is Side.BUY:
            held = amount - base_fee
            if held > EPS:
                self.lots.append([held, price, float(ts)])
            return 0.0, amount, 0.0, 0.0
        matched, pnl = self._take(amount, price)
        self._take(base_fee, None)  # the fee leaves the account too: its lots realise nothing
        unmatched = max(0.0, amount - matched)
        return matched, 0.0, (pnl if matched > EPS else None), unmatched if unmatched > EPS else 0.0

    def _take(self, amount: float, price: float | None) -> tuple[float, float]:
        """Take ``amount`` from the oldest lots: (amount matched, PnL against ``price``)."""
        left, pnl = amount, 0.0
        while left > EPS and self.lots:
            lot = self.lots[0]
            used = min(lot[0], left)
            if price is not None:
                pnl += (price - lot[1]) * used
            lot[0] -= used
            left -= used
            if lot[0] <= EPS:
                self.lots.pop(0)
        return amount - max(left, 0.0), pnl

    def _futures(self, side: Side, amount: float, price: float) -> tuple[float, float, float, float]:
        sign = 1.0 if side is Side.BUY else -1.0
        if self.position_side == "long":
            sign_pos = 1.0
        elif self.position_side == "short":
            sign_pos = -1.0
        else:
            sign_pos = 1.0 if self.contracts > 0 else -1.0 if self.contracts < 0 else sign
        q = abs(self.contracts)
        if sign == sign_pos:  # opens or adds: the average entry moves
            total = q + amount
            self.entry_price = (self.entry_price * q + price * amount) / total if total > EPS else 0.0
            self.contracts = sign_pos * total
            return 0.0, amount, 0.0, 0.0
        closed = min(q, amount)
        pnl = (price - self.entry_price) * closed * sign_pos * self.contract_size
        q -= closed
        opened = amount - closed if self.position_side == "both" else 0.0  # a hedge side never flips
        unmatched = amount - closed - opened
        if opened > EPS:
            self.contracts, self.entry_price = sign * opened, price
        else:
            opened = 0.0
            self.contracts = sign_pos * q
            if q <= EPS:
                self.contracts, self.entry_price = 0.0, 0.0
        return closed, opened, pnl, unmatched if unmatched > EPS else 0.0

    def _trip(
        self, side: Side, closed: float, opened: float, amount: float, price: float, ts: int, fee: float, pnl: float
    ) -> RoundTrip | None:
        """Move the open round trip along; the finished one when this fill made the position flat (or flipped it)."""
        done: RoundTrip | None = None
        share = closed / amount if amount > EPS else 0.0
        if self.trip is not None and closed > EPS:
            tr = self.trip
            tr.exit_time = ts
            tr.exit_amount += closed
            tr.exit_value += closed * price
            tr.realized += pnl
            tr.fees += fee * (share if opened > EPS else 1.0)
            tr.fills += 1
            if self.flat() or (opened > EPS and not self.spot):
                done = RoundTrip(
                    self.symbol,
                    tr.side,
                    tr.entry_time,
                    tr.entry_value / tr.entry_amount if tr.entry_amount > EPS else math.nan,
                    ts,
                    tr.exit_value / tr.exit_amount,
                    tr.exit_amount * (1.0 if self.spot else self.contract_size),
                    tr.realized,
                    tr.fees,
                    tr.fills,
                    self.position_side,
                )
                self.trip = None
        if opened > EPS:
            if self.trip is None:
                direction = "long" if self.spot or self.position_side == "long" else "short"
                if not self.spot and self.position_side == "both":
                    direction = "long" if side is Side.BUY else "short"
                self.trip = OpenTrip(direction, ts)
                part = fee * (1 - share) if closed > EPS else fee
            else:
                part = fee
            tr = self.trip
            tr.entry_amount += opened
            tr.entry_value += opened * price
            tr.fees += part
            tr.fills += 1
        return done
