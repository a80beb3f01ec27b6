"""Prefect automations shipped with Planar-Py (created by ``planar automations create``).

1. ``planar.breaker_tripped`` from any strategy -> run the ``emergency_stop`` deployment for it.
2. ``planar.reconnect`` -> run the ``resync`` deployment (full re-sync and divergence check).
3. A run of this product's flows that fails or crashes -> send a notification through a Prefect
   notification block (which can itself be an Apprise, Slack, e-mail ... block).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from prefect.automations import AutomationCore, EventTrigger, Posture, RunDeployment, SendNotification

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

FLOWS = ["live_strategy", "emergency_stop", "rearm", "daily_reset", "auto_tune", "resync", "compact_trace"]


def breaker_to_estop(estop_deployment_id: UUID) -> AutomationCore:
    return AutomationCore(
        name="planar: circuit breaker -> emergency stop",
        description="When a strategy's circuit breaker trips, run the emergency-stop flow for that strategy.",
        trigger=EventTrigger(
            expect={"planar.breaker_tripped"}, match={"prefect.resource.id": "planar.strategy.*"}, posture=Posture.Reactive, threshold=1
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=estop_deployment_id,
                parameters={
                    "strategy": "{{ event.resource['prefect.resource.name'] }}",
                    "account": "{{ event.payload.account }}",
                    "config_path": "{{ event.payload.config_path }}",
                    "reason": "circuit breaker: {{ event.payload.reason }}",
                },
            )
        ],
    )


def reconnect_to_resync(resync_deployment_id: UUID) -> AutomationCore:
    return AutomationCore(
        name="planar: reconnect -> resync",
        description="After the engine reconnects to the exchange, run a full re-sync with divergence check.",
        trigger=EventTrigger(
            expect={"planar.reconnect"}, match={"prefect.resource.id": "planar.strategy.*"}, posture=Posture.Reactive, threshold=1
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=resync_deployment_id,
                parameters={"strategy": "{{ event.resource['prefect.resource.name'] }}", "config_path": "{{ event.payload.config_path }}"},
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
    estop_deployment: str = "emergency_stop/emergency-stop", resync_deployment: str = "resync/resync", notification_block: str | None = None
) -> list[UUID]:
    """Look up the deployments (and the notification block) by name and create or update the automations."""
    from prefect.client.orchestration import get_client

    ids = []
    async with get_client() as client:
        dep = await client.read_deployment_by_name(estop_deployment)
        ids.append(await upsert(client, breaker_to_estop(dep.id)))
        resync = await client.read_deployment_by_name(resync_deployment)
        ids.append(await upsert(client, reconnect_to_resync(resync.id)))
        if notification_block:
            ids.append(await upsert(client, notify_on_failure(await block_document_id(notification_block))))
    return ids


async def block_document_id(name: str) -> UUID:
    """The id of the saved block ``name`` (``<block type slug>/<block name>``), as a notification action names it."""
    from prefect.blocks.core import Block

    block: object = await Block.aload(name)  # Prefect's client-injecting decorator hides aload's return type
    if not isinstance(block, Block) or block._block_document_id is None:
        raise ValueError(f"{name}: not a saved block")
    return block._block_document_id
