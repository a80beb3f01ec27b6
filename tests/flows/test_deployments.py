"""prefect.yaml and planar serve list the same deployments with the same schedules; automations validate."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PER_CONFIG = {
    "live": None,
    "emergency-stop": None,
    "rearm": None,
    "daily-reset": "cron:0 0 * * *",
    "auto-tune": "interval:86400",
    "resync": "interval:900",
    "compact-trace": "cron:30 0 * * *",
}
EXPECTED = (
    {"emergency-stop": None, "account-emergency-stop": None, "resync": None}
    | {f"{name}-{kind}": sched for name in ("ma_cross", "grid_maker", "futures_breakout") for kind, sched in PER_CONFIG.items()}
    | {"ma_cross-optimize": "cron:0 3 * * 1"}
)  # the one example whose config enables the scheduled optimisation


def _schedule(d: dict) -> str | None:
    s = (d.get("schedules") or [None])[0]
    if s is None:
        return None
    return f"cron:{s['cron']}" if "cron" in s else f"interval:{int(s['interval'])}"


def test_prefect_yaml_lists_every_deployment_with_its_schedule() -> None:
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in doc["deployments"]}
    assert {k: _schedule(v) for k, v in deployments.items()} == EXPECTED
    stops = {k for k, d in deployments.items() if d["entrypoint"].split(":")[1] in ("emergency_stop", "account_emergency_stop", "rearm")}
    assert stops == {k for k, d in deployments.items() if d["work_pool"]["name"] == "planar-stop"}  # the stop agent's pool
    assert all(d["work_pool"]["name"] == "planar" for k, d in deployments.items() if k not in stops)


def test_serve_builds_the_same_deployments() -> None:
    from deployments.serve import build_deployments

    got = {}
    for d in build_deployments():
        sched = d.schedules[0].schedule if d.schedules else None
        if sched is None:
            got[d.name] = None
        elif hasattr(sched, "cron"):
            got[d.name] = f"cron:{sched.cron}"
            assert sched.timezone == "UTC"
        else:
            got[d.name] = f"interval:{int(sched.interval / timedelta(seconds=1))}"
        assert "planar" in d.tags
        if d.name.endswith("-live"):
            assert d.concurrency_limit == 1 and d.concurrency_options.collision_strategy == "CANCEL_NEW"
    assert got == EXPECTED


def test_automation_definitions_validate() -> None:
    """Each shipped automation validates as the server reads it, and none aims a run through a path: an e-stop or a
    resync names the strategy (the flow finds its config in its own deployment's folder)."""
    from prefect.automations import AutomationCore

    from deployments.automations import (
        breaker_to_estop,
        crash_restart,
        heartbeat_watchdog,
        notify_on_failure,
        reconnect_to_resync,
        zombie_runs,
    )

    estop = breaker_to_estop(uuid.uuid4())
    assert estop.trigger.expect == {"planar.breaker_tripped"} and estop.actions[0].type == "run-deployment"
    assert set(estop.actions[0].parameters) == {"strategy", "account", "reason"}  # aimed at the one that tripped
    notify = notify_on_failure(uuid.uuid4())
    assert notify.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    resync = reconnect_to_resync(uuid.uuid4())
    assert resync.trigger.expect == {"planar.reconnect"} and set(resync.actions[0].parameters) == {"strategy"}
    watchdog = heartbeat_watchdog(uuid.uuid4(), 20, uuid.uuid4())
    assert watchdog.trigger.posture == "Proactive" and watchdog.trigger.after == {"planar.heartbeat"}
    assert "planar.stopped" in watchdog.trigger.expect and watchdog.trigger.within == timedelta(seconds=20)
    assert [a.type for a in watchdog.actions] == ["run-deployment", "send-notification"]
    zombie = zombie_runs(90)
    assert zombie.trigger.after == {"prefect.flow-run.heartbeat"} and zombie.actions[0].state == "CRASHED"
    restart = crash_restart()
    assert restart.trigger.expect == {"prefect.flow-run.Crashed"} and restart.actions[0].source == "inferred"
    for a in (estop, notify, resync, watchdog, zombie, restart):
        assert "id" not in a.model_dump()  # the server refuses an id in the body (422 extra_forbidden)
        assert AutomationCore.model_validate_json(a.model_dump_json()) == a
        assert "event.payload.config_path" not in a.model_dump_json()


def test_runs_an_automation_starts_find_their_config_in_their_own_folder() -> None:
    """The generic e-stop and resync deployments, and every live, e-stop and re-arm deployment, carry the folder the
    deployments were generated from (relative in prefect.yaml: each run's own clone), to find a config by name."""
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in doc["deployments"]}
    for name in ("emergency-stop", "resync", "ma_cross-live", "ma_cross-emergency-stop", "ma_cross-rearm"):
        assert deployments[name]["parameters"]["configs_dir"] == "examples", name
    assert all(d["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30" for d in deployments.values())


async def test_serve_replaces_a_work_pool_deployment_of_the_same_name(prefect_api: str) -> None:
    """After `prefect deploy` put a deployment on a work pool, `planar serve`'s upsert of the same name kept the pool
    and an empty path: its runner then crashed that deployment's runs loading their code from None (the breaker's
    e-stop run, once in a while). Serve replaces such a deployment first."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    from deployments.serve import build_deployments, replace_pool_deployments

    (dep,) = [d for d in await asyncio.to_thread(build_deployments) if d.name == "resync"]
    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name="serve-test-pool", type="process"))
        except ObjectAlreadyExists:
            pass
        await dep.apply()  # it exists already (an earlier test on this server): the pool's apply below updates it
        # Prefect's apply(work_pool_name=) of an existing deployment sets the object's own work_pool_name: a copy,
        # so the serve-side apply below sends none (on the shared object it put the pool back, order-dependent)
        await dep.model_copy().apply(work_pool_name="serve-test-pool")
        assert (await client.read_deployment_by_name("resync/resync")).work_pool_name == "serve-test-pool"
        assert await replace_pool_deployments([dep]) == ["resync/resync"]
        await dep.apply()  # what serving does
        served = await client.read_deployment_by_name("resync/resync")
    assert served.work_pool_name is None and served.path is not None
