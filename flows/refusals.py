"""A live run refused by its deployment's concurrency limit says why, on its own page.

Prefect cancels a second run of a ``<name>-live`` deployment (limit 1, ``CANCEL_NEW``) before any process of ours
starts for it: its page read "Deployment concurrency limit reached." and "This run didn't generate logs", which does
not tell an operator whether an engine is trading or a dead run still holds the slot. The stop agent (always
running beside the deployments) calls :func:`explain_refusals` every few seconds: each such run gets a state message
and a log line naming the run that holds the slot, or saying that none is active any more (start again), and how
long a dead host's run keeps it. The state stays Cancelled; only its message is rewritten, once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from prefect.client.schemas.actions import LogCreate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelled

from .control import ACTIVE

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.orchestration import PrefectClient

log = logging.getLogger("planar.flows.refusals")
PREFECT_REFUSAL = "Deployment concurrency limit reached."  # Prefect's message (core_policy.py), matched exactly
LOOKBACK = timedelta(hours=1)


async def explain_refusals(client: PrefectClient) -> list[UUID]:
    """Rewrite the message of every live run Prefect refused in the last hour; returns the runs explained."""
    refused = await client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=["live_strategy"])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CANCELLED])),
            expected_start_time=FlowRunFilterExpectedStartTime(after_=datetime.now(UTC) - LOOKBACK),
        ),
    )
    done: list[UUID] = []
    for fr in refused:
        if fr.state is None or fr.state.message != PREFECT_REFUSAL or fr.deployment_id is None:
            continue
        holders = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[fr.deployment_id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in ACTIVE]))),
        )
        active = [h for h in holders if h.id != fr.id and h.state is not None and h.state.type is not StateType.SCHEDULED]
        message = why(fr, active)
        await client.set_flow_run_state(fr.id, Cancelled(message=message), force=True)
        await client.create_logs(
            [LogCreate(name=log.name, level=logging.WARNING, message=message, timestamp=datetime.now(UTC), flow_run_id=fr.id)]
        )
        log.info("explained the refusal of %s: %s", fr.name, message)
        done.append(fr.id)
    return done


def why(refused: FlowRun, holders: list[FlowRun]) -> str:
    strategy = (refused.parameters or {}).get("strategy") or "this strategy"
    if holders:
        h = holders[0]
        state = h.state.name if h.state is not None else "?"
        since = f" since {h.start_time:%Y-%m-%d %H:%M:%S} UTC" if h.start_time else ""
        return (
            f"Refused: {strategy} is already live in flow run '{h.name}' ({h.id}), {state}{since}; its deployment runs "
            "one at a time (concurrency limit 1). Cancel or e-stop that run first. If its host died, the zombie "
            "automation marks it Crashed after its window without a heartbeat (90 s by default), which frees the slot."
        )
    return (
        f"Refused: another run of {strategy} held its deployment's one slot (concurrency limit 1) when this one "
        "started; none is active now: start it again."
    )
