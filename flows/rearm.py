"""Re-arm a halted strategy (after an emergency stop or a breaker) from the Prefect UI or ``planar rearm``."""

from __future__ import annotations

import getpass

from prefect import flow, get_run_logger
from prefect.events import emit_event
from prefect.runtime import flow_run

from planar_core.config import locate_config
from planar_core.risk.operations import RearmRefused
from tasks.account import rearm_strategy
from tasks.events import resource

from .common import PERMANENT, Outcome, permanent_failure


@flow(name="rearm", retries=0)
async def rearm(
    strategy: str,
    reason: str,
    config_path: str | None = None,
    by: str | None = None,
    overrides: dict[str, object] | None = None,
    configs_dir: str | None = None,
) -> Outcome:
    """Clear the halt and reset the breaker baselines to the current equity; refused (Failed) while an order the
    e-stop could not verify is still open. ``by`` defaults to the user running it (or the flow run). The config is
    ``config_path`` or the config named ``strategy`` in ``configs_dir``."""
    who = by or (f"flow run {flow_run.name}" if flow_run.id else getpass.getuser())
    try:
        path = locate_config(strategy, config_path or None, configs_dir or None)
        result = await rearm_strategy(strategy, reason, who, path, overrides)
    except (*PERMANENT, RearmRefused) as exc:
        return await permanent_failure(exc)
    get_run_logger().warning("%s re-armed by %s: %s (equity %.2f)", strategy, who, reason, result["equity"])
    emit_event(event="planar.rearmed", resource=resource(strategy), payload={"by": who, "reason": reason})
    return result
