"""``planar trace tail`` and ``planar trace between`` on a real trace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from planar_core.trace import EventTrace, read_trace

PLANAR = [sys.executable, "-m", "planar_core"]


def test_tail_and_between(tmp_path: Path) -> None:
    root = tmp_path / "traces" / "binance-abc"
    with EventTrace(str(root)) as et:
        for i in range(20):
            et.record("order_placed" if i % 2 == 0 else "trade_executed", client_order_id=f"c{i}", symbol="BTC/USDT", amount=1.0, seq=i)
    env = {"PLANAR_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    out = subprocess.run([*PLANAR, "trace", "tail", "-n", "3", "--json"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [17, 18, 19]
    out = subprocess.run(
        [*PLANAR, "trace", "tail", "-n", "2", "--kind", "order_placed", "--json"], capture_output=True, text=True, timeout=60, env=env
    )
    assert [json.loads(x)["seq"] for x in out.stdout.splitlines()] == [16, 18]
    ts = read_trace(str(root))["timestamp"]
    out = subprocess.run(
        [*PLANAR, "trace", "between", ts.iloc[5].isoformat(), ts.iloc[8].isoformat(), "--json", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert [json.loads(x)["seq"] for x in out.stdout.splitlines()] == [5, 6, 7]
    table = subprocess.run([*PLANAR, "trace", "tail", "-n", "2"], capture_output=True, text=True, timeout=60, env=env)
    assert "trade_executed" in table.stdout and table.returncode == 0
    bad = subprocess.run(
        [*PLANAR, "trace", "between", "yesterday-ish", "now", "--root", str(root)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "not a date" in bad.stderr
