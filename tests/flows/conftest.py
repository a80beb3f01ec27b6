"""A real Prefect server (``prefect server start``) shared by the flow tests of the session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture(scope="session")
def prefect_api(prefect_home: Path) -> Iterator[str]:
    """The API URL of a real server; this process's Prefect client and the subprocesses the tests start use it."""
    import os

    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from deployments.local_server import prefect_server

    with prefect_server(prefect_home / "server", ui=True) as url:  # the UI too: test_operations takes screenshots
        old = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
        os.environ["PREFECT_API_URL"], os.environ["PREFECT_HOME"] = url, str(prefect_home)
        try:
            with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: str(prefect_home)}):
                yield url
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def flow_config(tmp_path: Path, sandbox, account, monkeypatch, prefect_api) -> Any:
    """Write a strategy config for the sandbox; credentials through the environment."""
    monkeypatch.setenv("EXCHANGE_API_KEY", account.api_key)
    monkeypatch.setenv("EXCHANGE_API_SECRET", account.api_secret)

    def make(name: str = "flowtest", **extra: Any) -> Path:
        cfg = {
            "name": name,
            "universe": ["BTC/USDT", "ETH/USDT"],
            "store_root": str(tmp_path / "store"),
            "sandbox_endpoint": {"url": sandbox.url, "ws_url": sandbox.ws_url},
            "rate_limits": {"weight_per_minute": 1_000_000, "orders_per_second": 1000},
            "connection": {"health_interval": 3600},
            "tick_interval": 0.2,
            "event_tracing": {"flush_interval": 0.5},
            "logic": "tests.flows.logic:RestingOrders",
            "logic_params": {"n": 2},
        }
        cfg.update(extra)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(cfg))
        return path

    return make
