"""Bad input and hostile answers: a named error, no crash, nothing wrong written; secrets never written anywhere."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from planar_core.alerts import LoggingConfig, setup_live_logging
from planar_core.model import UNKNOWN, OrderType, Side
from planar_core.sandbox import Faults
from planar_core.trace import read_trace

from ..conftest import wait_for
from .harness import verify

PLANAR = [sys.executable, "-m", "flows"]  # the full planar command


@pytest.mark.parametrize(
    ("text", "suffix", "named"),
    [
        ("name = [", ".toml", "not valid TOML"),
        ("- just\n- a list\n", ".yaml", "top level"),
        ('name = "x"\nbogus_field = 1\n', ".toml", "bogus_field"),
        ('name = "x"\n[risk]\nmax_drawdown = 3\n', ".toml", "risk.max_drawdown"),
        ('name = "x"\ntimeframes = ["2m"]\n', ".toml", "timeframes"),
    ],
)
def test_malformed_config_files_fail_with_one_line(tmp_path: Path, text: str, suffix: str, named: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    r = subprocess.run([*PLANAR, "run", str(path), "--duration", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and named in r.stderr and "Traceback" not in r.stderr


async def test_malformed_and_truncated_answers(strategy_factory, sandbox, account) -> None:
    """A truncated answer to an order request is not a failure: the order may be booked (here it is). The order
    stays 'unknown', the resolver asks the exchange until it can answer, and nothing is invented meanwhile."""
    s = await strategy_factory(timeouts={"order_placement": 1.0})
    sandbox.ex.faults = Faults(malformed_rate=1.0, paused_user_stream=True)  # REST answers truncated, the stream silent
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=0.5) is UNKNOWN
    (order,) = s.universe["BTC/USDT"].orders.values()
    assert order.status == "unknown" and s.sink.of("order_unknown")[-1]["client_order_id"] == order.client_order_id
    assert not s.sink.of("order_failed")
    sandbox.ex.faults = Faults()
    await wait_for(lambda: order.status == "closed", timeout=10)
    assert s.running and all(h["running"] or name in ("health", "resolver") for name, h in s.watcher_health().items())
    await verify(s, sandbox, account)  # the engine's own view, no resync


async def test_absurd_values_are_refused(strategy_factory, sandbox) -> None:
    s = await strategy_factory(balance_watcher={"interval": 0.2, "use_websocket": False})
    good = {k: vars(v).copy() for k, v in s.holdings.balances.items()}
    s.universe["BTC/USDT"].last_price = None
    sandbox.ex.faults = Faults(absurd_values=True)
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None  # price 0: no reference price
    assert s.sink.of("order_failed")[-1]["reason"].startswith("MalformedResponse: fetch_ticker: unexpected response shape")
    await wait_for(lambda: s.watcher_health()["balance"]["failures"] >= 3)  # several polls answered with negative balances
    assert {k: vars(v) for k, v in s.holdings.balances.items()} == good  # nothing wrong was written
    sandbox.ex.faults = Faults()


async def test_no_secret_in_any_file_the_run_wrote(strategy_factory, sandbox, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    key, secret = "KEYscan0123456789abcdefSECRETS", "SECRETscan9876543210fedcbaKEYS"
    acct = sandbox.ex.add_account({"USDT": 10_000, "BTC": 1}, api_key=key, api_secret=secret)
    store = tmp_path / "store"
    # a short placement budget: the order the exchange answers with errors is unknown after 3 s of look-ups, not 30
    s = await strategy_factory(acct=acct, store_root=str(store), order_monitoring={"retries": 1}, timeouts={"order_placement": 3.0})
    setup_live_logging(
        LoggingConfig(level="DEBUG", console=False), s.config.store_path, s.name, "binance", secrets=s.config.credentials.secret_values()
    )
    await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=1)
    sandbox.ex.faults = Faults(error_rate=1.0)
    await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=0.2)
    sandbox.ex.faults = Faults()
    await s.emergency_stop("scan")
    await s.stop()
    texts = [p.read_bytes().decode("utf-8", "replace") for p in store.rglob("*") if p.is_file()]
    for trace_dir in (store / "traces").iterdir():
        texts.append(read_trace(str(trace_dir)).to_string())
    texts.append("\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records))
    assert len(texts) > 5
    for text in texts:
        assert key not in text and secret not in text
    for h in list(logging.getLogger("planar").handlers):
        logging.getLogger("planar").removeHandler(h)
        h.close()


def _cli_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    (tmp_path / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    (tmp_path / "nologic.toml").write_text('name = "x"\nlogic = "no_such_module:Logic"\n')
    (tmp_path / "badparams.toml").write_text('name = "x"\n[logic_params]\nfastest = 3\n')
    (tmp_path / "bad.toml").write_text('name = "x"\n[risk]\nmax_drawdown = 7\n')
    (tmp_path / "afile").write_text("not a trace")
    (tmp_path / "strategies").mkdir(exist_ok=True)  # a strategy file with a syntax error, beside its config
    (tmp_path / "strategies" / "typo_strategy.py").write_text("from planar_core.logic import Logic\n\nclass Typo(Logic)\n    pass\n")
    (tmp_path / "strategies" / "typo.toml").write_text('name = "x"\nlogic = "typo_strategy:Typo"\n')
    return [
        (["run", str(tmp_path / "latin1.toml")], "not UTF-8"),
        (["run", str(tmp_path / "nologic.toml")], "logic: cannot import module 'no_such_module'"),
        (["run", str(tmp_path / "badparams.toml")], "logic_params.fastest: Extra inputs are not permitted"),
        (["emergency-stop", "x", "--config", str(tmp_path / "bad.toml")], "risk.max_drawdown"),
        (["trace", "tail", "--root", str(tmp_path / "afile")], "is not a trace: it is a file"),
        (["trace", "tail", "--root", str(tmp_path / "missing" / "trace")], "is not a trace: no such directory"),
        (["trace", "between", "2026-01-01", "2026-01-02", "--root", str(tmp_path / "missing" / "trace")], "no such directory"),
        (["sandbox", "serve", "--balance", "USDT=nan"], "--balance"),
        (["sandbox", "serve", "--port", "70000"], "--port"),
        (["trace", "tail", "-n", "0"], "-n"),
        (["no-such-command"], "No such command"),
        (["run", "--bogus", "x.toml"], "No such option: --bogus"),
        (["run", str(tmp_path / "strategies" / "typo.toml")], "typo_strategy.py:3: expected ':'"),
        (["run", str(tmp_path / "missing.toml")], "config file not found"),  # missing data: files the user named
        (["sandbox", "serve", "--data", str(tmp_path / "missing.csv")], "--data: no such file"),
        (["sandbox", "serve", "--data", str(tmp_path / "afile")], "drives no market"),
    ]


def test_a_sandbox_port_in_use_is_one_line_with_exit_2() -> None:
    """It printed asyncio's 59-line OSError traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([*PLANAR, "sandbox", "serve", "--port", str(port)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, (
        r.stderr
    )


def test_python_m_flows_cli_is_the_planar_command() -> None:
    """``python -m flows.cli nope`` printed nothing and exited 0 (no ``__main__`` guard: a newcomer's trial)."""
    r = subprocess.run([sys.executable, "-m", "flows.cli", "nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "No such command 'nope'" in r.stderr, r.stderr


@pytest.mark.parametrize("case", range(13))
def test_cli_refusals_are_one_line_with_exit_2(tmp_path: Path, case: int) -> None:
    args, named = _cli_cases(tmp_path)[case]
    r = subprocess.run([*PLANAR, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert named in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "missing").exists()  # a reader never creates the directories it was pointed at


async def test_sandbox_admin_refuses_a_price_factor_that_is_not_a_positive_number(sandbox) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for factor in (0, -1, "nan", "inf"):
            async with http.post(f"{sandbox.url}/admin/price", json={"symbol": "BTCUSDT", "factor": factor}) as r:
                assert r.status == 400 and "factor" in (await r.json())["error"]
        async with http.post(f"{sandbox.url}/admin/price", json={"symbol": "BTCUSDT", "factor": 1.1}) as r:
            assert r.status == 200
