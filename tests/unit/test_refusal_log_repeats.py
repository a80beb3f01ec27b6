"""The same refusal again and again is one log line a minute with its count (a risk refusal repeated 93 times in
60 s was 93 warnings); every one is still in the trace."""

from __future__ import annotations

import logging

import pytest

from planar_core.alerts.repeats import Repeats
from planar_core.engine import orders
from planar_core.model.refusals import Refusal, RefusalReason

from .stubs import sink_of, stub_strategy


def test_a_repeated_refusal_is_logged_once_a_minute_with_its_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(orders, "REPEATS", Repeats(window_s=60.0, clock=lambda: now[0]), raising=False)
    s = stub_strategy()
    ai = s.universe["BTC/USDT"]
    with caplog.at_level(logging.WARNING, logger="planar.engine.orders"):
        for i in range(93):
            now[0] += 0.5  # 93 refusals in 46.5 s
            orders.refused(
                s,
                ai,
                Refusal(RefusalReason.RISK_LIMIT, f"max_position: {0.74 + i / 1e4:.4f} of equity > 0.5"),
                "buy",
                1.0,
                None,
                "risk_rejected",
            )
        orders.refused(
            s, ai, Refusal(RefusalReason.INSUFFICIENT_FUNDS, "insufficient USDT"), "buy", 1.0, None
        )  # another reason: its own line
        now[0] += 60.0
        orders.refused(s, ai, Refusal(RefusalReason.RISK_LIMIT, "max_position: 0.75 of equity > 0.5"), "buy", 1.0, None, "risk_rejected")
    lines = [r.getMessage() for r in caplog.records if r.name == "planar.engine.orders"]
    assert len(lines) == 3, lines
    assert "rejected by risk" in lines[0] and "more like it" not in lines[0]
    assert "insufficient USDT" in lines[1]
    assert "(92 more like it in the last 60 s, not logged)" in lines[2]
    assert len(sink_of(s).of("risk_rejected")) == 94  # the trace has every one
