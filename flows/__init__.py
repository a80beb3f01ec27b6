"""Prefect flows: thin wrappers over planar_core with Prefect's retries, logging and artifacts."""
