"""Tasks on the event trace: compaction, auto-tuning, the divergence check."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import TypedDict

from prefect import task
from prefect.cache_policies import NO_CACHE

from planar_core.exchange.client_ids import identity_of, planar_identity
from planar_core.model.types import Json
from planar_core.trace.analysis import TuningBounds, optimize_from_events
from planar_core.trace.compaction import compact_trace, map_large_allocations
from planar_core.trace.replay import ReplayedState, divergences, replay_events, replay_from_trace
from planar_core.trace.report import analysis_markdown

from . import Overrides
from .blocks import secret_block_provider
from .strategy import build_strategy, load_strategy_config


class TuneOutcome(TypedDict):
    """What ``tune`` gives back: the change set persisted for the running engine and its report."""

    change_id: str
    applied: list[Json]  # one per parameter changed: param, old, new, reason
    summary: str
    analysis_markdown: str


def not_another_strategys(identity: str, client_order_id: str | None) -> bool:
    """True unless the id is another Planar strategy's (this strategy's, a manual order's, another program's)."""
    return planar_identity(client_order_id) in (None, identity)


def _trace_root(strategy: str, config_path: str | None, overrides: Overrides) -> str:
    from planar_core.engine.strategy import trace_root

    return trace_root(load_strategy_config(strategy, config_path, overrides), secret_block_provider)


@task(retries=3, retry_delay_seconds=[5, 30, 60], cache_policy=NO_CACHE)
async def compact(
    strategy: str,
    config_path: str | None = None,
    overrides: Overrides = None,
    horizon_hours: float = 24,
    retention_days: float | None = None,
) -> dict[str, object]:
    """Idempotent: compaction of a compacted trace rewrites it the same way."""
    root = _trace_root(strategy, config_path, overrides)
    map_large_allocations()  # its peak memory stays at the window's (docs/trace.md, "Compaction")
    report = await asyncio.to_thread(
        compact_trace,
        root,
        market_data_horizon=timedelta(hours=horizon_hours),
        retention=timedelta(days=retention_days) if retention_days else None,
    )
    return report.as_dict()


@task(cache_policy=NO_CACHE)
async def tune(strategy: str, days: float, config_path: str | None = None, overrides: Overrides = None) -> TuneOutcome:
    """Analyse the window and persist bounded parameter changes for the running engine (not retried: it applies)."""
    from planar_core.alerts.dispatcher import send_alert
    from planar_core.engine.strategy import trace_root

    s = build_strategy(strategy, config_path, overrides=overrides)
    try:
        result = optimize_from_events(s, days=days, bounds=TuningBounds(), source=trace_root(s.config))
        summary = f"Strategy optimization completed for {strategy}: " + (
            ", ".join(f"{p.param} {p.old}->{p.new}" for p in result.applied) or "no change"
        )
        send_alert(s, summary, "info")
        if s.alerts is not None:
            await s.alerts.drain()
    finally:
        await s.stop()
    return {
        "change_id": result.change_id,
        "applied": [vars(p) for p in result.applied],
        "summary": summary,
        "analysis_markdown": analysis_markdown(result.analysis),
    }


def _replayed(strategy: str, config_path: str | None, overrides: Overrides) -> ReplayedState:
    """The state the strategy's traces replay to: the account trace and its side trace together, in time order. Its
    engine records to the side trace while another strategy holds the account trace, so one run's orders can open in
    one and end in the other; replayed alone, the account trace left them open, a false divergence (an outside
    operator trial)."""
    import pandas as pd

    from planar_core.engine.strategy import side_trace_root, trace_root
    from planar_core.trace.files import TraceNotFoundError
    from planar_core.trace.reading import read_trace

    cfg = load_strategy_config(strategy, config_path, overrides)
    frames = []
    for root in (trace_root(cfg, secret_block_provider), side_trace_root(cfg)):
        try:
            frames.append(read_trace(root, payload=True))
        except TraceNotFoundError:
            continue
    if not frames:
        return replay_from_trace(trace_root(cfg, secret_block_provider))  # says which trace is missing
    return replay_events(pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable", ignore_index=True))


@task(cache_policy=NO_CACHE)
def divergence_check(
    strategy: str, snapshot: dict[str, object], config_path: str | None = None, overrides: Overrides = None, tolerance: float = 1e-8
) -> list[str]:
    """The exchange snapshot against the state the trace replays to. The account's trace holds every strategy's
    orders: another strategy's (its ids carry another identity) are not this one's divergence."""
    state = _replayed(strategy, config_path, overrides)
    if len(state.orders) and "client_order_id" in state.orders:
        keep = state.orders["client_order_id"].astype(str).map(partial(not_another_strategys, identity_of(strategy)))
        state.orders = state.orders[keep.to_numpy(dtype=bool)]
    open_ids = snapshot["open"]
    balances = snapshot["balances"]
    assert isinstance(open_ids, dict) and isinstance(balances, dict)
    return divergences(state, open_ids, balances, tolerance)
