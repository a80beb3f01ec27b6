"""An alert with no channel configured: an info alert is logged at INFO (issue: every `s.alert(..., "info")` was
logged as a WARNING "no alert dispatcher configured"); warning, error and critical ones at WARNING, since whoever
raised them logged the event at its own level already (one CRITICAL line per event, not two)."""

from __future__ import annotations

import logging

import pytest

from planar_core.alerts.dispatcher import send_alert


@pytest.mark.parametrize(
    ("level", "expected"), [("info", logging.INFO), ("warning", logging.WARNING), ("error", logging.WARNING), ("critical", logging.WARNING)]
)
def test_an_alert_without_channels_is_logged_at_info_or_warning(level: str, expected: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="planar.alerts"):
        assert send_alert(object(), "bought 0.1 BTC/USDT", level) is False
    [record] = [r for r in caplog.records if r.name == "planar.alerts"]
    assert record.levelno == expected and "bought 0.1 BTC/USDT" in record.getMessage() and f"alert ({level};" in record.getMessage()
