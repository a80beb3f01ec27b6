"""Every deployment of the product, generated for every strategy config in a folder.

One source for both ways of deploying: ``planar serve`` (a local process serving them, ``deployments/serve.py``)
and ``prefect deploy --all`` on a process work pool (``prefect.yaml`` at the repository root, written by
``planar deployments write`` and checked up to date by the tests).

Per strategy (``<name>-...``): live (concurrency 1, new runs cancelled while one runs), emergency stop, re-arm,
daily reset, auto-tune, resync and compaction, with their schedules; the scheduled optimisation of its Params when
its config enables it (``optimization``, on its own schedule). Once: ``emergency-stop`` and ``resync``, the
generic deployments the automations run, aimed by the event's strategy, account and config path, and
``account-emergency-stop``, which stops every strategy of one exchange account (its strategies are looked for among
the configs of the folder the deployments were generated from).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from planar_core.config import load_config, named_configs

ROOT = Path(__file__).resolve().parents[1]
LIVE_CONCURRENCY = {"limit": 1, "collision_strategy": "CANCEL_NEW"}
STOP_POOL = "planar-stop"  # e-stops and re-arms: no worker's 10 s poll and 4 s process start; the stop agent runs them


@dataclass(frozen=True)
class Spec:
    name: str
    entrypoint: str  # relative to the repository root
    parameters: dict[str, object]
    tags: tuple[str, ...]
    cron: str | None = None
    interval_s: int | None = None
    concurrency: dict[str, object] | None = None
    description: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    pool: str = "planar"  # the stop flows: STOP_POOL, claimed by the stop agent (flows/stop_agent.py)

    @property
    def flow_attr(self) -> str:
        return self.entrypoint.rsplit(":", 1)[1]


def specs(folder: Path = ROOT / "examples", relative_to: Path | None = ROOT) -> list[Spec]:
    def where(p: Path) -> str:
        return str(p.resolve().relative_to(relative_to.resolve())) if relative_to else str(p.resolve())

    out = [
        Spec(
            "emergency-stop",
            "flows/emergency.py:emergency_stop",
            {"reason": "Manual trigger", "close_positions": False, "configs_dir": where(folder)},
            ("planar", "emergency-stop"),
            description="E-stop any strategy (the breaker and watchdog automations' target)",
            pool=STOP_POOL,
        ),
        Spec(
            "account-emergency-stop",
            "flows/emergency.py:account_emergency_stop",
            {"reason": "Manual trigger", "close_positions": False, "configs_dir": where(folder)},
            ("planar", "emergency-stop", "account"),
            description="E-stop every strategy trading one exchange account (give account: <exchange>-<key hash>)",
            pool=STOP_POOL,
        ),
        Spec(
            "resync",
            "flows/scheduled.py:resync",
            {"configs_dir": where(folder)},
            ("planar", "resync"),
            description="Re-sync any strategy (the reconnect automation's target)",
        ),
    ]
    for name, path in named_configs(folder):
        params: dict[str, object] = {"strategy": name, "config_path": where(path)}
        # the runs an automation or a click starts find the config by name here when a path they carry is not
        located = {**params, "configs_dir": where(folder)}
        tags = ("planar", f"strategy:{name}")
        out += [
            Spec(
                f"{name}-live",
                "flows/live.py:live_strategy",
                located,
                (*tags, "live"),
                concurrency=LIVE_CONCURRENCY,
                description=f"{name} live: one run at a time",
            ),
            Spec(
                f"{name}-emergency-stop",
                "flows/emergency.py:emergency_stop",
                {**located, "reason": "Manual trigger", "close_positions": False},
                (*tags, "emergency-stop"),
                pool=STOP_POOL,
            ),
            Spec(f"{name}-rearm", "flows/rearm.py:rearm", {**located, "reason": ""}, (*tags, "rearm"), pool=STOP_POOL),
            Spec(f"{name}-daily-reset", "flows/scheduled.py:daily_reset", params, (*tags, "scheduled"), cron="0 0 * * *"),
            Spec(f"{name}-auto-tune", "flows/scheduled.py:auto_tune", {**params, "days": 30}, (*tags, "scheduled"), interval_s=86400),
            Spec(f"{name}-resync", "flows/scheduled.py:resync", located, (*tags, "scheduled"), interval_s=900),
            Spec(f"{name}-compact-trace", "flows/scheduled.py:compact_trace", params, (*tags, "scheduled"), cron="30 0 * * *"),
        ]
        opt = load_config(path, env={}).optimization
        if opt.enabled and opt.params:
            out.append(
                Spec(
                    f"{name}-optimize",
                    "flows/optimize.py:optimize_strategy",
                    params,
                    (*tags, "scheduled", "optimize"),
                    cron=opt.schedule,
                    description=f"{name}: search its Params walk-forward; propose past the margin (docs/optimize.md)",
                )
            )
    return out
