"""The runner's logic host on a stub strategy: events reach the callbacks in order, on the loop, isolated."""

from __future__ import annotations

import asyncio
import logging

import pytest

from planar_core.config import ConfigError
from planar_core.engine.notices import BarClosed
from planar_core.engine.strategy import Strategy
from planar_core.logic import Logic, LogicParams
from planar_core.model import AssetInstance, Candle
from planar_core.runner import LogicError, load_logic, run

from .stubs import sink_of, stub_strategy


class Recorder(Logic):
    class Params(LogicParams):
        fail_on: int = -1

    params: Params

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.calls: list[str] = []

    async def on_start(self, s: Strategy) -> None:
        self.calls.append("start")

    async def on_bar(self, s: Strategy, ai: AssetInstance, timeframe: str, bar: Candle) -> None:
        self.calls.append(f"bar {bar.timestamp}")
        if bar.timestamp == self.params.fail_on:
            raise ValueError("boom")

    async def on_stop(self, s: Strategy) -> None:
        self.calls.append("stop")


def bar(ts: int) -> Candle:
    return Candle(ts, 1.0, 1.0, 1.0, 1.0, 1.0)


async def drive(s: Strategy, logic: Logic, bars: list[int], policy: str = "log") -> object:
    stop = asyncio.Event()
    task = asyncio.create_task(run(s, logic, stop=stop, logic_errors=policy))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    ai = s.universe["BTC/USDT"]
    for ts in bars:
        s.notify(BarClosed(ai, "1m", bar(ts)))
    stop.set()
    return await task


async def test_closed_bars_reach_on_bar_in_order_and_no_tick_without_on_tick() -> None:
    s = stub_strategy()
    logic = Recorder()
    result = await drive(s, logic, [60_000, 120_000, 180_000])
    assert logic.calls == ["start", "bar 60000", "bar 120000", "bar 180000", "stop"]
    assert result.ticks == 0 and result.callbacks["on_bar"] == 3  # type: ignore[attr-defined]


async def test_a_failing_callback_is_recorded_counted_and_the_engine_goes_on() -> None:
    s = stub_strategy()
    logic = Recorder(Recorder.Params(fail_on=120_000))
    result = await drive(s, logic, [60_000, 120_000, 180_000])
    assert logic.calls[-2:] == ["bar 180000", "stop"]
    assert result.callback_errors["on_bar"] == 1  # type: ignore[attr-defined]
    (ev,) = sink_of(s).of("logic_error")
    assert ev["callback"] == "on_bar" and "boom" in str(ev["reason"])
    assert not s.halted


class Failing(Logic):
    async def on_bar(self, s: Strategy, ai: AssetInstance, timeframe: str, bar: Candle) -> None:
        raise ValueError(f"bad bar {bar.timestamp}")


async def test_a_repeated_error_logs_its_traceback_once_then_counts(caplog: pytest.LogCaptureFixture) -> None:
    """It printed a full traceback on every bar (12 in 12 s)."""
    s = stub_strategy()
    with caplog.at_level(logging.ERROR, logger="planar.runner"):
        result = await drive(s, Failing(), [60_000 * i for i in range(1, 13)])
    assert result.callback_errors["on_bar"] == 12  # type: ignore[attr-defined]
    assert len(sink_of(s).of("logic_error")) == 12  # every one in the trace
    records = [r for r in caplog.records if "strategy logic failed" in r.getMessage()]
    assert [r.exc_info is not None for r in records] == [True, False, False]  # the 1st with its traceback; the 2nd, 10th
    assert "again (10 times" in records[-1].getMessage() and "bad bar 600000" in records[-1].getMessage()


async def test_policy_halt_halts_and_policy_fail_raises() -> None:
    s = stub_strategy()
    result = await drive(s, Recorder(Recorder.Params(fail_on=60_000)), [60_000, 120_000], policy="halt")
    assert s.halted and "logic error in on_bar" in str(s.state.halt_reason)
    assert result.reason == "halted"  # type: ignore[attr-defined]
    with pytest.raises(LogicError, match="on_bar: ValueError: boom"):
        await drive(stub_strategy(), Recorder(Recorder.Params(fail_on=60_000)), [60_000], policy="fail")


def test_params_are_validated_frozen_and_versioned() -> None:
    logic = load_logic("tests.unit.test_logic_host:Recorder", {"fail_on": 5})
    assert logic.params == Recorder.Params(fail_on=5)
    with pytest.raises(Exception, match="frozen"):
        logic.params.fail_on = 6  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"logic_params\.fail_on: Input should be a valid integer"):
        load_logic("tests.unit.test_logic_host:Recorder", {"fail_on": "x"})
    with pytest.raises(ConfigError, match=r"not a planar_core\.Logic subclass"):
        load_logic("tests.unit.stubs:NoExchange", {})


class Old(Logic):
    api_version = 0


def test_a_logic_of_another_interface_version_is_refused() -> None:
    with pytest.raises(ConfigError, match="interface v0; this engine runs v1"):
        load_logic("tests.unit.test_logic_host:Old", {})
