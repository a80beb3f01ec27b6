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
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Cancelled, Cancelling, Failed

from planar_core.config import ConfigError, StrategyConfig, config_files, load_config, locate_config
from planar_core.engine.strategy import config_account
from planar_core.model.json import integer, obj
from planar_core.model.types import Json
from planar_core.risk.account_estop import ACCOUNT_HALT, AccountEStopReport
from planar_core.risk.estop import EStopReport, cancel_recorded, conclude, recorded_open
from planar_core.runner import account_emergency_stop_standalone, open_for_estop
from planar_core.runner.account import account_members
from planar_core.state import StateStore
from tasks.blocks import secret_block_provider
from tasks.events import resource
from tasks.orders import estop_symbol_state, lend
from tasks.strategy import load_strategy_config

from .common import PERMANENT, InPlaceArtifact, Outcome, artifact_key, no_retry, permanent_failure, tag_this_run
from .control import blank, live_runs, run_account, stop_message


async def cancel_runs(run_ids: list[UUID], reason: str, grace_s: float = 15.0, answered: Collection[str] = ()) -> list[str]:
    """Ask each run to cancel; force Cancelled on those that do not finish within ``grace_s``. A run whose engine
    ``answered`` this stop (it cancelled on its own connections, halted and is ending) is given ``grace_s`` to end by
    itself first: asked to cancel meanwhile, its runner kills the process as it writes its report and overwrites its
    final state ("emergency stop ...: clean") with "Flow run was cancelled successfully."."""
    async with get_client() as client:

        async def unfinished(ids: list[UUID], within: float) -> list[UUID]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within
            while True:
                ids = [r for r in ids if not ((await client.read_flow_run(r)).state or Cancelled()).is_final()]
                if not ids or loop.time() >= deadline:
                    return ids
                await asyncio.sleep(0.25)

        ending = await unfinished([r for r in run_ids if str(r) in answered], grace_s)
        asked = await unfinished([r for r in run_ids if str(r) not in answered], 0.0) + ending  # a run that ended stays as it ended
        for run_id in asked:
            await client.set_flow_run_state(run_id, Cancelling(message=stop_message(reason)), force=True)
        for run_id in await unfinished(asked, grace_s):
            await client.set_flow_run_state(run_id, Cancelled(message=f"{stop_message(reason)} (no process answered)"), force=True)
    return [str(r) for r in run_ids]


async def stop_by_symbol(cfg: StrategyConfig, reason: str, close: bool | None) -> EStopReport:
    """The standalone e-stop as task runs: the strategy halted and loaded once, then one task run per symbol
    (``estop:<symbol>``: cancel, verify, close; retried until the exchange confirms), all at once; the whole report
    concluded (trace, alert, what re-arm must check) from theirs."""
    s, deadline, unreachable = await open_for_estop(cfg, reason, secrets_provider=secret_block_provider)
    try:
        # unreachable for the whole budget: that is concluded (persisted for re-arm, alerted); the task runs still try,
        # retried by Prefect, and the first that reaches the exchange loads the strategy
        started = time.perf_counter()
        close = cfg.risk.emergency_close_positions if close is None else close
        budget = max(1.0, deadline - asyncio.get_running_loop().time())
        symbols = [a.symbol for a in cfg.universe]
        report = EStopReport(reason)
        with lend(s, loaded=unreachable is None) as (key, lent):
            lent.recorded = recorded_open(s) if unreachable is None else {}
            states = await asyncio.gather(*(estop_symbol_state(sym, key, close, reason, budget) for sym in symbols))
            for sym, cids in lent.recorded.items():  # a symbol the universe no longer has: its orders looked up by id
                if sym not in symbols:
                    stray = EStopReport(reason)
                    await cancel_recorded(s, sym, cids, asyncio.get_running_loop().time() + budget, stray)
                    report.merge(stray)
            for sym, state in zip(symbols, states):
                part = lent.reports.get(sym)
                if part is not None:
                    report.merge(part)
                elif unreachable is not None:
                    report.symbols[sym] = unreachable.of(sym)
                    report.errors.append(f"{sym}: {state.message}"[:300])
                else:  # the task run failed before it could report (an exception, not an outcome)
                    report.of(sym).orders.unverified = f"task run estop:{sym} ended {state.type.value}: {state.message}"[:300]
        report.seconds = time.perf_counter() - started
        return conclude(s, report, reason)
    finally:
        await s.stop()


async def aimed_live_runs(strategy: str, account: str | None) -> list[FlowRun]:
    """The unfinished live runs of ``strategy`` (of ``account`` when given; a run whose account cannot be told too)."""
    return [r for r in await live_runs(strategy) if blank(account) or run_account(r.parameters or {}, strategy) in (account, None)]


