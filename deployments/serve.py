"""``planar serve``: every deployment of every strategy config in a folder, with its schedule, served from one
local process (the same list as ``prefect.yaml``, from ``deployments.specs``)."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import Flow
from prefect.schedules import Cron, Interval, Schedule

from .specs import ROOT, Spec, specs


def _flow(sp: Spec) -> Flow[..., object]:
    module = sp.entrypoint.split(":", 1)[0].removesuffix(".py").replace("/", ".")
    found: object = getattr(importlib.import_module(module), sp.flow_attr)
    if not isinstance(found, Flow):
        raise TypeError(f"{sp.entrypoint} is not a Prefect flow")
    return found


def _schedules(sp: Spec) -> list[Schedule]:
    if sp.cron:
        return [Cron(sp.cron, timezone="UTC")]
    if sp.interval_s:
        return [Interval(timedelta(seconds=sp.interval_s))]
    return []


def build_deployments(folder: Path = ROOT / "examples") -> list[RunnerDeployment]:
    out = []
    for sp in specs(folder, relative_to=None):  # absolute config paths: the served process may run anywhere
        limit = (
            ConcurrencyLimitConfig(
                limit=int(str(sp.concurrency["limit"])), collision_strategy=ConcurrencyLimitStrategy(sp.concurrency["collision_strategy"])
            )
            if sp.concurrency
            else None
        )
        deployment = _flow(sp).to_deployment(
            name=sp.name,
            parameters=dict(sp.parameters),
            tags=list(sp.tags),
            schedules=_schedules(sp),
            concurrency_limit=limit,
            description=sp.description or None,
        )
        if not isinstance(deployment, RunnerDeployment):  # to_deployment answers a coroutine inside a running loop
            raise RuntimeError("build_deployments runs outside an event loop (from async code: Flow.ato_deployment)")
        out.append(deployment)
    return out


HEARTBEAT_S = 30  # Prefect's flow-run heartbeats, for the zombie automation (its minimum; Prefect's default is 180)


def main(folder: Path = ROOT / "examples") -> None:  # pragma: no cover - runs until interrupted
    """Serve the deployments (Prefect's runner: one process per run, flow-run heartbeats every 30 s)."""
    asyncio.run(serve_with(build_deployments(folder)))


async def replace_pool_deployments(deployments: list[RunnerDeployment]) -> list[str]:
    """Deployments of the same names already on a work pool (``prefect deploy`` of prefect.yaml) are deleted before
    serving: Prefect's upsert keeps such a deployment's pool and its empty path, so this process's runner would try
    to load their runs' code from ``None`` and crash them (seen: the breaker's e-stop run, when the runner claimed it
    before the stop agent). Each is said on stderr; automations made before (``planar automations``) must be made
    again, as they name deployments by id. Returns the names replaced."""
    import sys

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    replaced = []
    async with get_client() as client:
        for d in deployments:
            try:
                existing = await client.read_deployment_by_name(f"{d.flow_name}/{d.name}")
            except ObjectNotFound:
                continue
            if existing.work_pool_name:
                await client.delete_deployment(existing.id)
                replaced.append(f"{d.flow_name}/{d.name}")
    if replaced:
        print(
            f"planar serve: replaced {len(replaced)} deployment(s) that were on a work pool ({', '.join(replaced[:5])}"
            f"{' ...' if len(replaced) > 5 else ''}); run `planar automations` again",
            file=sys.stderr,
        )
    return replaced


async def serve_with(deployments: list[RunnerDeployment], *beside: Coroutine[object, object, None]) -> None:  # pragma: no cover
    """The runner serving ``deployments``, and ``beside`` it in the same loop what the caller adds (``planar serve``:
    the stop agent, ``flows.stop_agent``)."""
    from prefect import aserve

    await replace_pool_deployments(deployments)
    jobs = [asyncio.ensure_future(aserve(*deployments, heartbeat_seconds=HEARTBEAT_S)), *map(asyncio.ensure_future, beside)]
    done, pending = await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
    for job in pending:  # the runner stopped (SIGTERM, Ctrl-C): what ran beside it stops too, so the process exits
        job.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for job in done:
        job.result()
