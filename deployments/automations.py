"""Prefect automations shipped with Planar-Py (created by ``planar automations create``).

1. ``planar.breaker_tripped`` from any strategy -> run the ``emergency_stop`` deployment for it.
2. ``planar.reconnect`` -> run the ``resync`` deployment (full re-sync and divergence check).
3. Any run of this product's flows that fails or crashes -> send a notification through a Prefect
   notification block (which can itself be an Apprise, Slack, e-mail ... block).
"""

from __future__ import annotations

from uuid import UUID

from prefect.automations import Automation, EventTrigger, Posture, RunDeployment, SendNotification

FLOWS = ["live_strategy", "emergency_stop", "daily_reset", "auto_tune", "resync", "compact_trace"]


def breaker_to_estop(estop_deployment_id: UUID) -> Automation:
    return Automation(
        name="planar: circuit breaker -> emergency stop",
        description="When a strategy's circuit breaker trips, run the emergency-stop flow for that strategy.",
        trigger=EventTrigger(expect={"planar.breaker_tripped"}, match={"prefect.resource.id": "planar.strategy.*"},
                             posture=Posture.Reactive, threshold=1),
        actions=[RunDeployment(source="selected", deployment_id=estop_deployment_id,
                               parameters={"strategy": "{{ event.resource['prefect.resource.name'] }}",
                                           "reason": "circuit breaker: {{ event.payload.reason }}"})],
    )


def reconnect_to_resync(resync_deployment_id: UUID) -> Automation:
    return Automation(
        name="planar: reconnect -> resync",
        description="After the engine reconnects to the exchange, run a full re-sync with divergence check.",
        trigger=EventTrigger(expect={"planar.reconnect"}, match={"prefect.resource.id": "planar.strategy.*"}, posture=Posture.Reactive,
                             threshold=1),
        actions=[RunDeployment(source="selected", deployment_id=resync_deployment_id,
                               parameters={"strategy": "{{ event.resource['prefect.resource.name'] }}"})],
    )


def notify_on_failure(notification_block_id: UUID) -> Automation:
    return Automation(
        name="planar: notify on failed or crashed flow runs",
        description="Any Planar-Py flow run that fails or crashes sends a notification.",
        trigger=EventTrigger(expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                             match_related={"prefect.resource.role": "flow", "prefect.resource.name": FLOWS},
                             posture=Posture.Reactive, threshold=1),
        actions=[SendNotification(block_document_id=notification_block_id, subject="Planar-Py flow run {{ flow_run.name }} failed",
                                  body="Flow run {{ flow_run.name }} of {{ flow.name }} entered {{ flow_run.state.name }}: "
                                       "{{ flow_run.state.message }}")],
    )


async def create_all(estop_deployment: str = "emergency_stop/emergency-stop", notification_block: str | None = None) -> list[UUID]:
    """Look up the deployment (and the notification block) by name and create the automations."""
    from prefect.blocks.core import Block
    from prefect.client.orchestration import get_client

    created = []
    async with get_client() as client:
        dep = await client.read_deployment_by_name(estop_deployment)
        created.append(await client.create_automation(breaker_to_estop(dep.id)))
        resync = await client.read_deployment_by_name("resync/resync")
        created.append(await client.create_automation(reconnect_to_resync(resync.id)))
        if notification_block:
            block = await Block.aload(notification_block)
            created.append(await client.create_automation(notify_on_failure(block._block_document_id)))
    return created