@flow(name="emergency_stop", retries=2, retry_delay_seconds=2)
async def emergency_stop(
    strategy: str,
    reason: str = "Manual trigger",
    close_positions: bool = False,
    config_path: str | None = None,
    account: str | None = None,
    overrides: dict[str, object] | None = None,
    configs_dir: str | None = None,
) -> Outcome:
    """Cancel every open order of the strategy (optionally close positions), halt it, then cancel its live flow runs.

    The config is ``config_path`` or, when that is not given or not here, the config named ``strategy`` in
    ``configs_dir`` (the folder this deployment was generated from): an automation names the strategy, never a path.
    ``account`` (as carried by the engine's events) aims the stop: a config whose account differs is refused, so an
    automation never stops another strategy that shares the name. Idempotent: a second run finds nothing open and no
    live run to cancel. The run's log and artifact say what the running engine cancelled on its own connections and
    what this run cancelled, found already gone, could not verify and closed; INFO when the exchange confirmed
    everything, ERROR when not."""
    logger = get_run_logger()
    try:
        path = locate_config(strategy, None if blank(config_path) else str(config_path), None if blank(configs_dir) else str(configs_dir))
        cfg = load_strategy_config(strategy, path, overrides)
        probe = config_account(cfg, secrets_provider=secret_block_provider)
        await tag_this_run("emergency-stop", f"strategy:{strategy}", f"account:{probe}")
        if not blank(account) and probe != account:
            await no_retry(None)
            msg = f"emergency stop aimed at account {account}, but {path or strategy} trades {probe}: refused"
            logger.error(msg)
            return Failed(message=msg)
        running = await aimed_live_runs(strategy, probe)  # this account's: a live engine may end before this run is done
        report = await stop_by_symbol(cfg, reason, close_positions)
    except PERMANENT as exc:
        return await permanent_failure(exc)
    runs = await aimed_live_runs(strategy, probe)  # the account this run stopped: a same-named strategy elsewhere is not it
    engine = await engine_answer(cfg, str(flow_run.id or ""), [r.id for r in runs])
    cancelled = await cancel_runs([r.id for r in runs], reason, answered={str(engine.get("run") or "")} - {""})
    await refresh_live_status(strategy, list({r.id for r in [*running, *runs]}), report)
    line = estop_line(strategy, report, engine, cancelled)
    (logger.info if report.clean else logger.error)(line)
    emit_event(
        event="planar.emergency_stop",
        resource=resource(strategy),
        payload={
            "reason": reason,
            "cancelled_orders": report.cancelled,
            "cancelled_by_engine": integer(engine.get("cancelled")),
            "clean": report.clean,
            "cancelled_runs": cancelled,
            "unverified": dict(report.unverified),  # a plain mapping: the event is serialised as JSON
            "account": probe,
        },
    )
    await InPlaceArtifact(artifact_key(strategy, "emergency-stop"), "emergency stop report").publish(
        estop_markdown(strategy, reason, report, engine, cancelled)
    )
    result = {**report.as_dict(), "cancelled_runs": cancelled, "cancelled_by_engine": integer(engine.get("cancelled")), "line": line}
    if not report.clean:  # Failed, with the verdict: a NOT CLEAN stop ended Completed, which the docs call clean, and an
        await no_retry(None)  # operator scanning the runs saw green (an outside operator trial); its verdict is reached:
        return Failed(message=line, data=result)  # not retried (run it again once the exchange answers)
    return result


def engine_part(cfg: StrategyConfig, request: str) -> Json:
    """What the running engine did on the e-stop ``request`` (a flow run id; the engine cancels on its own connections
    the moment the request is created), as it persisted it: ``answering`` while its stop runs; empty when no engine
    took that request."""
    try:
        done = StateStore(cfg.shared_root).load().engine_estop
    except (OSError, ValueError):
        return {}
    return done if request and done.get("request") == request else {}


