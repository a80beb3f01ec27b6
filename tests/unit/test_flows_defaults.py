"""Settings the ``flows`` package sets before Prefect reads them, in a fresh interpreter as ``planar`` starts."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = (
    "import flows\n"
    "from prefect.settings import get_current_settings as s\n"
    "print(s().server.analytics_enabled, s().flows.heartbeat_frequency)\n"
)


def run(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY")}
    out = subprocess.run([sys.executable, "-c", CODE], env={**clean, **env}, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip()


def test_no_telemetry_from_an_offline_run_and_heartbeats_every_30_s() -> None:
    """The temporary server of `planar run` logged "ERROR ... Failed to send telemetry" on every offline run."""
    assert run() == "False 30"


def test_a_value_the_user_set_wins() -> None:
    assert run(PREFECT_SERVER_ANALYTICS_ENABLED="true", PREFECT_FLOWS_HEARTBEAT_FREQUENCY="60") == "True 60"
