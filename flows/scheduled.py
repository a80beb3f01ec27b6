"""Scheduled flows: daily reset, auto-tuning, re-sync with divergence check, trace compaction.

Each orchestrates tasks from ``tasks/`` (serialisable inputs, retried where that is safe) and publishes an
artifact; the logic itself is in planar_core.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.events import emit_event

from planar_core.model.types import Json
from tasks.account import exchange_snapshot, reset_day
from tasks.events import resource
from tasks.strategy import build_strategy
from tasks.trace import compact, divergence_check, tune

from .common import artifact_key


@flow(name="daily_reset", retries=3, retry_delay_seconds=30)
async def daily_reset(strategy: str, config_path: str | None = None, overrides: dict[str, object] | None = None) -> Json:
    """Record the day-start equity; clear the daily-loss breaker unless an emergency stop (not the breaker) halted it;
    publish the previous day's PnL."""
    result = await reset_day(strategy, config_path, overrides)
    rows = [
        {"metric": k, "value": result[k]}
        for k in ("day", "day_start_equity", "day_end_equity", "pnl", "cleared_breaker", "halted", "already_reset")
    ]
    await acreate_table_artifact(key=artifact_key(strategy, "daily-pnl"), table=rows, description=f"previous day PnL of {strategy}")
    return result


@flow(name="auto_tune", retries=1, retry_delay_seconds=60)
async def auto_tune(strategy: str, days: float = 30, config_path: str | None = None, overrides: dict[str, object] | None = None) -> Json:
    """Bounded parameter changes from the trace's last ``days``, persisted for the running engine; report and alert."""
    result = await tune(strategy, days, config_path, overrides)
    applied = result["applied"]
    changes = "\n".join(f"| {p['param']} | {p['old']} | {p['new']} | {p['reason']} |" for p in applied) or "| - | - | - | no change |"
    md = (
        f"# Auto-tuning of {strategy} ({days:g} days)\n\n| parameter | old | new | reason |\n|---|---|---|---|\n{changes}\n\n"
        f"change id `{result['change_id']}` (revert with `planar_core.trace.analysis.revert_tuning`)\n\n{result['analysis_markdown']}"
    )
    await acreate_markdown_artifact(key=artifact_key(strategy, "auto-tune"), markdown=md, description=f"auto-tuning report of {strategy}")
    if applied:
        emit_event(
            event="planar.tuning_applied", resource=resource(strategy), payload={"change_id": result["change_id"], "changes": applied}
        )
    return {k: v for k, v in result.items() if k != "analysis_markdown"}


@flow(name="resync", retries=2, retry_delay_seconds=10)
async def resync(
    strategy: str,
    config_path: str | None = None,
    overrides: dict[str, object] | None = None,
    tolerance: float = 1e-8,
    configs_dir: str | None = None,
) -> Json:
    """Health check, then the exchange's snapshot against the trace-derived state; a divergence is an event and an
    alert. The config is ``config_path`` or the config named ``strategy`` in ``configs_dir`` (the reconnect
    automation names the strategy only)."""
    from planar_core.alerts.dispatcher import send_alert
    from planar_core.config import locate_config
    from planar_core.engine.health import check

    logger = get_run_logger()
    config_path = locate_config(strategy, config_path or None, configs_dir or None)
    s = build_strategy(strategy, config_path, overrides={**(overrides or {}), "event_tracing": {"enabled": False}})
    try:
        await s.load()
        healthy = await check(s)
    finally:
        await s.stop()
    snapshot = await exchange_snapshot(strategy, config_path, overrides)
    found = divergence_check(strategy, snapshot, config_path, overrides, tolerance)
    if found:
        logger.error("divergence between exchange and trace for %s: %s", strategy, found)
        emit_event(event="planar.divergence", resource=resource(strategy), payload={"divergences": found[:20]})
        send_alert(s, f"Divergence for {strategy}: {found[:5]}", "error")
        if s.alerts is not None:
            await s.alerts.drain()
    await acreate_markdown_artifact(
        key=artifact_key(strategy, "resync"),
        description=f"resync of {strategy}",
        markdown=f"# Resync {strategy}\nhealthy: {healthy}\n\n" + ("\n".join(f"- {d}" for d in found) or "no divergence"),
    )
    return {"healthy": healthy, "divergences": found, "exchange": snapshot}


@flow(name="compact_trace", retries=2, retry_delay_seconds=30)
async def compact_trace(
    strategy: str,
    config_path: str | None = None,
    overrides: dict[str, object] | None = None,
    market_data_horizon_hours: float = 24,
    retention_days: float | None = None,
) -> Json:
    """Compaction of the account's trace; publishes sizes and chunk counts before and after."""
    report = await compact(strategy, config_path, overrides, market_data_horizon_hours, retention_days)
    await acreate_table_artifact(
        key=artifact_key(strategy, "compaction"),
        description=f"trace compaction of {strategy}",
        table=[
            {"metric": m, "before": report[f"{m}_before"], "after": report[f"{m}_after"]} for m in ("bytes", "chunks", "segments", "events")
        ],
    )
    return report


__all__ = ["auto_tune", "compact_trace", "daily_reset", "resync"]
