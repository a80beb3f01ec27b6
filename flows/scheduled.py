"""Scheduled flows: daily reset, auto-tuning, re-sync with divergence check, trace compaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.events import emit_event

from planar_core.alerts.dispatcher import send_alert
from planar_core.engine.sync import sync_balances, sync_positions
from planar_core.risk import metrics as M
from planar_core.risk.manager import utc_day
from planar_core.trace.analysis import TuningBounds, optimize_from_events
from planar_core.trace.compaction import compact_trace as compact
from planar_core.trace.replay import replay_from_trace
from planar_core.trace.report import analysis_markdown

from .common import artifact_key, build_strategy, resource


async def _loaded(strategy: str, config_path: str | None, overrides: dict[str, Any] | None) -> Any:
    """A strategy with markets, balances and prices loaded, no watchers (side trace if the live engine holds the account's)."""
    s = build_strategy(strategy, config_path, **(overrides or {}))
    await s.load()
    await sync_balances(s)
    if s.config.margin:
        await sync_positions(s)
    for ai in s.universe.values():  # prices for valuation
        t = await s.client.call("fetch_ticker", lambda ai=ai: s.client.ex.fetch_ticker(ai.symbol), s.config.timeouts.market_data)
        ai.last_price = float(t["last"])
    return s


@flow(name="daily_reset", retries=3, retry_delay_seconds=30)
async def daily_reset(strategy: str, config_path: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record the day-start equity; clear the daily-loss breaker unless an emergency stop (not the breaker) halted it;
    publish the previous day's PnL."""
    logger = get_run_logger()
    s = await _loaded(strategy, config_path, overrides)
    try:
        eq, unpriced = M.equity(s)
        before = s.state_store.load()
        previous = {"day": before.day, "day_start_equity": before.day_start_equity, "day_end_equity": eq,
                    "pnl": (eq - before.day_start_equity) if before.day_start_equity is not None else None}
        changes: dict[str, Any] = {"day": utc_day(), "day_start_equity": eq}
        cleared = False
        if before.breaker_tripped == "daily_loss":  # the breaker's own halt ends with the day; a manual e-stop does not
            changes.update(breaker_tripped=None, halted=False, halt_reason=None, halted_by_emergency_stop=False)
            cleared = True
        s.state_store.update(**changes)
        s.sink.record("daily_reset", equity=eq, previous_pnl=previous["pnl"], cleared_breaker=cleared)
        logger.info("daily reset of %s: equity %.2f, previous day PnL %s, breaker cleared %s", strategy, eq, previous["pnl"], cleared)
        await acreate_table_artifact(key=artifact_key(strategy, "daily-pnl"), table=[{k: v for k, v in previous.items()}],
                                     description=f"previous day PnL of {strategy}")
        return {**previous, "cleared_breaker": cleared, "unpriced": unpriced, "halted": s.state_store.load().halted}
    finally:
        await s.stop()


@flow(name="auto_tune", retries=1, retry_delay_seconds=60)
async def auto_tune(strategy: str, days: float = 30, config_path: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """optimize_from_events over the window; bounded changes persisted for the running engine; report and alert."""
    from planar_core.engine.strategy import trace_root

    s = build_strategy(strategy, config_path, **(overrides or {}))
    try:
        result = optimize_from_events(s, days=days, bounds=TuningBounds(), source=trace_root(s.config))
        summary = f"Strategy optimization completed for {strategy}: " + (
            ", ".join(f"{p.param} {p.old}->{p.new}" for p in result.applied) or "no change")
        send_alert(s, summary, "info")
        if s.alerts is not None:
            await s.alerts.drain()
    finally:
        await s.stop()
    changes = "\n".join(f"| {p.param} | {p.old} | {p.new} | {p.reason} |" for p in result.applied) or "| - | - | - | no change |"
    md = (f"# Auto-tuning of {strategy} ({days:g} days)\n\n| parameter | old | new | reason |\n|---|---|---|---|\n{changes}\n\n"
          f"change id `{result.change_id}` (revert with `planar_core.trace.analysis.revert_tuning`)\n\n{analysis_markdown(result.analysis)}")
    await acreate_markdown_artifact(key=artifact_key(strategy, "auto-tune"), markdown=md, description=f"auto-tuning report of {strategy}")
    if result.applied:
        emit_event(event="planar.tuning_applied", resource=resource(strategy), payload={"change_id": result.change_id,
                                                                                        "changes": [vars(p) for p in result.applied]})
    return {"change_id": result.change_id, "applied": [vars(p) for p in result.applied], "summary": summary}


@task(retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
async def exchange_view(s: Any) -> dict[str, Any]:
    """Idempotent fetch of the exchange's view: balances and open orders per asset."""
    await sync_balances(s)
    opened = {}
    for ai in s.universe.values():
        rows = await s.client.call("fetch_open_orders", lambda ai=ai: s.client.ex.fetch_open_orders(ai.symbol), s.config.timeouts.order_placement)
        opened[ai.symbol] = sorted(str(o.get("clientOrderId")) for o in rows)
    return {"open": opened, "balances": {k: vars(v) for k, v in s.balances.items()}}


@flow(name="resync", retries=2, retry_delay_seconds=10)
async def resync(strategy: str, config_path: str | None = None, overrides: dict[str, Any] | None = None,
                 tolerance: float = 1e-8) -> dict[str, Any]:
    """Health check and full account re-sync; compares the exchange with the trace-derived state and alerts on divergence."""
    from planar_core.engine.health import check
    from planar_core.engine.strategy import trace_root

    logger = get_run_logger()
    s = build_strategy(strategy, config_path, **(overrides or {}))
    try:
        await s.load()
        healthy = await check(s)
        exchange = await exchange_view(s)
        state = replay_from_trace(trace_root(s.config))
        traced_open: dict[str, list[str]] = {}
        for row in state.orders.itertuples(index=False):
            if row.status == "open":
                traced_open.setdefault(row.symbol, []).append(row.client_order_id)
        divergences = []
        for sym, ids in exchange["open"].items():
            if sorted(ids) != sorted(traced_open.get(sym, [])):
                divergences.append(f"{sym}: exchange open {ids} vs trace {sorted(traced_open.get(sym, []))}")
        for cur, bal in exchange["balances"].items():
            traced = state.balances.get(cur)
            if traced is not None and abs(float(traced.get("total", 0.0)) - bal["total"]) > tolerance * max(1.0, abs(bal["total"])):
                divergences.append(f"{cur}: exchange total {bal['total']} vs trace {traced.get('total')}")
        if divergences:
            logger.error("divergence between exchange and trace for %s: %s", strategy, divergences)
            emit_event(event="planar.divergence", resource=resource(strategy), payload={"divergences": divergences[:20]})
            send_alert(s, f"Divergence for {strategy}: {divergences[:5]}", "error")
            if s.alerts is not None:
                await s.alerts.drain()
    finally:
        await s.stop()
    await acreate_markdown_artifact(key=artifact_key(strategy, "resync"), description=f"resync of {strategy}",
                                    markdown=f"# Resync {strategy}\nhealthy: {healthy}\n\n" + ("\n".join(f"- {d}" for d in divergences) or "no divergence"))
    return {"healthy": healthy, "divergences": divergences, "exchange": exchange}


@flow(name="compact_trace", retries=2, retry_delay_seconds=30)
async def compact_trace(strategy: str, config_path: str | None = None, overrides: dict[str, Any] | None = None,
                        market_data_horizon_hours: float = 24, retention_days: float | None = None) -> dict[str, Any]:
    """Compaction of the account's trace; publishes sizes and chunk counts before and after."""
    from planar_core.engine.strategy import trace_root

    s = build_strategy(strategy, config_path, **{**(overrides or {}), "event_tracing": {"enabled": False}})
    root = trace_root(s.config)
    await s.stop()
    report = await _compact(root, market_data_horizon_hours, retention_days)
    await acreate_table_artifact(key=artifact_key(strategy, "compaction"), description=f"trace compaction of {strategy}",
                                 table=[{"": "bytes", "before": report["bytes_before"], "after": report["bytes_after"]},
                                        {"": "chunks", "before": report["chunks_before"], "after": report["chunks_after"]},
                                        {"": "segments", "before": report["segments_before"], "after": report["segments_after"]},
                                        {"": "events", "before": report["events_before"], "after": report["events_after"]}])
    return report


@task(retries=3, retry_delay_seconds=[5, 30, 60])
async def _compact(root: str, horizon_hours: float, retention_days: float | None) -> dict[str, Any]:
    """Idempotent: compaction of a compacted trace rewrites it the same way."""
    import asyncio

    report = await asyncio.to_thread(compact, root, market_data_horizon=timedelta(hours=horizon_hours),
                                     retention=timedelta(days=retention_days) if retention_days else None)
    return report.as_dict()


__all__ = ["daily_reset", "auto_tune", "resync", "compact_trace"]
