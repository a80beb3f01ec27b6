"""The manual emergency stops: of one strategy (``emergency_stop``) and of a whole exchange account
(``account_emergency_stop``). Both work from a fresh process even when the live flows' processes are dead or hung.

A running live engine sees this flow run as soon as it is created (``flows.control``) and cancels everything
itself, within a second; this flow then verifies on the exchange (cancelling whatever is still open), halts the
strategy, and makes sure no live run of the strategy goes on: each is asked to cancel (its worker or runner
SIGTERMs it, or its engine sees the request) and one still not finished after ``grace_s`` (a zombie: nothing left
to act on the request) is marked Cancelled.

The account stop halts every strategy trading the account, cancels their live runs the same way, and cancels every
open order of the account (whoever placed it) with the account-wide cancel, verified by listing the whole account;
its report says what each strategy had open (``planar_core.risk.account_estop``, ``planar_core.runner.account``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.states import Cancelled, Cancelling, Failed

from planar_core.config import ConfigError, StrategyConfig, load_config
from planar_core.engine.strategy import config_account
from planar_core.model.json import integer, obj
from planar_core.model.types import Json
from planar_core.risk.account_estop import AccountEStopReport
from planar_core.risk.estop import EStopReport
from planar_core.runner import account_emergency_stop_standalone, emergency_stop_standalone
from planar_core.runner.account import account_members
from planar_core.state import StateStore
from tasks.blocks import secret_block_provider
from tasks.events import resource
from tasks.orders import settle_state
from tasks.strategy import load_strategy_config

from .common import PERMANENT, InPlaceArtifact, Outcome, artifact_key, no_retry, permanent_failure
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


async def mop_up(
    report: EStopReport,
    strategy: str,
    cfg: StrategyConfig,
    close: bool,
    reason: str,
    config_path: str | None,
    overrides: dict[str, object] | None,
) -> None:
    """Per-symbol settle tasks (retried by Prefect) for what the e-stop left unverified; the report and the persisted
    list re-arm checks then say what is still unverified after them."""
    symbols = [sym for sym in report.unsettled() if sym in {a.symbol for a in cfg.universe}]
    states = await asyncio.gather(*(settle_state(strategy, sym, close, reason, config_path, overrides) for sym in symbols))
    for sym, state in zip(symbols, states):
        if not state.is_completed():
            report.errors.append(f"{sym}: settle task: {state.message}"[:300])
            continue
        res = obj(await state.aresult())  # a completed settle answers its report as a dict
        report.cancelled += integer(res.get("cancelled"))
        report.symbols[sym].mark_settled()
    StateStore(cfg.shared_root).update(estop_unverified=report.outstanding())


def _run_account(params: Json, strategy: str) -> str | None:
    """The account a live run trades, from its config; None when it cannot be told (then it is stopped too)."""
    try:
        path = params.get("config_path")
        cfg = load_strategy_config(strategy, None if blank(path) else str(path))
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
    overrides: dict[str, object] | None = None,
) -> Outcome:
    """Cancel every open order (optionally close positions), halt the strategy, then cancel its live flow runs.

    ``account`` (as carried by the engine's events) aims the stop: a config whose account differs is refused, so
    an automation never stops another strategy that shares the name. Idempotent: a second run finds nothing open
    and no live run to cancel."""
    logger = get_run_logger()
    config_path = None if blank(config_path) else config_path
    try:
        cfg = load_strategy_config(strategy, config_path, overrides)
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
            "unverified": dict(report.unverified),  # a plain mapping: the event is serialised as JSON
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


CONFIG_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def account_configs(config_paths: list[str] | None, configs_dir: str | None) -> list[StrategyConfig]:
    """The strategy configs to look among: the files given and every config in ``configs_dir``; a file that does not
    load is an error naming it (a config error is permanent: no retry)."""
    paths = [Path(p) for p in config_paths or []]
    if not blank(configs_dir):
        folder = Path(str(configs_dir))
        if not folder.is_dir():
            raise ConfigError(f"configs_dir: {folder} is not a folder")
        paths += sorted(p for p in folder.iterdir() if p.suffix in CONFIG_SUFFIXES)
    if not paths:
        raise ConfigError("config_paths / configs_dir: give the strategy configs to look among for the account's strategies")
    out = []
    for p in paths:
        try:
            out.append(load_config(p))
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None
    return out


def account_markdown(report: AccountEStopReport) -> str:
    """The report as the artifact shows it: the verdict, what each strategy had open, what is left."""
    rows = "".join(f"| unverified: {k} | {v} |\n" for k, v in report.unverified.items())
    return (
        f"# Account emergency stop: {report.account}\n**{'CLEAN' if report.clean else 'NOT CLEAN: see the rows below'}**\n\n"
        f"reason: {report.reason}\n\n## Open orders found, by strategy\n\n{report.table()}\n\n"
        f"| what | value |\n|---|---|\n| strategies halted | {', '.join(report.strategies) or '-'} |\n"
        f"| orders cancelled | {report.cancelled} |\n| positions closed | {report.closed or '-'} |\n"
        f"| still open | {report.remaining_open or '-'} {report.remaining_positions or ''} |\n{rows}"
        f"| live runs cancelled | {', '.join(report.cancelled_runs) or '-'} |\n| clean | {report.clean} |"
    )


@flow(name="account_emergency_stop", retries=1, retry_delay_seconds=2)
async def account_emergency_stop(
    account: str,
    reason: str = "Manual trigger",
    close_positions: bool = False,
    config_paths: list[str] | None = None,
    configs_dir: str | None = None,
) -> Outcome:
    """Stop every strategy trading ``account`` (``<exchange>-<hash of the API key>``): each one halted, its live runs
    cancelled, every open order of the account cancelled and verified (spot and futures, the Algo Service too),
    positions closed with ``close_positions``. The strategies are the configs given (``config_paths``, every config
    in ``configs_dir``) whose account it is, and the strategies named by the lease files of that account in their
    store roots. Idempotent."""
    logger = get_run_logger()
    try:
        configs = account_configs(config_paths, None if blank(configs_dir) else configs_dir)
        members, _ = account_members(account, configs, secrets_provider=secret_block_provider)
        runs = [r for m in members for r in await live_runs(m.name) if _run_account(r.parameters or {}, m.name) in (account, None)]
        stopping = asyncio.create_task(cancel_runs([r.id for r in runs], f"account emergency stop: {reason}"))
        try:
            report = await account_emergency_stop_standalone(
                account, configs, reason, close_positions, secrets_provider=secret_block_provider
            )
        finally:
            report_runs = await stopping
    except PERMANENT as exc:
        return await permanent_failure(exc)
    report.cancelled_runs = report_runs
    (logger.error if report.clean else logger.critical)("ACCOUNT EMERGENCY STOP %s: %s", account, report.summary())
    emit_event(
        event="planar.account_emergency_stop",
        resource={"prefect.resource.id": f"planar.account.{account}", "prefect.resource.name": account},
        payload={
            "reason": reason,
            "strategies": report.strategies,
            "cancelled_orders": report.cancelled,
            "clean": report.clean,
            "cancelled_runs": report.cancelled_runs,
            "unverified": dict(report.unverified),  # a plain mapping: the event is serialised as JSON
        },
    )
    await InPlaceArtifact(artifact_key(f"account-{account}", "emergency-stop"), "account emergency stop report").publish(
        account_markdown(report)
    )
    return report.as_dict()
