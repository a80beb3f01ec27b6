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
    # a kind that is no kind: one line, exit 2, the near ones named (it printed nothing and exited 0)
    typo = subprocess.run([*PLANAR, "trace", "tail", "--kind", "order_place"], capture_output=True, text=True, timeout=60, env=env)
    assert typo.returncode == 2 and "no such event kind" in typo.stderr and "order_placed" in typo.stderr, typo.stderr
    assert len(typo.stderr.strip().splitlines()) == 1
    quiet = subprocess.run([*PLANAR, "trace", "tail", "--kind", "order_cancelled"], capture_output=True, text=True, timeout=60, env=env)
    assert quiet.returncode == 0, quiet.stderr  # a known kind with no events here is an empty answer


def test_stats_export_and_finding_the_trace(tmp_path: Path) -> None:
    """``trace stats`` counts what the trace holds, ``trace export --to parquet`` writes every event as the trace
    reads, and without --root a trace is found from --config or from the last demo run in ./demo-output."""
    import pandas as pd

    from planar_core.trace.files import account_id

    store = tmp_path / "demo-output" / "20260101T000000" / "store"
    root = store / "traces" / account_id("binance", "k1")
    with EventTrace(str(root)) as et:
        for i in range(30):
            et.record(
                ["order_placed", "trade_executed", "funding_paid"][i % 3], client_order_id=f"c{i}", symbol="BTC/USDT", amount=1.0 + i, seq=i
            )
        et.flush()
    env = {"PLANAR_HOME": str(tmp_path / "nowhere"), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    run = lambda *args: subprocess.run([*PLANAR, "trace", *args], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)  # noqa: E731
    out = run("stats", "--json")
    assert out.returncode == 0, out.stderr
    assert "last demo run" in out.stderr
    stats = json.loads(out.stdout)
    assert stats["events"] == 30 and stats["by_kind"] == {"funding_paid": 10, "order_placed": 10, "trade_executed": 10}
    assert sum(stats["by_day"].values()) == 30 and stats["bytes"] > 0

    out = run("export", str(tmp_path / "t.parquet"), "--to", "parquet", "--kind", "trade_executed")
    assert out.returncode == 0, out.stderr
    back = pd.read_parquet(tmp_path / "t.parquet")
    traced = read_trace(str(root))
    traced = traced[traced["kind"] == "trade_executed"].reset_index(drop=True)
    assert list(back["client_order_id"]) == list(traced["client_order_id"]) and list(back["amount"]) == list(traced["amount"])
    assert (back["timestamp"] == traced["timestamp"]).all()
    assert [json.loads(p)["seq"] for p in back["payload"]] == [p["seq"] for p in traced["payload"]]
    assert run("export", str(tmp_path / "t.csv"), "--to", "csv").returncode == 2

    cfg = tmp_path / "s.toml"
    cfg.write_text(f'name = "s"\nstore_root = "{store}"\nuniverse = ["BTC/USDT"]\n[credentials]\napi_key_env = "K"\napi_secret_env = "S"\n')
    env.update(K="k1", S="s1")
    out = run("tail", "-n", "1", "--json", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["seq"] == 29
    env.update(K="another-key")  # another account: no trace of it here, a one-line error
    assert run("tail", "--config", str(cfg)).returncode == 2
    del env["K"]  # no key in the environment: said so (it read the trace of an account named after no key)
    out = run("stats", "--config", str(cfg))
    assert out.returncode == 2 and "K is not set" in out.stderr, out.stderr
    bare = tmp_path / "bare"
    bare.mkdir()
    empty = subprocess.run([*PLANAR, "trace", "tail"], capture_output=True, text=True, timeout=60, env=env, cwd=bare)
    assert empty.returncode == 2 and "pass --root or --config" in empty.stderr


def strict(line: str) -> dict[str, object]:
    """A strict JSON parser's reading: NaN and Infinity are not JSON."""

    def refuse(const: str) -> object:
        raise ValueError(f"not JSON: {const}")

    value = json.loads(line, parse_constant=refuse)
    assert isinstance(value, dict)
    return value


def test_json_output_is_strict_json(tmp_path: Path) -> None:
    """`--json` wrote bare NaN for numbers an event does not have (strict parsers refused the line): now null."""
    root = tmp_path / "traces" / "binance-nan"
    with EventTrace(str(root)) as et:
        et.record("order_placed", client_order_id="c1", symbol="BTC/USDT", amount=1.0, price=float("nan"))
        et.record("balance_changed", currency="USDT", free=float("inf"))
        et.record("trade_executed", client_order_id="c1", symbol="BTC/USDT", amount=1.0, price=100.0)
    env = {"PLANAR_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    out = subprocess.run([*PLANAR, "trace", "tail", "-n", "3", "--json"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    rows = [strict(line) for line in out.stdout.splitlines()]
    assert [r["kind"] for r in rows] == ["order_placed", "balance_changed", "trade_executed"]
    assert rows[0].get("price") is None and rows[2]["price"] == 100.0
    stats = subprocess.run([*PLANAR, "trace", "stats", "--json", "--root", str(root)], capture_output=True, text=True, timeout=60)
    assert strict(stats.stdout)["events"] == 3


def test_tables_are_not_cut_when_piped(tmp_path: Path) -> None:
    """Piped (not a terminal, no COLUMNS), rich assumed 80 columns and the details column ended in an ellipsis."""
    root = tmp_path / "traces" / "binance-wide"
    reason = "max_position: 0.7399 of equity > 0.5 (BTC/USDT buy 0.0123 at 104250.5; raise risk.max_position or trade less)"
    with EventTrace(str(root)) as et:
        et.record("risk_rejected", symbol="BTC/USDT", side="buy", amount=0.0123, reason=reason)
    env = {"PLANAR_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}  # no COLUMNS
    out = subprocess.run([*PLANAR, "trace", "tail", "-n", "1"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert f"reason={reason}" in out.stdout, out.stdout
