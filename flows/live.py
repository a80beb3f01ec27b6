"""The long-running live flow: one Prefect flow run per strategy session.

The hot path never creates Prefect task runs: orders, ticks and watcher updates run in planar_core (each watcher is
one long-lived task run, ``flows/watcher_runs.py``, started and ended with it); the flow adds
logging, a status artifact updated in place, a report artifact at the end, control (cancellation, e-stop
requests, SIGTERM) and retries. How a run ends says what happened, so a halted strategy never shows green:

* Completed: the duration elapsed;
* Cancelled: cancelled from the UI/CLI/API, terminated (SIGTERM), or stopped by an emergency stop (the account's
  too, whether its halt or its cancel of the run reaches the engine first);
* Failed (no retry): the strategy halted (a breaker, even when the e-stop run its event starts reached the engine
  first; an e-stop; a halt found at start: re-arm first), another
  engine holds the lease or trades the account from another store root (``TwinEngineError``; ``takeover=True``
  once it is gone), or the config/credentials are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterState, TaskRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Cancelled, Crashed, Failed, State
from pydantic import Field

from planar_core.config import locate_config
from planar_core.engine.lease import LeaseHeldError
from planar_core.model.json import obj
from planar_core.model.types import Json
from planar_core.risk.account_estop import account_halt
from planar_core.runner import load_logic, run
from planar_core.runner.heap import frozen_heap
from planar_core.runner.host import UNKNOWN_COUNTS
from planar_core.trace.analysis import analyze_trading_events
from planar_core.trace.report import analysis_markdown, write_report
from tasks.events import resource
from tasks.strategy import build_strategy

from .common import PERMANENT, InPlaceArtifact, Outcome, artifact_key, no_retry, permanent_failure
from .control import EngineControl, blank, live_runs, run_account, stop_message
from .watcher_runs import WatcherRuns

if TYPE_CHECKING:
    from planar_core.engine.strategy import Strategy

log = logging.getLogger("planar.flows.live")


def status_markdown(st: Json) -> str:
    """The status artifact: the figures, realised PnL per symbol (runner/host.realized_status), the watchers."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in st.items() if k not in ("watchers", "by_symbol"))
    watchers = "\n".join(f"| {k} | {v} |" for k, v in sorted(obj(st["watchers"]).items()))
    symbols = "\n".join(
        f"| {sym} | {f.get('realized_pnl')} | {f.get('fees')} | {f.get('fills')} | {f.get('round_trips')} | {f.get('win_rate')} |"
        for sym, f in ((sym, obj(v)) for sym, v in sorted(obj(st.get("by_symbol")).items()))
    )
    return (
        f"## {st['strategy']} status\n| field | value |\n|---|---|\n{rows}\n\n"
        "### realised PnL by symbol (gross of fees, quote currency)\n"
        f"| symbol | realised PnL | fees | fills | round trips | win rate |\n|---|---|---|---|---|---|\n{symbols}\n\n"
        f"### watchers\n| watcher | mode |\n|---|---|\n{watchers}"
    )


async def close_task_runs(client: PrefectClient, run_id: UUID | str, why: str) -> int:
    """The task runs a dead run left Running (its watchers: nothing will end them) marked Crashed."""
    found = await client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(str(run_id))])),
        task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING]))),
    )
    for tr in found:
        await client.set_task_run_state(tr.id, Crashed(message=why), force=True)
    return len(found)


async def restarts_within_hour(strategy: str) -> int:
    """Crash restarts of this strategy's live runs (``restart_of`` set) created within the last hour that ran, this
    one included. A restart run that never started (an e-stop cancelled it first) restarted nothing: it counted, and
    the budget said "4 crash restarts within the hour" after 2 (an outside operator trial)."""
    since = datetime.now(UTC) - timedelta(hours=1)
    return sum(
        1
        for r in await live_runs(strategy, states=[t.value for t in StateType])
        if not blank((r.parameters or {}).get("restart_of"))
        and r.created is not None
        and r.created >= since
        and (r.start_time is not None or str(r.id) == str(flow_run.id))
    )


async def take_over_zombies(s: Strategy) -> list[str]:
    """Live runs of this strategy left Running by a process that died: this run holds the lease, so no engine of
    theirs is trading. They are marked Crashed, naming this run, instead of blocking the strategy forever. Only runs
    of this account: a strategy of the same name on another account holds another lease (an outside trial: the
    desk's live engine was marked Crashed, stopped, and its orders left unmanaged when a test account's started)."""
    me = flow_run.id
    if not me:
        return []
    crashed = []
    async with get_client() as client:
        mine = (await client.read_flow_run(me)).start_time
        for r in await live_runs(s.name, states=("RUNNING", "CANCELLING")):
            if str(r.id) == str(me) or (mine is not None and r.start_time is not None and r.start_time >= mine):
                continue  # a run that started after this one is still on its way to the lease, which refuses it
            if run_account(r.parameters or {}, s.name) != s.account:
                continue  # the same name on another account (or one that cannot be told): its engine is not ours to judge
            why = f"superseded: its engine holds no lease (process gone); flow run {me} took over"
            await client.set_flow_run_state(r.id, Crashed(message=why), force=True)
            await close_task_runs(client, r.id, why)
            crashed.append(str(r.id))
    if crashed:
        s.sink.record("error_occurred", reason=f"live runs {crashed} were left Running by dead processes; marked Crashed")
    return crashed