async def engine_answer(
    cfg: StrategyConfig, request: str, run_ids: list[UUID], seen_within: float = 5.0, done_within: float = 15.0
) -> Json:
    """The running engine's part, waited for while a live run of the strategy is unfinished: this run halts the
    strategy and cancels at once, often before the engine's poll (every 0.5 s) has seen the request, and the report
    must not say no engine took part because this run was quicker. An engine that has not taken the request within
    ``seen_within`` (dead or hung: its run is cancelled next) or not finished within ``done_within`` is reported as
    it stands; a finished part, or no unfinished live run, ends the wait at once."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with get_client() as client:
        while True:
            part = engine_part(cfg, request)
            waited = loop.time() - start
            if not run_ids or (part and not part.get("answering")) or waited >= (done_within if part else seen_within):
                return part if part and not part.get("answering") else {}
            run_ids = [r for r in run_ids if not ((await client.read_flow_run(r)).state or Cancelled()).is_final()]
            if run_ids:
                await asyncio.sleep(0.1)


def positions_closed(report: EStopReport, engine: Json) -> dict[str, float]:
    """What the stop closed, the running engine's part and this run's together (symbol -> amount sold or bought
    back): a close the engine made was shown only inside its summary, and the row said "none" (an outside operator
    trial: an operator read that nothing was sold)."""
    out: dict[str, float] = {}
    for part in (obj(engine.get("closed")), report.closed):
        for sym, amount in part.items():
            if isinstance(amount, int | float):
                out[sym] = float(f"{out.get(sym, 0.0) + amount:.10g}")  # 0.049999999999999996 reads 0.05
    return out


def estop_line(strategy: str, report: EStopReport, engine: Json, cancelled_runs: list[str]) -> str:
    """One line for the log and the CLI: the verdict, then each part's count."""
    verdict = "CLEAN" if report.clean else "NOT CLEAN"
    by_engine = f"the engine cancelled {integer(engine.get('cancelled'))}" if engine else "no running engine took part"
    done = positions_closed(report, engine)
    closed = f"; positions closed {done}" if done else ""
    left = f"; unverified {dict(report.unverified)}; still open {dict(report.remaining_open)} {dict(report.remaining_positions)}"
    return (
        f"emergency stop {strategy}: {verdict}; {by_engine}; this run cancelled {report.cancelled}, found {report.already_gone} "
        f"already gone{closed}; live runs cancelled {len(cancelled_runs)}" + ("" if report.clean else left)
    )


def _table(mapping: Mapping[str, object]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in mapping.items()) or "none"


def estop_markdown(strategy: str, reason: str, report: EStopReport, engine: Json, cancelled_runs: list[str]) -> str:
    """The e-stop run's artifact: the verdict first, then who cancelled what, what is left, per symbol."""
    rows = [
        (
            "orders cancelled by the running engine",
            f"{engine.get('cancelled')} ({engine.get('summary')})" if engine else "no running engine took part",
        ),
        ("orders cancelled by this run", report.cancelled),
        ("already gone when this run looked (cancelled by the engine, or filled)", report.already_gone),
        ("positions closed", _table(positions_closed(report, engine))),
        ("still open", _table({**report.remaining_open, **report.remaining_positions})),
        ("unverified", _table(report.unverified)),
        ("other strategies' / foreign orders left open", _table(report.left_alone)),
        ("live runs cancelled", ", ".join(cancelled_runs) or "none"),
    ]
    per_symbol = "\n".join(
        f"| {sym} | {o.orders.cancelled} | {o.orders.already_gone} | {o.orders.still_open} | {o.orders.unverified or o.unreachable or '-'} |"
        for sym, o in report.symbols.items()
    )
    verdict = "CLEAN: the exchange lists nothing of it open" if report.clean else "NOT CLEAN: see still open / unverified"
    return (
        f"# Emergency stop: {strategy}\n**{verdict}**\n\nreason: {reason}\n\n| what | value |\n|---|---|\n"
        + "\n".join(f"| {k} | {v} |" for k, v in rows)
        + f"\n\n## per symbol (task runs estop:<symbol>)\n| symbol | cancelled | already gone | still open | unverified |\n|---|---|---|---|---|\n{per_symbol}"
    )


async def refresh_live_status(strategy: str, run_ids: list[UUID], report: EStopReport) -> None:
    """The live runs' status artifacts (updated in place while they ran) end with what the exchange showed after the
    stop: their last publish came from the engine's own view, before this run verified."""
    if not run_ids:
        return
    from prefect.client.schemas.actions import ArtifactUpdate
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    verified = (
        f"\n\n### after the emergency stop (flow run {flow_run.name}, verified on the exchange)\n| field | value |\n|---|---|\n"
        f"| open_orders | {sum(report.remaining_open.values())} |\n| unverified | {_table(report.unverified)} |\n"
        f"| positions | {_table(report.remaining_positions)} |\n| clean | {report.clean} |"
    )
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[artifact_key(strategy, "status")]), flow_run_id=ArtifactFilterFlowRunId(any_=run_ids)
            )
        )
        for art in found:
            await client.update_artifact(art.id, ArtifactUpdate(data=f"{art.data}{verified}"))


def account_configs(config_paths: list[str] | None, configs_dir: str | None) -> list[StrategyConfig]:
    """The strategy configs to look among: the files given and every config in ``configs_dir``; a file that does not
    load is an error naming it (a config error is permanent: no retry)."""
    paths = [Path(p) for p in config_paths or []]
    if not blank(configs_dir):
        paths += config_files(str(configs_dir))
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
        runs = [r for m in members for r in await live_runs(m.name) if run_account(r.parameters or {}, m.name) in (account, None)]
        stopping = asyncio.create_task(cancel_runs([r.id for r in runs], f"{ACCOUNT_HALT}{reason}"))
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
