"""Market data: the store merges, the check reports, and `planar data download` pages the sandbox's klines over real
HTTP with unmodified ccxt into the store, resumes, retries transient errors, refuses an unknown symbol in one line;
`planar backtest` then finds the data without --data."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

import pandas as pd

from planar_core.history.check import check_candles
from planar_core.history.store import frame, read_series, series_path, write_candles
from planar_core.sandbox import public
from planar_core.sandbox.server import SandboxServer


def test_the_check_reports_gaps_duplicates_and_bad_rows() -> None:
    rows = [[t * 60_000, 10, 11, 9, 10, 1] for t in (0, 1, 2, 5, 5, 6)] + [[7 * 60_000, 10, 9, 11, 10, 1]]
    c = check_candles(frame(rows), "1m")
    assert (c.rows, c.duplicates, c.bad_rows, c.gaps) == (7, 1, 1, [(120_000, 300_000, 2)])
    assert not c.clean and check_candles(frame(rows[:3]), "1m").clean


def test_the_store_merges_new_over_old_sorted_and_unique(tmp_path: Path) -> None:
    path = series_path(tmp_path, "binance", "BTC/USDT:USDT", "1m")
    assert path.parts[-2:] == ("BTC_USDT_USDT", "1m.parquet")
    write_candles(path, frame([[60_000, 1, 1, 1, 1, 1], [0, 2, 2, 2, 2, 2]]))
    held = write_candles(path, frame([[60_000, 3, 3, 3, 3, 3], [120_000, 4, 4, 4, 4, 4]]))
    assert held["timestamp"].tolist() == [0, 60_000, 120_000] and held["close"].tolist() == [2, 3, 4]
    pd.testing.assert_frame_equal(read_series(path), held)


async def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "planar_core", *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_download_pages_resumes_retries_and_feeds_the_backtest(sandbox: SandboxServer, tmp_path: Path) -> None:
    acct = sandbox.ex.add_account({"USDT": Decimal(10_000)})
    cfg = tmp_path / "bt.toml"
    cfg.write_text(
        f'name = "bt"\nuniverse = ["BTC/USDT"]\ntimeframes = ["1m"]\ninitial_cash = 10000\nstore_root = "{tmp_path / "store"}"\n'
        'logic = "planar_core.strategies.ma_cross:MACross"\nlogic_params = { fast = 3, slow = 8 }\n'
        f'[sandbox_endpoint]\nurl = "{sandbox.url}"\nws_url = "{sandbox.ws_url}"\n'
        f'[credentials]\napi_key = "{acct.api_key}"\napi_secret = "{acct.api_secret}"\n'
    )
    now = int(time.time() * 1000)
    since = now - now % 60_000 - 3 * 86_400_000  # three days: five pages of 1000
    sandbox.ex.faults.error_rate = 0.3  # 503s: retried
    code, out, err = await cli(
        "data", "download", "BTC/USDT", "--timeframe", "1m", "--since", str(since), "--config", str(cfg), cwd=tmp_path
    )
    assert code == 0, err
    sandbox.ex.faults.error_rate = 0.0
    path = series_path(tmp_path / "store" / "market_data", "binance", "BTC/USDT", "1m")
    held = read_series(path)
    c = check_candles(held, "1m")
    assert c.clean and c.first_ms == since and len(held) >= 3 * 1440 - 1, out
    # the rows are the exchange's own klines
    sample = public.klines(sandbox.ex, "spot", {"symbol": "BTCUSDT", "interval": "1m", "startTime": str(since), "limit": "500"})
    want = [[int(r[0]), *map(float, r[1:6])] for r in sample]
    assert held.iloc[: len(want)].to_numpy().tolist() == want
    # a second download resumes: nothing stored twice, nothing missing
    code, out, err = await cli("data", "download", "BTC/USDT", "--since", str(since), "--config", str(cfg), cwd=tmp_path)
    assert code == 0, err
    again = read_series(path)
    assert check_candles(again, "1m").clean and again["timestamp"].iloc[: len(held)].tolist() == held["timestamp"].tolist()
    # an unknown symbol: one line, exit 2, at once
    code, out, err = await cli("data", "download", "NOPE/USDT", "--since", str(since), "--config", str(cfg), cwd=tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "NOPE/USDT" in err, err
    code, out, err = await cli("data", "check", "BTC/USDT", "--config", str(cfg), cwd=tmp_path)
    assert code == 0 and "0 gaps" in out, out + err
    # the backtest finds the stored candles without --data
    start = str(since + 2 * 86_400_000)
    code, out, err = await cli("backtest", str(cfg), "--start", start, "--json", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["bars"] >= 1439 and summary["trades"] > 0