@contextlib.contextmanager
def sigterm_stops(control: EngineControl) -> Iterator[None]:
    """SIGTERM (a worker or runner cancelling the run, ``kill``, a container stop) stops the engine cleanly instead
    of interrupting it mid-cleanup: watchers stopped, trace flushed, report written, run Cancelled.

    In a process a runner or worker started for this run alone (``PREFECT__FLOW_RUN_ID`` set), the handler stays
    until the process exits: a runner that saw the run Cancelling sends SIGTERM whenever it gets to it, possibly
    after the flow returned and before its final state is recorded, and Prefect's own handler would then mark the
    run Crashed. In a process that lives on (``planar run``, the demo, tests) the previous handler comes back."""
    loop = asyncio.get_running_loop()
    try:
        previous = signal.getsignal(signal.SIGTERM)
        loop.add_signal_handler(signal.SIGTERM, control.terminate)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread: the orchestrator's handling applies
        yield
        return
    try:
        yield
    finally:
        if not os.environ.get("PREFECT__FLOW_RUN_ID"):
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)


@flow(name="live_strategy", retries=2, retry_delay_seconds=10, log_prints=True)
async def live_strategy(
    strategy: str,
    config_path: str | None = None,
    duration: float | None = None,
    report_dir: str | None = None,
    overrides: dict[str, object] | None = None,
    takeover: bool = False,
    restart_of: str | None = None,
    max_restarts_per_hour: int = 3,
    configs_dir: str | None = None,
    control_poll_s: Annotated[float, Field(gt=0, le=60)] = 0.5,
) -> Outcome:
    """Run a strategy live until ``duration`` (seconds) elapses, the run is cancelled or e-stopped, or it halts.
    ``takeover``: another engine of this strategy (another store root) is gone; adopt the orders it left (without it,
    such orders refuse the start: the run fails, not retried). ``restart_of``: the crashed run this one replaces (the
    crash-restart automation sets it): its task runs are closed, and beyond ``max_restarts_per_hour`` such restarts
    the run fails instead of trading (a strategy that keeps crashing needs a person). The config is ``config_path``
    or, when that is not here, the config named ``strategy`` in ``configs_dir`` (the deployment's folder).
    ``control_poll_s``: seconds between the engine's reads of its own run's state and of e-stop requests (one API
    read each: a cancel or an e-stop flow run is seen within this time)."""
    logger = get_run_logger()
    if not blank(restart_of):
        refused = await restart_refused(strategy, str(restart_of), max_restarts_per_hour)
        if refused is not None:
            return refused
    watcher_runs = WatcherRuns()  # one long-lived task run per engine watcher, shown in the run's graph
    try:
        path = locate_config(strategy, None if blank(config_path) else config_path, None if blank(configs_dir) else configs_dir)
        s = build_strategy(strategy, path, observer=watcher_runs, overrides=overrides)
    except PERMANENT as exc:
        return await permanent_failure(exc)
    halted = s.state
    if halted.halted:
        await s.stop()
        await no_retry(None)
        msg = f"{s.name} is halted ({halted.halt_reason}); re-arm it first: planar rearm {s.name} --reason TEXT"
        logger.error(msg)
        return Failed(message=msg)
    session_start = datetime.now(UTC)
    stop = asyncio.Event()
    control = EngineControl(s, stop, since=session_start, every=control_poll_s)
    with sigterm_stops(control):  # until the flow returns: a runner's SIGTERM during the report must not crash the run
        return await _session(s, control, stop, session_start, duration, report_dir, watcher_runs, takeover)


async def restart_refused(strategy: str, crashed: str, limit: int) -> State[object] | None:
    """A crash restart: the crashed run's task runs closed; None to go on, or the Failed state when this strategy
    was restarted more than ``limit`` times within the hour."""
    logger = get_run_logger()
    async with get_client() as client:
        closed = await close_task_runs(client, crashed, f"its flow run crashed; flow run {flow_run.id} restarts the strategy")
    n = await restarts_within_hour(strategy)
    logger.warning(
        "restarting %s after flow run %s crashed (%d task runs it left Running closed; restart %d this hour)", strategy, crashed, closed, n
    )
    if n <= limit:
        return None
    await no_retry(None)
    msg = f"{strategy}: {n} crash restarts within the hour (limit {limit}); not restarting again: look at the crashed runs, then start it by hand"
    logger.error(msg)
    return Failed(message=msg)


