"""The stop agent: emergency stops and re-arms executed within a second of their creation, whatever state the
engine is in.

A runner or a worker starts each flow run in a new Python process (imports alone take about 4 s here) after polling
every 10 s by default, so a stop clicked in the UI started 8-18 s later. The agent is a long-lived process of its own
(``planar stop-agent``, and inside ``planar serve``) with everything imported: it polls the API every ``every``
seconds for scheduled runs of the stop flows (``emergency_stop``, ``account_emergency_stop``, ``rearm``), from any
deployment or automation, claims each one the way Prefect's workers do (proposing Pending: of several claimants,
one wins, the others are refused by the server), and runs it in its own event loop with Prefect's flow engine. The
run is an ordinary flow run (logs, task runs, artifacts, states); only where it runs differs. Without an agent
running, the deployment's runner or worker runs it as before, only later.

The agent also explains, on their own pages, the live runs their deployment's concurrency limit refused
(``flows/refusals.py``), every ``explain_every`` seconds.

Config paths a run carries are resolved from the agent's working directory (start it from the repository root, as
the workers' clones are); a path that is not there falls back to the config named after the strategy in the
agent's ``--configs`` folder.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterNextScheduledStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import Abort
from prefect.flow_engine import run_flow
from prefect.flows import Flow
from prefect.states import Pending
from prefect.utilities.engine import propose_state

from .emergency import account_emergency_stop, emergency_stop
from .rearm import rearm
from .refusals import explain_refusals

log = logging.getLogger("planar.flows.stop_agent")
STOP_FLOWS: dict[str, Flow[..., Any]] = {  # Flow is invariant in its result: Any, not object
    "emergency_stop": emergency_stop,
    "account_emergency_stop": account_emergency_stop,
    "rearm": rearm,
}


class StopAgent:
    """Claims and runs scheduled stop-flow runs in this process (see the module)."""

    def __init__(self, configs_dir: Path | None = None, every: float = 0.25, explain_every: float = 2.0) -> None:
        self.configs_dir = configs_dir.resolve() if configs_dir is not None else None
        self.every = every
        self.explain_every = explain_every
        self.running: dict[UUID, asyncio.Task[None]] = {}
        self._flow_names: dict[UUID, str] = {}

    async def run(self, stop: asyncio.Event | None = None, ready: Callable[[], Awaitable[None]] | None = None) -> None:
        stop = stop or asyncio.Event()
        log.info("stop agent: polling every %.2fs for %s runs", self.every, ", ".join(STOP_FLOWS))
        async with get_client() as client:
            if ready is not None:
                await ready()
            explained = 0.0
            while not stop.is_set():
                try:
                    await self.poll(client)
                    if time.monotonic() - explained >= self.explain_every:
                        explained = time.monotonic()
                        await explain_refusals(client)
                except Exception as exc:  # the API may be away for a while; the agent goes on
                    log.warning("stop agent: cannot read or update runs (%s: %s)", type(exc).__name__, exc)
                try:
                    await asyncio.wait_for(stop.wait(), self.every)
                except TimeoutError:
                    pass
            if self.running:
                await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def poll(self, client: PrefectClient) -> None:
        started = time.perf_counter()
        due = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(STOP_FLOWS))),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(before_=datetime.now(UTC)),
            ),
        )
        took = time.perf_counter() - started
        if took > 1.0:  # a stop waits for this: say so (a busy or distant API server)
            log.warning("stop agent: reading the scheduled runs took %.1fs", took)
        for fr in due:
            if fr.id in self.running or not await self.claim(client, fr):
                continue
            log.info(
                "stop agent: claimed %s, created %.2fs ago", fr.name, (datetime.now(UTC) - fr.created).total_seconds() if fr.created else -1
            )
            name = await self.flow_name(client, fr.flow_id)
            self.running[fr.id] = asyncio.create_task(self.execute(STOP_FLOWS[name], fr), name=f"stop-agent:{fr.id}")

    async def flow_name(self, client: PrefectClient, flow_id: UUID) -> str:
        if flow_id not in self._flow_names:
            self._flow_names[flow_id] = (await client.read_flow(flow_id)).name
        return self._flow_names[flow_id]

    @staticmethod
    async def claim(client: PrefectClient, fr: FlowRun) -> bool:
        """Pending, as a worker proposes it: refused (Abort) when a runner, a worker or another agent was first."""
        try:
            state = await propose_state(client, Pending(message="claimed by the planar stop agent"), flow_run_id=fr.id)
        except Abort:
            return False
        return state.is_pending()

    async def execute(self, flow: Flow[..., Any], fr: FlowRun) -> None:
        params = dict(fr.parameters or {})
        path = params.get("config_path")
        if self.configs_dir is not None and "configs_dir" in flow.parameters.properties:
            if not (isinstance(path, str) and Path(path).is_file()) and not _folder(params.get("configs_dir")):
                params["configs_dir"] = str(self.configs_dir)  # the deployment's folder is not here: the agent's is
        try:
            log.info("stop agent: running %s (%s)", fr.name, flow.name)
            outcome = run_flow(flow, flow_run=fr.model_copy(update={"parameters": params}), return_type="state")
            if isinstance(outcome, Awaitable):
                await outcome
        except BaseException as exc:  # the run's state records it; the agent goes on
            log.error("stop agent: %s ended with %s: %s", fr.name, type(exc).__name__, exc)
        finally:
            self.running.pop(fr.id, None)


def _folder(value: object) -> bool:
    return isinstance(value, str) and Path(value).is_dir()
