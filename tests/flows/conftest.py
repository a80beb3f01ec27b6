"""Prefect's test harness (a temporary API server), shared by the flow tests of the session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def flow_config(tmp_path: Path, sandbox, account, monkeypatch, prefect_api) -> Any:
    """Write a strategy config for the sandbox; credentials through the environment."""
    monkeypatch.setenv("EXCHANGE_API_KEY", account.api_key)
    monkeypatch.setenv("EXCHANGE_API_SECRET", account.api_secret)

    def make(name: str = "flowtest", **extra: Any) -> Path:
        cfg = {"name": name, "universe": ["BTC/USDT", "ETH/USDT"], "store_root": str(tmp_path / "store"),
               "sandbox_endpoint": {"url": sandbox.url, "ws_url": sandbox.ws_url},
               "rate_limits": {"weight_per_minute": 1_000_000, "orders_per_second": 1000},
               "connection": {"health_interval": 3600}, "tick_interval": 0.2, "event_tracing": {"flush_interval": 0.5},
               "logic": "tests.flows.logic:RestingOrders", "logic_params": {"n": 2}}
        cfg.update(extra)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(cfg))
        return path

    return make