async def _session(
    s: Strategy,
    control: EngineControl,
    stop: asyncio.Event,
    session_start: datetime,
    duration: float | None,
    report_dir: str | None,
    watcher_runs: WatcherRuns,
    takeover: bool = False,
) -> Outcome:
    """Start, trade until told to stop, stop, report; the run's final state says why it ended."""
    logger = get_run_logger()
    status_artifact = InPlaceArtifact(artifact_key(s.name, "status"), f"live status of {s.name} (updated in place)")
    watcher = asyncio.create_task(control.watch())
    engine_started = False
    try:
        try:
            # the lease, the twin check (another store root's engine); start-up sync reconciles intents: a retry never
            # duplicates an order
            await s.start(takeover=takeover, run_id=str(flow_run.id) if flow_run.id else None)  # named in the lease
        except (*PERMANENT, LeaseHeldError) as exc:  # retrying cannot help (a listed symbol, a held lease, a twin engine)
            return await permanent_failure(exc)
        engine_started = True
        await take_over_zombies(s)
        logic = load_logic(s.config.logic, s.config.logic_params, s.config.config_dir)
        logger.info("strategy %s started: %d assets, logic %s", s.name, len(s.universe), s.config.logic)

        updating: list[asyncio.Task[bool]] = []  # the status update on its way (one at a time)

        async def publish(st: Json) -> None:
            """The status artifact, updated beside the session: a Prefect server slow or down delays nothing of the
            engine's (its client retries for seconds) and ends nothing (the next update tries again)."""
            if updating and not updating[-1].done():
                return  # the last one is still on its way
            updating[:] = [asyncio.ensure_future(status_artifact.publish_quietly(status_markdown(st)))]

        with frozen_heap():  # no full collection pass over the start's objects while trading (runner/heap.py)
            result = await run(
                s,
                logic,
                duration=duration,
                tick_interval=s.config.tick_interval,
                stop=stop,
                on_status=publish,
                logic_errors=s.config.logic_errors,
            )
        if result.reason == "halted" and control.cause is None and s.state.breaker_tripped is None and s.state.halted_by_emergency_stop:
            if account_halt(s.state.halt_reason):  # the account e-stop's flow cancels this run too: it ends as that cancel
                control.cancelled_by(stop_message(s.state.halt_reason or ""))
            else:
                try:  # halted by an e-stop flow before the poll saw its request: take part in it
                    await control.take_estop_request(halted=True)
                except Exception as exc:  # the API is away: the run ends as the halt it is
                    logger.warning("could not look for the e-stop request that halted %s (%s: %s)", s.name, type(exc).__name__, exc)
        await control.settled()  # an e-stop request being handled finishes before the engine stops
        if updating:
            await asyncio.gather(*updating)
        await status_artifact.publish_quietly(status_markdown(result.final_status))
        logger.info(
            "strategy %s ended (%s): callbacks %s, errors %s", s.name, result.reason, dict(result.callbacks), dict(result.callback_errors)
        )
    finally:
        stop.set()
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
        await s.stop()  # watchers stopped, trace flushed and closed, lease released; open orders stay (e-stop cancels them)
        if engine_started:  # the heartbeat watchdog's window closes: this engine stopped, it did not die. A run refused
            # by the lease says nothing: the engine that holds it may be frozen, and the watchdog must still fire
            emit_event(event="planar.stopped", resource=resource(s.name), payload={"account": s.account})
        await watcher_runs.finish()
        if s.alerts is not None:
            await s.alerts.stop()
    analysis = analyze_trading_events(s, start=session_start)  # this session, this strategy (the account's trace holds more)
    out = Path(report_dir or (Path(s.config.store_root) / s.name / "reports")).resolve()
    files = write_report(analysis, out, currency=s.config.main_currency, title=f"{s.name} session report")
    breaker = s.state.breaker_tripped
    ended = control.ended_because(result.reason, s.state.halt_reason, breaker)
    summary = obj(json.loads(files["summary"].read_text()))  # the report's own figures: one source for every number shown
    figures = "\n".join(f"| {k} | {v} |" for k, v in summary.items() if not isinstance(v, dict))
    await InPlaceArtifact(artifact_key(s.name, "report"), f"session report of {s.name}").publish(
        f"# {s.name} session\nstarted {session_start:%Y-%m-%d %H:%M:%S} UTC, ended: **{ended}**, logic callbacks {dict(result.callbacks)}, errors {dict(result.callback_errors)}\n\n"
        f"### summary (realised PnL gross of fees)\n| figure | value |\n|---|---|\n{figures}\n\n"
        f"{analysis_markdown(analysis)}\n\nHTML report: `{files['html']}`"
    )
    out_data = {
        "callbacks": dict(result.callbacks),
        "callback_errors": dict(result.callback_errors),
        "reason": result.reason,
        "ended": ended,
        "ticks": result.ticks,
        "errors": result.errors,
        "status": result.final_status,
        "report": str(files["html"]),
        "summary": summary,
        "trace": str(getattr(s.sink, "root", "")),
        "estop": control.estop_report.as_dict() if control.estop_report is not None else None,
        # orders call() answered UNKNOWN for, and their verdicts (found / proven absent / re-sent): engine/verdicts.py
        "unknown_outcomes": {k: s.book.unknown_outcomes[k] for k in UNKNOWN_COUNTS},
    }
    if control.ends_failed(result.reason, breaker):
        await no_retry(None)
        return Failed(message=ended, data=out_data)
    if control.cause is not None:  # cancelled, terminated or e-stopped: not green, not retried
        return Cancelled(message=ended, data=out_data)
    return out_data
