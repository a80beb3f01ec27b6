"""``optimize_strategy``: the scheduled optimisation of a strategy's Params (one deployment per strategy config whose
``optimization.params`` is set, on ``optimization.schedule``, weekly by default).

It downloads the last ``optimization.days`` of candles itself (or reads ``data``), searches walk-forward, and
proposes the newest fold's best params to the running engine only past the margin and within the bounds
(planar_core/optimize/schedule.py); the engine applies them, traces ``params_changed`` and alerts. This flow
publishes the trials as a table artifact and the decision as a markdown one, emits ``planar.params_proposed`` when it
proposed, and alerts either way. ``planar params rollback NAME`` undoes a change.
"""

from __future__ import annotations

import math

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.events import emit_event

from planar_core.alerts.dispatcher import send_alert
from planar_core.engine.parts import configured_alerts
from planar_core.model.types import Json
from tasks.events import resource
from tasks.optimize import download_history, search_and_decide
from tasks.strategy import load_strategy_config

from .common import artifact_key


def _cell(v: object) -> object:
    return None if isinstance(v, float) and not math.isfinite(v) else v


@flow(name="optimize_strategy")
async def optimize_strategy(strategy: str, config_path: str | None = None, data: str | None = None) -> Json:
    log = get_run_logger()
    cfg = load_strategy_config(strategy, config_path)
    if not cfg.optimization.params:
        log.info("%s: optimization.params is empty: nothing to search", strategy)
        return {"applied": False, "reason": "optimization.params is empty"}
    if data is None:
        held = await download_history(strategy, config_path)
        log.info("candles: %s", held)
    out = search_and_decide(strategy, config_path, data)
    decision = out["decision"]
    assert isinstance(decision, dict)
    rows = out["rows"]
    assert isinstance(rows, list)
    await acreate_table_artifact(
        key=artifact_key(strategy, "optimization-trials"),
        table=[{k: _cell(v) for k, v in r.items()} for r in rows if isinstance(r, dict)],
        description=f"trials of the scheduled optimisation of {strategy}",
    )
    verdict = "proposed as version " + str(decision["version"]) if decision["applied"] else "not applied"
    md = (
        f"# Optimisation of {strategy}: {verdict}\n\n{decision['reason']}\n\n"
        f"| | params | out-of-sample {cfg.optimization.metric} |\n|---|---|---|\n"
        f"| in force | `{decision['current']}` | {decision['current_value']} |\n"
        f"| best | `{decision['candidate']}` | {decision['candidate_value']} |\n\n"
        f"Undo: `planar params rollback {strategy}`"
    )
    await acreate_markdown_artifact(
        key=artifact_key(strategy, "optimization"), markdown=md, description=f"scheduled optimisation of {strategy}"
    )
    alerts = configured_alerts(cfg)
    send_alert(alerts, f"{strategy}: optimisation {verdict}: {decision['reason']}", "info")  # logged when no channel
    if alerts is not None:
        await alerts.drain()
    if decision["applied"]:
        emit_event(event="planar.params_proposed", resource=resource(strategy), payload={"decision": decision})
    return {"decision": decision, "best": out["result"]}
