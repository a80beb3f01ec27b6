"""The deployments file and the serve entry list every deployment with its schedule; automations validate."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {"ma_cross-live": None, "emergency-stop": None, "daily-reset": "cron:0 0 * * *", "auto-tune": "interval:86400",
            "resync": "interval:900", "compact-trace": "cron:30 0 * * *"}


def _schedule(d: dict) -> str | None:
    s = (d.get("schedules") or [None])[0]
    if s is None:
        return None
    return f"cron:{s['cron']}" if "cron" in s else f"interval:{int(s['interval'])}"


def test_prefect_yaml_lists_every_deployment_with_its_schedule() -> None:
    from prefect.flows import load_flow_from_entrypoint

    doc = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in doc["deployments"]}
    assert {k: _schedule(v) for k, v in deployments.items()} == EXPECTED
    for d in deployments.values():
        flow = load_flow_from_entrypoint(str(ROOT / d["entrypoint"]))
        assert set(d["parameters"]) <= set(flow.parameters.properties)
        assert d["work_pool"]["name"] == "planar"


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
    assert got == EXPECTED


def test_automation_definitions_validate() -> None:
    from prefect.automations import Automation

    from deployments.automations import FLOWS, breaker_to_estop, notify_on_failure, reconnect_to_resync

    estop = breaker_to_estop(uuid.uuid4())
    assert estop.trigger.expect == {"planar.breaker_tripped"} and estop.actions[0].type == "run-deployment"
    notify = notify_on_failure(uuid.uuid4())
    assert notify.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert set(FLOWS) == {"live_strategy", "emergency_stop", "daily_reset", "auto_tune", "resync", "compact_trace"}
    resync = reconnect_to_resync(uuid.uuid4())
    assert resync.trigger.expect == {"planar.reconnect"}
    for a in (estop, notify, resync):
        assert Automation.model_validate_json(a.model_dump_json()) == a
