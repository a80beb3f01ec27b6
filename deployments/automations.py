"""Prefect automations shipped with Planar-Py (created by ``planar automations``, idempotent).

1. ``planar.breaker_tripped`` from any strategy -> the ``emergency-stop`` deployment for it.
2. ``planar.reconnect`` -> the ``resync`` deployment (full re-sync and divergence check).
3. Watchdog: a live strategy's ``planar.heartbeat`` events stop (no heartbeat for ``watchdog_s``, and no
   ``planar.stopped``) -> the ``emergency-stop`` deployment for it: the standalone e-stop cancels what a dead (or
   hung) engine left open. A false positive (an engine blocked but alive) is harmless: the e-stop is idempotent and
   the engine, halted, stops.
4. Zombie runs (Prefect's documented automation): a flow run of this product whose Prefect heartbeats stop
   (``prefect.flow-run.heartbeat``, every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` s) without a final state -> marked
   Crashed, which releases the live deployment's concurrency slot at once.
5. Crash restart: a live run that ends Crashed (its process died, or a zombie marked so) -> a new run of the same
   deployment for the same strategy; the live flow refuses more than ``max_restarts`` restarts within an hour.
6. A run of this product's flows that fails or crashes, or a lost heartbeat -> a notification block.

Every automation names its target deployment by id and its strategy by name: nothing refers to a path inside
another run's working directory (on a work pool, a temporary clone deleted when that run ends).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from prefect.automations import AutomationCore, ChangeFlowRunState, EventTrigger, Posture, RunDeployment, SendNotification
from prefect.client.schemas.objects import StateType

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

FLOWS = ["live_strategy", "emergency_stop", "rearm", "daily_reset", "auto_tune", "resync", "compact_trace"]


LIVE_FLOWS = ["live_strategy"]
STRATEGY = "{{ event.resource['prefect.resource.name'] }}"


def breaker_to_estop(estop_deployment_id: UUID) -> AutomationCore:
    return AutomationCore(
        name="planar: circuit breaker -> emergency stop",
        description="When a strategy's circuit breaker trips, run the emergency-stop flow for that strategy.",
        trigger=EventTrigger(
            expect={"planar.breaker_tripped"}, match={"prefect.resource.id": "planar.strategy.*"}, posture=Posture.Reactive, threshold=1
        ),
        actions=[estop_of_the_event(estop_deployment_id, "circuit breaker: {{ event.payload.reason }}")],
    )


def estop_of_the_event(estop_deployment_id: UUID, reason: str) -> RunDeployment:
    """The e-stop deployment aimed at the strategy and account of the triggering event (no path: its own folder
    holds the config)."""
    return RunDeployment(
        source="selected",
        deployment_id=estop_deployment_id,
        parameters={"strategy": STRATEGY, "account": "{{ event.payload.account }}", "reason": reason},
    )


def reconnect_to_resync(resync_deployment_id: UUID) -> AutomationCore:
    return AutomationCore(
        name="planar: reconnect -> resync",
        description="After the engine reconnects to the exchange, run a full re-sync with divergence check.",
        trigger=EventTrigger(
            expect={"planar.reconnect"}, match={"prefect.resource.id": "planar.strategy.*"}, posture=Posture.Reactive, threshold=1
        ),
        actions=[RunDeployment(source="selected", deployment_id=resync_deployment_id, parameters={"strategy": STRATEGY})],
    )


def heartbeat_watchdog(estop_deployment_id: UUID, after_s: float, notification_block_id: UUID | None = None) -> AutomationCore:
    """No ``planar.heartbeat`` from a strategy for ``after_s`` after one was seen (and no ``planar.stopped``): its
    engine is dead or hung; the standalone e-stop cancels its orders (spot has no exchange-side countdown)."""
    actions: list[RunDeployment | SendNotification] = [
        estop_of_the_event(
            estop_deployment_id, f"watchdog: no heartbeat from the engine for {after_s:g} s (last at {{{{ event.occurred }}}})"
        )
    ]
    if notification_block_id is not None:
        actions.append(
            SendNotification(
                block_document_id=notification_block_id,
                subject=f"Planar-Py: no heartbeat from {STRATEGY}",
                body=f"No heartbeat from the engine of {STRATEGY} for {after_s:g} s (last at {{{{ event.occurred }}}}): its emergency stop was started.",
            )
        )
    return AutomationCore(
        name="planar: heartbeat lost -> emergency stop",
        description=f"A live strategy that stops sending planar.heartbeat for {after_s:g} s (without planar.stopped) is e-stopped.",
        trigger=EventTrigger(
            after={"planar.heartbeat"},
            expect={"planar.heartbeat", "planar.stopped"},
            match={"prefect.resource.id": "planar.strategy.*"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=after_s),
        ),
        actions=actions,
    )


def zombie_runs(after_s: float) -> AutomationCore:
    """Prefect's zombie detection (its documented automation, limited to this product's flows): a flow run whose
    heartbeats stop without reaching a final state is marked Crashed."""
    return AutomationCore(
        name="planar: zombie flow runs -> crashed",
        description=f"A Planar-Py flow run with no Prefect heartbeat for {after_s:g} s is marked Crashed (its slot is released).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": FLOWS},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=after_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {after_s:g} s: its process is gone or frozen (marked by the planar zombie automation)",
            )
        ],
    )


def crash_restart() -> AutomationCore:
    """A crashed live run is followed by a new run of its deployment, for the same strategy and config; the new run
    names the crashed one (``restart_of``), takes the lease, reconciles and adopts its orders. The live flow bounds
    the restarts per hour."""
    return AutomationCore(
        name="planar: live run crashed -> restart",
        description="A live_strategy run that ends Crashed is restarted (bounded per hour by the live flow).",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": LIVE_FLOWS},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            RunDeployment(
                source="inferred",
                parameters={
                    "strategy": "{{ flow_run.parameters.strategy }}",
                    "config_path": "{{ flow_run.parameters.config_path }}",
                    # a plain Jinja value, rendered as text: the shorthand passes it through tojson, which cannot
                    # encode the run's UUID (the action then fails with InvalidJinja)
                    "restart_of": {"__prefect_kind": "jinja", "template": "{{ flow_run.id }}"},
                },
            )
        ],
    )


def notify_on_failure(notification_block_id: UUID) -> AutomationCore:
    return AutomationCore(
        name="planar: notify on failed or crashed flow runs",
        description="Every Planar-Py flow run that fails or crashes sends a notification.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": FLOWS},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=notification_block_id,
                subject="Planar-Py flow run {{ flow_run.name }} failed",
                body="Flow run {{ flow_run.name }} of {{ flow.name }} entered {{ flow_run.state.name }}: {{ flow_run.state.message }}",
            )
        ],
    )


async def upsert(client: PrefectClient, automation: AutomationCore) -> UUID:
    """Create the automation, or update the one of the same name: running ``planar automations`` twice leaves one."""
    existing = await client.read_automations_by_name(automation.name)
    if not existing:
        return await client.create_automation(automation)
    for extra in existing[1:]:
        await client.delete_automation(extra.id)
    await client.update_automation(existing[0].id, automation)
    return existing[0].id


async def create_all(
    estop_deployment: str = "emergency_stop/emergency-stop",
    resync_deployment: str = "resync/resync",
    notification_block: str | None = None,
    watchdog_s: float | None = 90.0,
    zombie_s: float | None = 90.0,
    restart: bool = True,
) -> list[UUID]:
    """Look up the deployments (and the notification block) by name and create or update the automations;
    ``watchdog_s`` / ``zombie_s`` None (or ``restart`` False) leaves that one out."""
    from prefect.client.orchestration import get_client

    ids = []
    async with get_client() as client:
        estop = await client.read_deployment_by_name(estop_deployment)
        resync = await client.read_deployment_by_name(resync_deployment)
        block = await block_document_id(notification_block) if notification_block else None
        wanted = [breaker_to_estop(estop.id), reconnect_to_resync(resync.id)]
        if watchdog_s:
            wanted.append(heartbeat_watchdog(estop.id, watchdog_s, block))
        if zombie_s:
            wanted.append(zombie_runs(zombie_s))
        if restart:
            wanted.append(crash_restart())
        if block is not None:
            wanted.append(notify_on_failure(block))
        for automation in wanted:
            ids.append(await upsert(client, automation))
    return ids


async def block_document_id(name: str) -> UUID:
    """The id of the saved block ``name`` (``<block type slug>/<block name>``), as a notification action names it."""
    from prefect.blocks.core import Block

    block: object = await Block.aload(name)  # Prefect's client-injecting decorator hides aload's return type
    if not isinstance(block, Block) or block._block_document_id is None:
        raise ValueError(f"{name}: not a saved block")
    return block._block_document_id
