"""The manual emergency stop: works from a fresh process even when the live flow's process is dead or hung."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event
from prefect.states import Cancelled

from planar_core.risk.estop import emergency_stop_standalone

from .blocks import secret_block_provider
from .common import PERMANENT, artifact_key, load_strategy_config, permanent_failure, resource

ACTIVE = [StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED, StateType.CANCELLING, StateType.PAUSED]


async def running_live_runs(strategy: str) -> list[Any]:
    """Flow runs of ``live_strategy`` for this strategy that are not finished."""
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["live_strategy"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE))))
    return [r for r in runs if (r.parameters or {}).get("strategy") == strategy]


async def cancel_runs(run_ids: list[UUID], reason: str) -> list[str]:
    cancelled = []
    async with get_client() as client:
        for run_id in run_ids:
            await client.set_flow_run_state(run_id, Cancelled(message=f"emergency stop: {reason}"), force=True)
            cancelled.append(str(run_id))
    return cancelled


@flow(name="emergency_stop", retries=2, retry_delay_seconds=2)
async def emergency_stop(strategy: str, reason: str = "Manual trigger", close_positions: bool = False,
                         config_path: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cancel every open order (optionally close positions), halt the strategy, then cancel its live flow runs.

    Idempotent: a second run finds nothing open and no live run to cancel."""
    logger = get_run_logger()
    try:
        cfg = load_strategy_config(strategy, config_path, **(overrides or {}))
        report = await emergency_stop_standalone(cfg, reason, close_positions, secrets_provider=secret_block_provider)
    except PERMANENT as exc:
        return await permanent_failure(exc)
    runs = await running_live_runs(strategy)
    cancelled = await cancel_runs([r.id for r in runs], reason)
    logger.error("EMERGENCY STOP %s: %s; live runs cancelled %s", strategy, report.summary(), cancelled)
    emit_event(event="planar.emergency_stop", resource=resource(strategy),
               payload={"reason": reason, "cancelled_orders": report.cancelled, "clean": report.clean, "cancelled_runs": cancelled,
                        "unverified": report.unverified})
    unverified = "".join(f"| unverified: {k} | {v} |\n" for k, v in report.unverified.items())
    await acreate_markdown_artifact(key=artifact_key(strategy, "emergency-stop"), description="emergency stop report",
                                    markdown=f"# Emergency stop: {strategy}\n"
                                             f"**{'CLEAN' if report.clean else 'NOT CLEAN: see the unverified rows'}**\n\n"
                                             f"reason: {reason}\n\n| | |\n|---|---|\n"
                                             f"| orders cancelled | {report.cancelled} |\n| positions closed | {report.closed} |\n"
                                             f"| still open | {report.remaining_open} {report.remaining_positions} |\n{unverified}"
                                             f"| live runs cancelled | {', '.join(cancelled) or '-'} |\n| clean | {report.clean} |")
    return {**report.as_dict(), "cancelled_runs": cancelled}
