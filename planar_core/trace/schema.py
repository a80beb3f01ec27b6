"""Event trace schema: its version, the event kinds, which kinds are durable and which are market data.

Version 2 (typed, dictionary-encoded columns) is in ``columns.py``; version 1 (fixed-width strings) is read by
``legacy.py`` until compaction rewrites its segments. See docs/trace.md.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
READABLE_VERSIONS = frozenset({1, 2})

# Version 1 stored a kind as its index in this tuple (names not listed kept theirs in the payload); version 2 stores
# the name, so any kind is valid. The tuple stays the documented list and the v1 decoding table.
KINDS: tuple[str, ...] = (
    "other",
    "order_placed",
    "order_updated",
    "order_filled",
    "order_cancelled",
    "order_failed",
    "order_adopted",
    "trade_executed",
    "balance_updated",
    "position_updated",
    "api_call",
    "error_occurred",
    "risk_rejected",
    "breaker_tripped",
    "emergency_stop",
    "reconnect",
    "config_changed",
    "halted",
    "rearmed",
    "risk_metrics",
    "ohlcv",
    "ticker",
    "daily_reset",
    # added in 1.1 (appended: the codes above never change)
    "order_unknown",
    "order_reconciled",
    "illegal_transition",
    "valuation_incomplete",
    # added in 1.2
    "estop_requested",
    # added in 1.3: conditional orders, margin
    "order_triggered",
    "order_foreign",
    "margin_mode_set",
    "position_mode_set",
    "leverage_updated",
    "forced_close",
    "funding_paid",
)
KIND_CODE = {k: i for i, k in enumerate(KINDS)}
MARKET_DATA_KINDS = frozenset({"ohlcv", "ticker"})
# written to the WAL before record() returns, so they are durable before the engine acts on them further
DURABLE_KINDS = frozenset(
    {
        "order_placed",
        "order_updated",
        "order_filled",
        "order_cancelled",
        "order_failed",
        "order_adopted",
        "trade_executed",
        "position_updated",
        "order_unknown",
        "order_reconciled",
        "illegal_transition",
        "emergency_stop",
        "halted",
        "rearmed",
        "breaker_tripped",
        "estop_requested",
        "order_triggered",
        "forced_close",
        "funding_paid",
        "round_trip",  # issue 28: recorded with the fill that closed it, in the same commit
        "params_changed",  # issue 28: the strategy's Params changed while it ran (optimisation, rollback)
    }
)
