"""Persisted files that cannot be read back (issue 25, item 9): each one, truncated or garbled in turn, stops the
engine with one line naming it (or has its documented recovery), and nothing trades on a state nobody could read:
the sandbox's admin snapshot shows no order of the strategy. ``planar state reset`` is driven end to end in a
subprocess. Every comparison is made before anything repairs the engine's view."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planar_core.engine.lease import LeaseHeldError
from planar_core.exchange.client_ids import ClientOrderIds, parse
from planar_core.model import PENDING, OrderType, Side
from planar_core.risk import operations
from planar_core.state import PersistedState, StateStore
from planar_core.storage import CorruptStateError

from ..conftest import wait_for
from .test_order_call import bid_ask, snapshot


def truncate(path: Path, keep: float = 0.5) -> None:
    """What a copy cut short, a full disk or a crash without fsync leaves: the first part of the file."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])


def one_line_naming(exc: BaseException, path: Path | str, remedy: str) -> None:
    msg = str(exc)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    assert remedy in msg, msg


def orders_of(sandbox, account, s) -> list[dict]:
    return [o for o in snapshot(sandbox, account)["orders"] if s.ids.owns(o["client_order_id"])]


async def rest_one(s, sandbox) -> object:
    bid, _ = bid_ask(sandbox, "BTCUSDT")
    return await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.001, price=round(bid * 0.7, 2), waitfor=0)


# ------------------------------------------------------------------------------------------------------ state.json
async def test_a_truncated_state_file_refuses_the_start(strategy_factory, sandbox, account, tmp_path: Path) -> None:
    first = await strategy_factory("st")
    first.state_store.update(tuned_params={"limit_order_offset": 0.1}, peak_equity=123.0)
    await first.stop()
    path = tmp_path / "store" / "st" / "state.json"
    truncate(path)

    s = await strategy_factory("st", start=False)
    with pytest.raises(CorruptStateError) as err:  # before: start() succeeded on it
        await s.start()
    one_line_naming(err.value, path, "planar state reset st --reason")
    assert "not valid JSON (truncated?)" in str(err.value)
    assert not s.running and not s.lease.held
    assert orders_of(sandbox, account, s) == []


