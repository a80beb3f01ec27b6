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
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelled

from .control import ACTIVE, flow_runs

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.orchestration import PrefectClient

log = logging.getLogger("planar.flows.refusals")
PREFECT_REFUSAL = "Deployment concurrency limit reached."  # Prefect's message (core_policy.py), matched exactly
LOOKBACK = timedelta(hours=1)


async def explain_refusals(client: PrefectClient) -> list[UUID]:
    """Rewrite the message of every live run Prefect refused in the last hour; returns the runs explained."""
    since = datetime.now(UTC) - LOOKBACK
    refused = [
        fr
        for fr in await flow_runs("live_strategy", ("CANCELLED",), after=since, client=client)
        if fr.state is not None and fr.state.message == PREFECT_REFUSAL and fr.deployment_id is not None
    ]
    if not refused:
        return []
    live = [
        r
        for r in await flow_runs("live_strategy", ACTIVE, client=client)
        if r.state is not None and r.state.type is not StateType.SCHEDULED
    ]
    done: list[UUID] = []
    for fr in refused:
        message = why(fr, [h for h in live if h.deployment_id == fr.deployment_id])
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
