"""How a running live flow learns it must stop, within ``every`` seconds of the request.

The engine's own run is polled for CANCELLING/CANCELLED (the UI's cancel, the CLI, the e-stop flow), and the
``emergency_stop`` flow runs aimed at this strategy (same name, same account or no account given) are polled
from the moment they are *created*: the engine runs the e-stop itself on its open connections, without waiting
for a runner or a worker to start the e-stop flow's process (which takes seconds). The e-stop flow, when it runs,
verifies on the exchange and stays the backup for an engine that is dead or hung.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.runtime import flow_run

from planar_core.model.types import Json
from planar_core.risk.estop import EStopReport

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.orchestration import PrefectClient

    from planar_core.engine.strategy import Strategy

log = logging.getLogger("planar.flows.control")
ACTIVE = ("RUNNING", "PENDING", "SCHEDULED", "CANCELLING", "PAUSED")
REQUESTED = ("SCHEDULED", "PENDING", "RUNNING")
# states a person (or an API call) can put a running live run in that say it is not trading: the engine stops on them
SET_FROM_OUTSIDE = (StateType.PAUSED, StateType.FAILED, StateType.COMPLETED)


def blank(value: object) -> bool:
    """An automation's template renders a missing value as '' or 'None'."""
    return value is None or str(value).strip() in ("", "None", "null")


async def flow_runs(
    flow_name: str, states: Iterable[str], after: datetime | None = None, client: PrefectClient | None = None
) -> list[FlowRun]:
    """Runs of ``flow_name`` in ``states`` (expected to start after ``after``), through ``client`` or a new one."""
    by_flow = FlowFilter(name=FlowFilterName(any_=[flow_name]))
    by_run = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(x) for x in states])),
        expected_start_time=FlowRunFilterExpectedStartTime(after_=after) if after else None,
    )
    if client is not None:
        return await client.read_flow_runs(flow_filter=by_flow, flow_run_filter=by_run)
    async with get_client() as new:
        return await new.read_flow_runs(flow_filter=by_flow, flow_run_filter=by_run)


async def live_runs(strategy: str, states: Iterable[str] = ACTIVE) -> list[FlowRun]:
    """Flow runs of ``live_strategy`` for this strategy in the given states."""
    return [r for r in await flow_runs("live_strategy", states) if (r.parameters or {}).get("strategy") == strategy]


def run_account(params: Json, strategy: str) -> str | None:
    """The exchange account a flow run of ``strategy`` trades or stops (``<exchange>-<key hash>``), from the config
    its parameters name (``config_path``, else ``strategy`` in ``configs_dir``; ``overrides`` applied); None when it
    cannot be told here. Why: strategy names are not unique across accounts (a desk's ``grid_maker`` and a test
    account's), and a run matched by name alone was another account's: marked a zombie, or stopped."""
    from planar_core.config import ConfigError, locate_config
    from planar_core.engine.parts import config_account
    from tasks.blocks import secret_block_provider
    from tasks.strategy import load_strategy_config

    if blank(params.get("config_path")) and blank(params.get("configs_dir")):
        return None  # a config from the environment alone says nothing about the run's account here
    try:
        path = locate_config(
            strategy,
            None if blank(params.get("config_path")) else str(params.get("config_path")),
            None if blank(params.get("configs_dir")) else str(params.get("configs_dir")),
        )
        overrides = params.get("overrides")
        cfg = load_strategy_config(strategy, path, overrides if isinstance(overrides, dict) else None)
        return config_account(cfg, secrets_provider=secret_block_provider)
    except (ConfigError, OSError, ValueError):
        return None


def aimed_at(run: FlowRun, s: Strategy) -> bool:
    """Whether an e-stop request is for this engine: its strategy, and its account (given, or the one its config
    trades; a request whose account cannot be told stops it too: a stop is never missed for want of a name)."""
    p = run.parameters or {}
    if p.get("strategy") != s.name:
        return False
    if not blank(p.get("account")):
        return p.get("account") == s.account
    return run_account(p, s.name) in (s.account, None)


def stop_message(reason: str) -> str:
    """What an emergency stop's cancel of a live run says (the message of its Cancelling state)."""
    return f"emergency stop: {reason}"


