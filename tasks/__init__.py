"""Prefect tasks: thin wrappers over planar_core calls, with retries and timeouts."""
