"""The manual emergency stop: works from a fresh process even when the live flow's process is dead or hung.

A running live engine sees this flow run as soon as it is created (``flows.control``) and cancels everything
itself, within a second; this flow then verifies on the exchange (cancelling whatever is still open), halts the
strategy, and makes sure no live run of the strategy goes on: each is asked to cancel (its worker or runner
SIGTERMs it, or its engine sees the request) and one still not finished after ``grace_s`` (a zombie: nothing left
to act on the request) is marked Cancelled.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.states import Cancelled, Cancelling, Failed

from planar_core.config import ConfigError, StrategyConfig
from planar_core.engine.strategy import config_account
from planar_core.risk.estop import EStopReport
from planar_core.runner import emergency_stop_standalone
from planar_core.state import StateStore
from tasks.orders import settle

from .blocks import secret_block_provider
from .common import PERMANENT, InPlaceArtifact, artifact_key, load_strategy_config, no_retry, permanent_failure, resource
from .control import blank, live_runs


async def cancel_runs(run_ids: list[UUID], reason: str, grace_s: float = 15.0) -> list[str]:
    """Ask each run to cancel; force Cancelled on those that do not finish within ``grace_s``."""
    cancelled = []
    async with get_client() as client:
        for run_id in run_ids:
            await client.set_flow_run_state(run_id, Cancelling(message=f"emergency stop: {reason}"), force=True)
            cancelled.append(str(run_id))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        pending = list(run_ids)
        while pending and loop.time() < deadline:
            await asyncio.sleep(0.25)
            pending = [r for r in pending if not ((await client.read_flow_run(r)).state or Cancelled()).is_final()]
        for run_id in pending:
            await client.set_flow_run_state(run_id, Cancelled(message=f"emergency stop: {reason} (no process answered)"), force=True)
    return cancelled


def _symbols_left(report: EStopReport) -> list[str]:
    keys = [*report.unverified, *report.remaining_open, *report.remaining_positions]
    return sorted({k.split(":", 1)[0] for k in keys})


async def mop_up(
    report: EStopReport,
    strategy: str,
    cfg: StrategyConfig,
    close: bool,
    reason: str,
    config_path: str | None,
    overrides: dict[str, Any] | None,
) -> None:
    """Per-symbol settle tasks (retried by Prefect) for what the e-stop left unverified; the report and the persisted
    list re-arm checks then say what is still unverified after them."""
    symbols = [sym for sym in _symbols_left(report) if sym in {a.symbol for a in cfg.universe}]
    states = await asyncio.gather(*(settle(strategy, sym, close, reason, config_path, overrides, return_state=True) for sym in symbols))
    for sym, state in zip(symbols, states):
        if not state.is_completed():
            report.errors.append(f"{sym}: settle task: {state.message}"[:300])
            continue
        res = await state.result()
        report.cancelled += int(str(res.get("cancelled", 0)))
        for table in (report.unverified, report.remaining_open, report.remaining_positions):
            for key in [k for k in table if k.split(":", 1)[0] == sym]:
                table.pop(key)
    StateStore(cfg.shared_root).update(estop_unverified=report.outstanding())


def _run_account(params: dict[str, Any], strategy: str) -> str | None:
    """The account a live run trades, from its config; None when it cannot be told (then it is stopped too)."""
    try:
        cfg = load_strategy_config(strategy, None if blank(params.get("config_path")) else params["config_path"])
        return config_account(cfg, secrets_provider=secret_block_provider)
    except (ConfigError, OSError):
        return None


@flow(name="emergency_stop", retries=2, retry_delay_seconds=2)
async def emergency_stop(
    strategy: str,
    reason: str = "Manual trigger",
    close_positions: bool = False,
    config_path: str | None = None,
    account: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """Cancel every open order (optionally close positions), halt the strategy, then cancel its live flow runs.

    ``account`` (as carried by the engine's events) aims the stop: a config whose account differs is refused, so
    an automation never stops another strategy that shares the name. Idempotent: a second run finds nothing open
    and no live run to cancel."""
    logger = get_run_logger()
    config_path = None if blank(config_path) else config_path
    try:
        cfg = load_strategy_config(strategy, config_path, **(overrides or {}))
        if not blank(account):
            probe = config_account(cfg, secrets_provider=secret_block_provider)
            if probe != account:
                await no_retry(None)
                msg = f"emergency stop aimed at account {account}, but {config_path or strategy} trades {probe}: refused"
                logger.error(msg)
                return Failed(message=msg)
        report = await emergency_stop_standalone(cfg, reason, close_positions, secrets_provider=secret_block_provider)
    except PERMANENT as exc:
        return await permanent_failure(exc)
    if not report.clean:
        await mop_up(report, strategy, cfg, close_positions, reason, config_path, overrides)
    runs = [r for r in await live_runs(strategy) if blank(account) or _run_account(r.parameters or {}, strategy) in (account, None)]
    cancelled = await cancel_runs([r.id for r in runs], reason)
    logger.error("EMERGENCY STOP %s: %s; live runs cancelled %s", strategy, report.summary(), cancelled)
    emit_event(
        event="planar.emergency_stop",
        resource=resource(strategy),
        payload={
            "reason": reason,
            "cancelled_orders": report.cancelled,
            "clean": report.clean,
            "cancelled_runs": cancelled,
            "unverified": report.unverified,
            "account": account or "",
        },
    )
    unverified = "".join(f"| unverified: {k} | {v} |\n" for k, v in report.unverified.items())
    await InPlaceArtifact(artifact_key(strategy, "emergency-stop"), "emergency stop report").publish(
        f"# Emergency stop: {strategy}\n**{'CLEAN' if report.clean else 'NOT CLEAN: see the unverified rows'}**\n\n"
        f"reason: {reason}\n\n| what | value |\n|---|---|\n"
        f"| orders cancelled by this run | {report.cancelled} |\n| positions closed | {report.closed} |\n"
        f"| still open | {report.remaining_open} {report.remaining_positions} |\n{unverified}"
        f"| live runs cancelled | {', '.join(cancelled) or '-'} |\n| clean | {report.clean} |"
    )
    return {**report.as_dict(), "cancelled_runs": cancelled}
