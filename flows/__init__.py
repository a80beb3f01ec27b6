"""Prefect flows: thin wrappers over planar_core with Prefect's retries, logging and artifacts."""

import os

# Prefect's flow-run heartbeats every 30 s (its minimum; its default is 180) in every process that runs these flows
# (`planar run`, the stop agent, `planar serve`'s runner, the prefect.yaml deployments): the zombie automation marks
# a run Crashed after 90 s without one (deployments/automations.py). Set before Prefect reads its settings; a value
# the user set wins.
os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")

# The temporary Prefect server `planar run` starts when no PREFECT_API_URL is set would send usage telemetry to the
# internet, and log "ERROR ... Failed to send telemetry" on every offline run: off unless the user turns it on.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
