"""Which part of the account's holding a strategy may close: its own.

Why: on an account several strategies trade (the default: ``risk.exclusive_account`` off), the exchange reports one
holding per symbol (spot: the coins; one-way futures: the net position; hedge mode: each side), whoever built it.
Closing it whole, as the emergency stop and ``close_position`` did, sold the other strategies' coins and closed their
positions, and the report said clean. A strategy's own share is what its own fills built: the cost basis the engine
keeps from them (engine/ledger.py, restored from the trace after a restart), never more than the account holds in
the same direction. A holding built before the strategy's trace, or by someone else, is not its to close. When the
account is the strategy's alone (``risk.exclusive_account``), the whole holding is.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..model.types import PositionSide

if TYPE_CHECKING:
    from ..engine.strategy import Strategy
    from ..model import AssetInstance


def own_share(s: "Strategy", ai: "AssetInstance", side: PositionSide, held: float) -> tuple[float, float]:
    """Of the account's signed holding ``held`` on ``ai`` (spot: the free base; futures: the position, or ``side``
    of it in hedge mode), the part that is this strategy's and the part that is not: ``(ours, others)``, both
    signed, summing to ``held``. Ours is the strategy's own position (its fills' basis) in the same direction,
    capped by ``held``; opposite directions (the account is net the other way) leave nothing of ours to close."""
    if s.config.risk.exclusive_account:
        return held, 0.0
    own = s.ledger.basis(ai, side).size
    if own * held <= 0:
        return 0.0, held
    ours = math.copysign(min(abs(own), abs(held)), held)
    return ours, held - ours
