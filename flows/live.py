"""The long-running live flow: one Prefect flow run per strategy session.

The hot path never creates Prefect task runs: orders, ticks and watcher
updates run in planar_core; the flow adds logging, a status artifact kept
current, a report artifact at the end, cancellation handling and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from planar_core.engine.runner import load_logic, run
from planar_core.trace.analysis import analyze_trading_events
from planar_core.trace.report import analysis_markdown, write_report

from .common import PERMANENT, artifact_key, build_strategy, permanent_failure

log = logging.getLogger("planar.flows.live")


def status_markdown(st: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in st.items() if k != "watchers")
    watchers = "\n".join(f"| {k} | {v} |" for k, v in sorted(st["watchers"].items()))
    return f"## {st['strategy']} status\n| field | value |\n|---|---|\n{rows}\n\n### watchers\n| watcher | mode |\n|---|---|\n{watchers}"


async def _watch_cancellation(stop: asyncio.Event, s: Any = None, every: float = 2.0, alert_after: int = 5) -> None:
    """Stop cleanly when this flow run is cancelled from the UI, the CLI or the e-stop flow. A read of the run's
    state that fails is recorded; after ``alert_after`` failures in a row an alert says a cancellation could be
    missed (the strategy keeps trading meanwhile)."""
    run_id = flow_run.id
    if not run_id:
        return
    failures = 0
    async with get_client() as client:
        while not stop.is_set():
            await asyncio.sleep(every)
            try:
                fr = await client.read_flow_run(run_id)
            except Exception as exc:
                failures += 1
                msg = f"cannot read this flow run's state ({type(exc).__name__}: {exc}); a cancellation could be missed"
                log.warning(msg)
                if s is not None:
                    s.sink.record("error_occurred", reason=msg, consecutive_failures=failures)
                    if failures == alert_after:
                        s.alert(f"{s.name}: {msg} ({failures} reads failed in a row)", "error")
                continue
            failures = 0
            if fr.state is not None and fr.state.type.value in ("CANCELLING", "CANCELLED"):
                log.warning("flow run cancelled: stopping the strategy")
                stop.set()


@flow(name="live_strategy", retries=2, retry_delay_seconds=10, log_prints=True)
async def live_strategy(strategy: str, config_path: str | None = None, duration: float | None = None,
                        report_dir: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a strategy live until ``duration`` (seconds) elapses, the run is cancelled, or it halts."""
    logger = get_run_logger()
    try:
        s = build_strategy(strategy, config_path, **(overrides or {}))
    except PERMANENT as exc:
        return await permanent_failure(exc)
    session_start = datetime.now(timezone.utc)
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_cancellation(stop, s))
    try:
        try:
            await s.start()  # start-up sync reconciles intents: a retry never duplicates an order
        except PERMANENT as exc:  # e.g. a symbol the exchange does not list: retrying cannot help
            return await permanent_failure(exc)
        logic = load_logic(s.config.logic, s.config.logic_params)
        logger.info("strategy %s started: %d assets, logic %s", s.name, len(s.universe), s.config.logic)

        async def publish(st: dict[str, Any]) -> None:
            await acreate_markdown_artifact(key=artifact_key(s.name, "status"), markdown=status_markdown(st),
                                           description=f"live status of {s.name}")

        result = await run(s, logic, duration=duration, tick_interval=s.config.tick_interval, stop=stop, on_status=publish,
                           fail_on_logic_error=s.config.logic_errors == "fail")
        await publish(result.final_status)
        logger.info("strategy %s ended (%s) after %d ticks", s.name, result.reason, result.ticks)
    finally:
        stop.set()
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
        await s.stop()  # watchers stopped, trace flushed and closed; open orders stay (e-stop cancels them)
        if s.alerts is not None:
            await s.alerts.stop()
    analysis = analyze_trading_events(s, start=session_start)  # this session, this strategy (the account's trace holds more)
    out = Path(report_dir or (Path(s.config.store_root) / s.name / "reports"))
    files = write_report(analysis, out, currency=s.config.main_currency, title=f"{s.name} session report")
    await acreate_markdown_artifact(key=artifact_key(s.name, "report"), description=f"session report of {s.name}",
                                   markdown=f"# {s.name} session\nended: **{result.reason}**, ticks {result.ticks}\n\n"
                                            f"{analysis_markdown(analysis)}\n\nHTML report: `{files['html']}`")
    return {"reason": result.reason, "ticks": result.ticks, "errors": result.errors, "status": result.final_status,
            "report": str(files["html"]), "trace": str(getattr(s.sink, "root", ""))}
