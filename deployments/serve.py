"""``planar serve``: every deployment of one strategy, with its schedule, served from one local process.

Mirrors deployments/prefect.yaml (which targets a process work pool for ``prefect deploy --all``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.schedules import Cron, Interval

from flows.common import example_config
from flows.emergency import emergency_stop
from flows.live import live_strategy
from flows.scheduled import auto_tune, compact_trace, daily_reset, resync

SCHEDULES = {"daily-reset": {"schedules": [Cron("0 0 * * *", timezone="UTC")]},
             "auto-tune": {"schedules": [Interval(timedelta(hours=24))]},
             "resync": {"schedules": [Interval(timedelta(minutes=15))]},
             "compact-trace": {"schedules": [Cron("30 0 * * *", timezone="UTC")]}}


def build_deployments(strategy: str = "ma_cross", config_path: str | None = None) -> list[Any]:
    config_path = config_path or str(example_config())
    params = {"strategy": strategy, "config_path": config_path}
    tags = ["planar", f"strategy:{strategy}"]
    return [
        live_strategy.to_deployment(name=f"{strategy}-live", parameters=params, tags=tags),
        emergency_stop.to_deployment(name="emergency-stop", parameters={**params, "reason": "Manual trigger", "close_positions": False},
                                     tags=tags),
        daily_reset.to_deployment(name="daily-reset", parameters=params, tags=tags, **SCHEDULES["daily-reset"]),
        auto_tune.to_deployment(name="auto-tune", parameters={**params, "days": 30}, tags=tags, **SCHEDULES["auto-tune"]),
        resync.to_deployment(name="resync", parameters=params, tags=tags, **SCHEDULES["resync"]),
        compact_trace.to_deployment(name="compact-trace", parameters=params, tags=tags, **SCHEDULES["compact-trace"]),
    ]


def main(strategy: str = "ma_cross", config_path: str | None = None) -> None:  # pragma: no cover - runs until interrupted
    from prefect import serve

    serve(*build_deployments(strategy, config_path))