async def test_a_state_file_damaged_while_running_halts_once_and_trades_nothing(strategy_factory, sandbox, account, client, caplog) -> None:
    s = await strategy_factory("run", startup_sync={"foreign_orders": "ignore"})
    s.state_store.update(peak_equity=1.0)
    path = s.state_store.path
    truncate(path)
    caplog.set_level(logging.INFO)
    for _ in range(3):  # balance updates from outside the engine: each one runs the breakers, which read the state
        before = s.cash("USDT").total
        await client.create_order("BTC/USDT", "market", "buy", 0.001)
        await wait_for(lambda before=before: s.cash("USDT").total != before, 10)
    assert await rest_one(s, sandbox) is None
    assert orders_of(sandbox, account, s) == []  # nothing traded on the unread state (the exchange's word)
    criticals = [r for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert len(criticals) == 1 and str(path) in criticals[0].getMessage()  # said once, naming the file
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []  # before: a traceback per balance update
    assert s.halted and str(path) in (s.state.halt_reason or "")

    with pytest.raises(CorruptStateError):  # a halt nobody can read is not lifted: not by the engine ...
        s.rearm()
    with pytest.raises(CorruptStateError):  # ... nor by the re-arm flow's operation (before: it answered re-armed)
        await operations.rearm(s, "try", "ops")
    assert s.halted
    StateStore(s.config.shared_root).save(PersistedState(halted=True, halt_reason="reset by hand"))  # what a reset writes
    assert s.halted and s.state.halt_reason == "reset by hand"  # readable again: the file's word, still halted
    s.rearm()
    assert await rest_one(s, sandbox) is PENDING
    assert len(orders_of(sandbox, account, s)) == 1


# --------------------------------------------------------------------------------------- client_order_seq.json
async def test_a_damaged_sequence_refuses_the_start_and_issues_no_id(strategy_factory, sandbox, account, tmp_path: Path) -> None:
    first = await strategy_factory("seq")
    assert await rest_one(first, sandbox) is PENDING
    epoch = first.ids.epoch
    await first.stop()
    path = tmp_path / "store" / "seq" / "client_order_seq.json"
    truncate(path, 0.8)

    s = await strategy_factory("seq", start=False)  # before: a bare JSONDecodeError here, naming no file
    with pytest.raises(CorruptStateError) as err:
        await s.start()
    one_line_naming(err.value, path, "planar state reset seq --reason")
    with pytest.raises(CorruptStateError):
        s.ids.next()  # never an id on a guess (a new epoch, or seq 0 again)
    assert len(orders_of(sandbox, account, s)) == 1  # only the first engine's order
    assert {parse(o["client_order_id"]).epoch for o in orders_of(sandbox, account, s)} == {epoch}


# ------------------------------------------------------------------------------------------------ intents.jsonl
async def test_a_damaged_journal_line_refuses_the_start_a_torn_last_one_does_not(
    strategy_factory, sandbox, account, tmp_path: Path
) -> None:
    first = await strategy_factory("jr")
    assert await rest_one(first, sandbox) is PENDING
    assert await rest_one(first, sandbox) is PENDING
    await first.stop()
    path = tmp_path / "store" / "jr" / "intents.jsonl"
    lines = path.read_bytes().split(b"\n")
    assert len(lines) >= 3
    good = path.read_bytes()

    path.write_bytes(good + b'{"t":1,"kind":"intent","cid":"jr-x')  # a torn last write: tolerated, as before
    s = await strategy_factory("jr")
    assert s.running
    await s.stop()

    lines[0] = lines[0][: len(lines[0]) // 2]  # the first record cut in the middle, the others after it
    path.write_bytes(b"\n".join(lines))
    s = await strategy_factory("jr", start=False)
    with pytest.raises(CorruptStateError) as err:  # before: skipped, and the start-up compaction dropped it for good
        await s.start()
    one_line_naming(err.value, f"{path} line 1", "planar state reset jr --reason")
    assert path.read_bytes() == b"\n".join(lines)  # left as it was
    assert len(orders_of(sandbox, account, s)) == 2


# ---------------------------------------------------------------------------------------- the account trace manifest
async def test_an_unreadable_trace_manifest_refuses_the_start_a_recoverable_one_warns(strategy_factory, sandbox, account, caplog) -> None:
    first = await strategy_factory("tm")
    assert await rest_one(first, sandbox) is PENDING
    root = Path(first.sink.root)
    await first.stop()
    truncate(root / "manifest.json")
    caplog.set_level(logging.WARNING)
    s = await strategy_factory("tm")  # the copy lists every segment: recovered, said, written back
    assert s.running and any("recovered from its copy" in r.getMessage() for r in caplog.records)
    assert len(s.sink.of("order_placed")) == 1  # what the earlier run traced is there
    await s.stop()

    truncate(root / "manifest.json")
    (root / "manifest.json.bak").unlink()
    s = await strategy_factory("tm", start=False)  # it builds (an e-stop could cancel), recording to its side trace
    assert "side-trace" in s.sink.root
    with pytest.raises(CorruptStateError) as err:
        await s.start()
    one_line_naming(err.value, root / "manifest.json", f"planar trace repair --root {root}")
    assert not s.running and len(orders_of(sandbox, account, s)) == 1


async def test_a_damaged_takeover_record_refuses_the_start(strategy_factory, sandbox, account, tmp_path: Path) -> None:
    path = tmp_path / "store" / "tk" / "takeovers.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"epochs": {"x8abcde": {"at_ms": 17')
    s = await strategy_factory("tk", start=False)
    with pytest.raises(CorruptStateError) as err:  # before: a ValueError, not the typed error the live flow stops on
        await s.start()
    one_line_naming(err.value, path, "fix it or remove it")
    assert orders_of(sandbox, account, s) == []


# --------------------------------------------------------------------------------------------------- lease holder
async def test_a_garbled_lease_holder_file_is_only_text(strategy_factory, tmp_path: Path) -> None:
    """The local lease is the flock; the file's text only says who holds it: garbage there neither blocks a start
    nor breaks the one-line refusal of a second engine."""
    first = await strategy_factory("ls", start=False)
    first.lease.path.parent.mkdir(parents=True, exist_ok=True)
    first.lease.path.write_bytes(b'{"pid": 12\x00\xff\n\n{{')
    await first.start()
    assert first.running
    first.lease.path.write_bytes(b'{"pid": 12\n\n\xff garbage')  # overwritten under the holder's feet
    second = await strategy_factory("ls", start=False)
    with pytest.raises(LeaseHeldError) as err:
        await second.start()
    assert "\n" not in str(err.value) and first.lease.path.name in str(err.value)


# ----------------------------------------------------------------------------------------------- planar state reset
async def planar(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The ``planar`` command in a child process (asynchronously: the sandbox it talks to runs in this loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flows", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())


async def test_state_reset_end_to_end(strategy_factory, sandbox, account, tmp_path: Path) -> None:
    """All three files damaged; ``planar state reset`` (a subprocess, the strategy's credentials) lists the open
    order on the exchange, resets the state to halted, keeps the sequence's epoch and skips past every id, keeps
    the journal's readable records; the engine then starts halted and trades only after an explicit re-arm."""
    store = tmp_path / "store" / "rs"
    store.mkdir(parents=True)
    (store / "client_order_seq.json").write_text('{"epoch": "abc1234", "next_block": 5000000}')  # a store that issued many
    first = await strategy_factory("rs")
    assert await rest_one(first, sandbox) is PENDING
    epoch, issued = first.ids.epoch, first.ids.next()  # (an id taken, never sent: the margin covers those)
    assert epoch == "abc1234" and parse(issued).seq == 5_000_001
    first.state_store.update(tuned_params={"limit_order_offset": 0.1})
    await first.stop()
    truncate(store / "state.json")
    truncate(store / "client_order_seq.json", 0.3)  # neither the epoch nor the next block left legible
    journal = store / "intents.jsonl"
    lines = journal.read_bytes().split(b"\n")
    n = next(i for i, line in enumerate(lines) if b'"kind":"intent"' in line)  # the first intent (after the run's "start")
    cut = lines[n].index(b'"cid":"') + len(b'"cid":"')
    lost = lines[n][cut : lines[n].index(b'"', cut)].decode()  # the first order's client id, still legible
    lines[n] = lines[n][: lines[n].index(b'"', cut) + 3] + b"\x00\x00 garbage"
    journal.write_bytes(b"\n".join(lines))

    config = tmp_path / "rs.toml"
    config.write_text(
        f"""name = "rs"
universe = ["BTC/USDT", "ETH/USDT"]
store_root = "{tmp_path / "store"}"
sandbox_endpoint = {{ url = "{sandbox.url}", ws_url = "{sandbox.ws_url}" }}
"""
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "EXCHANGE_API_KEY": account.api_key}
    env["EXCHANGE_API_SECRET"] = account.api_secret
    env.pop("PREFECT_API_URL", None)

    bad = await planar("state", "reset", "rs", "--config", str(config), "--reason", "  ", env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--reason" in bad.stderr

    out = await planar("state", "reset", "rs", "--config", str(config), "--reason", "disk trouble", "--by", "ops", env=env)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "1 open order(s) of rs" in text and "BTC/USDT buy" in text  # the exchange's view, shown first
    assert f"epoch {epoch} kept" in text and f"line {n + 1} (client order id {lost})" in text
    for name in ("state.json", "client_order_seq.json", "intents.jsonl"):
        assert list(store.glob(f"{name}.corrupt-*")), name  # every damaged file kept beside the new one

    again = await planar("state", "reset", "rs", "--config", str(config), "--reason", "twice", env=env)
    assert again.returncode == 0 and "nothing to reset" in again.stdout

    seq = json.loads((store / "client_order_seq.json").read_text())
    assert seq["epoch"] == epoch and seq["next_block"] > parse(issued).seq
    s = await strategy_factory("rs")  # starts: every file reads
    assert s.halted and "disk trouble" in (s.state.halt_reason or "")
    assert await rest_one(s, sandbox) is None  # halted: re-arm is an explicit act
    recorded = s.sink.of("state_reset")
    assert recorded and recorded[-1]["by"] == "ops" and recorded[-1]["reason"] == "disk trouble"
    s.rearm()
    assert await rest_one(s, sandbox) is PENDING
    fresh = [o["client_order_id"] for o in orders_of(sandbox, account, s)]
    assert len(set(fresh)) == 2 and all(parse(c).epoch == epoch for c in fresh)  # the same epoch, no id reissued
    assert ClientOrderIds(store, "rs").epoch == epoch


async def test_state_reset_refuses_while_the_engine_runs(strategy_factory) -> None:
    from planar_core.engine.reset import reset_state

    running = await strategy_factory("rr")
    helper = await strategy_factory("rr", start=False)
    with pytest.raises(LeaseHeldError):
        await reset_state(helper, "try", "ops", force=True)
    assert running.running


def test_an_unreadable_journal_object_is_named_and_set_aside(s3_root: str) -> None:
    """On object storage each journal record is an object: one that cannot be read is named by its URL, and the
    reset's salvage keeps it aside (its name is the client order id to look up)."""
    import fsspec

    from planar_core.exchange.client_ids import ObjectJournal

    journal = ObjectJournal(f"{s3_root}/oj")
    journal.intent("oj-x-1", symbol="BTC/USDT", side="buy", amount=0.01)
    journal.intent("oj-x-2", symbol="BTC/USDT", side="buy", amount=0.01)
    fs = fsspec.filesystem("s3")
    fs.pipe_file(f"{s3_root}/oj/journal/oj-x-1.intent.json", b'{"t": 1, "ki')
    fs.invalidate_cache()
    with pytest.raises(CorruptStateError) as err:  # before: a bare JSONDecodeError
        journal.unresolved()
    one_line_naming(err.value, f"{s3_root}/oj/journal/oj-x-1.intent.json", "planar state reset oj --reason")
    _, bad = journal.salvage()
    assert bad == ["oj-x-1.intent.json (client order id oj-x-1)"]
    assert list(journal.unresolved()) == ["oj-x-2"]
    fs.invalidate_cache()
    assert any(".intent.json.corrupt-" in p for p in fs.ls(f"{s3_root}/oj/journal"))