class EngineControl:
    def __init__(self, s: Strategy, stop: asyncio.Event, since: datetime, every: float = 0.5, alert_after: int = 10) -> None:
        self.s = s
        self.stop = stop
        self.since = since
        self.every = every
        self.alert_after = alert_after
        self.cause: str | None = None  # "cancelled" | "terminated" | "emergency stop"
        self.detail = ""
        self.estop_report: EStopReport | None = None
        self._estop: asyncio.Task[None] | None = None

    def terminate(self) -> None:
        """SIGTERM: stop cleanly."""
        log.warning("SIGTERM: stopping the strategy cleanly")
        self._end("terminated", "SIGTERM")

    def cancelled_by(self, detail: str) -> None:
        """Ended as a cancel whose message is ``detail`` (``stop_message``): the account emergency stop halts the
        strategy and cancels its live runs together, and the run ends as that cancel whichever the engine saw first."""
        self._end("cancelled", detail)

    def _end(self, cause: str, detail: str) -> None:
        if self.cause is None:
            self.cause, self.detail = cause, detail
        self.stop.set()

    async def watch(self) -> None:
        run_id = flow_run.id
        failures = 0
        async with get_client() as client:
            while not self.stop.is_set():
                try:
                    await self.poll_once(client, run_id)
                    failures = 0
                except Exception as exc:  # the API may be away for a while; the engine trades on, and says so
                    failures += 1
                    msg = f"cannot read this run's state or e-stop requests ({type(exc).__name__}: {exc}); a stop could be missed"
                    log.warning(msg)
                    self.s.sink.record("error_occurred", reason=msg, consecutive_failures=failures)
                    if failures == self.alert_after:
                        self.s.alert(f"{self.s.name}: {msg} ({failures} reads failed in a row)", "error")
                await asyncio.sleep(self.every)

    async def poll_once(self, client: PrefectClient, run_id: UUID | None) -> None:
        if await self.take_estop_request(client):
            return
        if run_id:
            fr = await client.read_flow_run(run_id)
            if fr.state is not None and fr.state.type in (StateType.CANCELLING, StateType.CANCELLED):
                log.warning("flow run cancelled: stopping the strategy")
                self._end("cancelled", fr.state.message or "cancelled")
            elif fr.state is not None and fr.state.type is StateType.CRASHED:  # marked a zombie while frozen: a restart
                log.error("this flow run was marked Crashed (%s): stopping the strategy", fr.state.message)  # may be on its way
                self._end("cancelled", f"marked Crashed while running: {fr.state.message}")
            elif fr.state is not None and fr.state.type in SET_FROM_OUTSIDE:
                # the UI's Suspend / Pause, or "Change state" to Failed or Completed: the run no longer says it is
                # trading, so the engine must not be (an outside trial: it kept placing orders under "Failed", and
                # Cancel was then refused as the run was terminal). It stops as a cancel does; its orders stay.
                name = fr.state.name or fr.state.type.value
                log.error("this flow run was set to %s from outside (%s): stopping the strategy", name, fr.state.message or "no message")
                self._end("cancelled", f"set to {name} while running" + (f": {fr.state.message}" if fr.state.message else ""))

    async def take_estop_request(self, client: PrefectClient | None = None, halted: bool = False) -> bool:
        """Start this engine's part of an e-stop flow run aimed at it (once); True when one was started now.

        The poll takes requests created since this session started. ``halted``: once more when the run loop ends
        halted by an emergency stop with no cause seen, any request still unfinished: the e-stop flow halts the
        strategy the moment it starts, which the loop can see before the next poll (or before this session's first,
        for a session started while the stop ran: a crash restart), and the engine must still take its part (cancel
        on its own connections, record it for the flow's report) and end the run as that emergency stop rather than
        as a halt."""
        if self._estop is not None:
            return False
        for req in await flow_runs("emergency_stop", REQUESTED, after=None if halted else self.since, client=client):
            if aimed_at(req, self.s) and self._estop is None:
                p = req.parameters or {}
                self._estop = asyncio.create_task(
                    self._run_estop(str(req.id), str(p.get("reason") or "emergency stop"), bool(p.get("close_positions")))
                )
                return True
        return False

    async def _run_estop(self, request: str, reason: str, close_positions: bool) -> None:
        log.error("emergency stop requested by flow run %s: %s", request, reason)
        self.s.sink.record("estop_requested", reason=reason, request=request)
        run = str(flow_run.id or "")
        try:
            # seen: the e-stop flow waits for this engine's part (bounded) before it reports, instead of saying it took none
            self.s.state_store.update(engine_estop={"request": request, "run": run, "answering": True})
            report = self.estop_report = await self.s.emergency_stop(f"{reason} (e-stop flow run {request})", close_positions)
            # the e-stop run reports what the engine did on its own connections beside what it did itself
            self.s.state_store.update(
                engine_estop={
                    "request": request,
                    "run": run,
                    "summary": report.summary(),
                    **{k: v for k, v in report.as_dict().items() if k != "symbols"},
                }
            )
        finally:
            self._end("emergency stop", reason)

    async def settled(self) -> None:
        """Wait for an e-stop request being handled (its cancels are verified before the engine stops)."""
        if self._estop is not None:
            await asyncio.shield(self._estop)

    def ends_failed(self, run_reason: str, breaker: str | None) -> bool:
        """Failed (red, not retried) or Cancelled? A breaker that tripped is a failure even when an e-stop run or a
        cancel reached the engine before it ended: the breaker's own event starts an e-stop run at once, and a loss
        limit must never read as a stop by hand. Other stops by hand are Cancelled, whatever the halt they caused."""
        return breaker is not None or (self.cause is None and run_reason == "halted")

    def ended_because(self, run_reason: str, halt_reason: str | None, breaker: str | None = None) -> str:
        said = self._said(run_reason, halt_reason)
        if breaker is not None and self.cause is not None:
            return f"halted by the {breaker} circuit breaker, then {said}"
        return said

    def _said(self, run_reason: str, halt_reason: str | None) -> str:
        if self.cause == "emergency stop":
            summary = self.estop_report.summary() if self.estop_report is not None else "not completed"
            return f"emergency stop ({self.detail}): {summary}"
        if self.cause == "cancelled":
            return f"cancelled ({self.detail})"
        if self.cause == "terminated":
            return "terminated by SIGTERM; stopped cleanly"
        if run_reason == "halted":
            return f"halted: {halt_reason}"
        return {"duration": "duration elapsed"}.get(run_reason, run_reason)
