"""JSON live-trading logs: fields, rotation, and secrets redacted everywhere (files and Prefect)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from planar_core.alerts import LoggingConfig, setup_live_logging

API_KEY = "AKIAplanarTESTkey0123456789abcdef"
API_SECRET = "s3cr3t-planar-TEST-value-zyxwvu9876"
PASSWORD = "hunter2-planar-pw"
ALL = (API_KEY, API_SECRET, PASSWORD)


def log_secrets_everywhere(log: logging.Logger) -> None:
    log.info("key is %s and secret is %s", API_KEY, API_SECRET)
    log.warning(f"connecting with password={PASSWORD}")
    log.info("order placed", extra={"event": "order_placed", "credentials": {"api_key": API_KEY}, "note": f"sig {API_SECRET}"})
    log.info('payload {"apiKey": "unconfigured-key-value-123", "token": "tok-abc-unconfigured"}')
    try:
        raise RuntimeError(f"auth failed for {API_KEY}:{API_SECRET}")
    except RuntimeError:
        log.exception("exchange error")


@pytest.fixture
def live_log(tmp_path: Path):
    logger, path, _redactor = setup_live_logging(
        LoggingConfig(level="debug", console=False), tmp_path, "scalper", "binance", secrets=[API_KEY, API_SECRET, PASSWORD]
    )
    yield logger, path
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


def test_json_lines_with_context_fields(live_log) -> None:
    _logger, path = live_log
    logging.getLogger("planar.engine").info("filled", extra={"symbol": "BTC/USDT", "amount": 0.01})
    rec = json.loads(path.read_text().splitlines()[-1])
    assert rec["message"] == "filled" and rec["level"] == "INFO" and rec["logger"] == "planar.engine"
    assert rec["strategy"] == "scalper" and rec["exchange"] == "binance" and rec["symbol"] == "BTC/USDT"
    assert rec["timestamp"].endswith("Z") and rec["timestamp"][:4].isdigit()
    assert path.name.startswith("live_trading_") and path.parent.name == "logs"


def test_secrets_never_reach_the_file_or_console(live_log, capsys) -> None:
    logger, path = live_log
    stream = io.StringIO()
    console = logging.StreamHandler(stream)
    for f in logger.handlers[0].filters:
        console.addFilter(f)
    logger.addHandler(console)
    log_secrets_everywhere(logging.getLogger("planar.engine"))
    text = path.read_text() + stream.getvalue()
    assert "auth failed" in text and "order placed" in text and "Traceback" in text
    for secret in (*ALL, "unconfigured-key-value-123", "tok-abc-unconfigured"):
        assert secret not in text


def test_rotation_keeps_max_files(tmp_path: Path) -> None:
    logger, path, _ = setup_live_logging(LoggingConfig(max_size=2_000, max_files=3, console=False), tmp_path, "s", "x")
    for i in range(400):
        logger.info("line %d %s", i, "x" * 50)
    files = sorted(p.name for p in path.parent.iterdir())
    assert len(files) == 4 and path.name in files  # the live file + 3 rotated
    assert all(p.stat().st_size <= 2_500 for p in path.parent.iterdir())
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


def test_bad_logging_config_names_the_field() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_files"):
        LoggingConfig(max_files=0)
    with pytest.raises(ValidationError, match="level"):
        LoggingConfig(level="chatty")


def test_prefect_captured_logs_are_redacted(tmp_path: Path) -> None:
    from prefect import flow, get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.testing.utilities import prefect_test_harness

    from planar_core.alerts import Redactor
    from tasks.log_forwarding import forward_engine_logs

    @flow
    def leaky() -> str:
        from prefect.runtime import flow_run

        redactor = Redactor(ALL)
        forward_engine_logs(redactor)
        get_run_logger().info("run logger sees %s / %s", API_KEY, PASSWORD)
        log_secrets_everywhere(logging.getLogger("planar.engine"))
        return flow_run.id

    with prefect_test_harness():
        run_id = leaky()
        from prefect.logging.handlers import APILogHandler

        async def read() -> list[str]:
            await APILogHandler.aflush()
            async with get_client() as client:
                logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
                return [lg.message for lg in logs]

        import asyncio

        messages = asyncio.run(read())
    for h in list(logging.getLogger("planar").handlers):
        logging.getLogger("planar").removeHandler(h)
    text = "\n".join(messages)
    assert "run logger sees" in text and "auth failed" in text
    for secret in ALL:
        assert secret not in text
