"""What an emergency stop (a strategy's, ``risk.estop``, or an account's, ``risk.account_estop``) achieved, as a
structure: per symbol, its orders (cancelled, still open, unverified and why) and its positions (closed, still
open); and what could not be verified at all.

The reports' wording (``summary``, the keyed tables ``unverified`` / ``remaining_open`` / ``remaining_positions``
that the flows, the CLI and the trace show) is rendered from the structure, never kept beside it. The tables are
views: reading them renders; removing a key (a flow that settled a symbol afterwards) clears that entry of the
structure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from ..model.types import PositionSide

V = TypeVar("V")
Entry = tuple[str, V, Callable[[], None]]  # a rendered key, its value, and how to clear it from the structure


@dataclass
class OrdersOutcome:
    """A symbol's open orders: how many were seen open and then confirmed gone, how many the exchange still lists,
    and why they could not be confirmed (None: the last listing answered)."""

    cancelled: int = 0
    still_open: int = 0
    unverified: str | None = None
    left_alone: int = 0  # open orders on the account that are not the stopping strategy's
    already_gone: int = 0  # open in the strategy's own record, no longer listed when the stop first looked
    counted: set[str] = field(default_factory=set, repr=False, compare=False)  # client ids in the counts (not reported)


@dataclass
class PositionOutcome:
    """One position (a symbol's; in hedge mode one side of it): what was sent to close it, and the signed size the
    exchange still reports (0: flat, or below what can be traded)."""

    closed: float = 0.0
    still_open: float = 0.0
    left_to_others: float = 0.0  # the account's holding that is not the stopping strategy's (risk/ownership.py), left alone


@dataclass
class SymbolOutcome:
    orders: OrdersOutcome = field(default_factory=OrdersOutcome)
    positions: dict[PositionSide, PositionOutcome] = field(default_factory=dict)
    position_unverified: str | None = None  # the position could not be read (why)
    unreachable: str | None = None  # nothing could be asked: the exchange could not be reached

    def position(self, side: PositionSide = PositionSide.BOTH) -> PositionOutcome:
        return self.positions.setdefault(side, PositionOutcome())

    @property
    def settled(self) -> bool:
        """The exchange confirmed this symbol: reachable, listed, no order left open, its position read and flat."""
        return (
            self.unreachable is None
            and self.orders.unverified is None
            and not self.orders.still_open
            and self.position_unverified is None
            and not any(p.still_open for p in self.positions.values())
        )


def position_key(symbol: str, side: PositionSide) -> str:
    """How the report tables name a position: the symbol, with ``#long`` / ``#short`` in hedge mode."""
    return symbol if side is PositionSide.BOTH else f"{symbol}#{side.value}"


class Table(MutableMapping[str, V]):
    """A keyed table rendered from an outcome structure (see the module): read-only but for removing a key."""

    def __init__(self, entries: Callable[[], list[Entry[V]]]) -> None:
        self._entries = entries

    def _find(self, key: str) -> Entry[V] | None:
        return next((e for e in self._entries() if e[0] == key), None)

    def __getitem__(self, key: str) -> V:
        found = self._find(key)
        if found is None:
            raise KeyError(key)
        return found[1]

    def __setitem__(self, key: str, value: V) -> None:
        raise TypeError("an e-stop report's tables are rendered from its outcome; change the outcome instead")

    def __delitem__(self, key: str) -> None:
        found = self._find(key)
        if found is None:
            raise KeyError(key)
        found[2]()

    def __iter__(self) -> Iterator[str]:
        return iter([e[0] for e in self._entries()])

    def __len__(self) -> int:
        return len(self._entries())

    def __repr__(self) -> str:
        return repr(dict(self))

    def __eq__(self, other: object) -> bool:
        return dict(self) == other if isinstance(other, (dict, Table)) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dict


def not_clean_parts(remaining_open: dict[str, int], remaining_positions: dict[str, float], unverified: dict[str, str]) -> list[str]:
    """What keeps an e-stop (a strategy's or an account's) from being clean, in the words its summary uses."""
    parts = []
    if remaining_open:
        parts.append(f"STILL OPEN orders {remaining_open}")
    if remaining_positions:
        parts.append(f"STILL OPEN positions {remaining_positions}")
    if unverified:
        parts.append(f"UNVERIFIED {unverified}")
    return parts


class OutcomeTables:
    """The tables both e-stop reports (the strategy's and the account's) render from their per-symbol outcomes."""

    symbols: dict[str, SymbolOutcome]

    @property
    def closed(self) -> dict[str, float]:
        """Position -> amount sent to close."""
        return {position_key(sym, side): p.closed for sym, o in self.symbols.items() for side, p in o.positions.items() if p.closed}

    @property
    def remaining_open(self) -> Table[int]:
        """Symbol -> orders the exchange still lists open."""

        def entries() -> list[Entry[int]]:
            return [
                (sym, o.orders.still_open, partial(setattr, o.orders, "still_open", 0))
                for sym, o in self.symbols.items()
                if o.orders.still_open
            ]

        return Table(entries)

    @property
    def remaining_positions(self) -> Table[float]:
        """Position -> the size the exchange still reports."""

        def entries() -> list[Entry[float]]:
            return [
                (position_key(sym, side), p.still_open, partial(setattr, p, "still_open", 0.0))
                for sym, o in self.symbols.items()
                for side, p in o.positions.items()
                if p.still_open
            ]

        return Table(entries)
