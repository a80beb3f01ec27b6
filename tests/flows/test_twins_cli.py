"""`planar run` of a strategy that another engine (another store root) trades: refused in one line, exit 2, nothing
placed; after that engine is gone (SIGKILL), `planar run --takeover` adopts its orders (issue 25)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from .test_flows import _planar, live_process, open_orders


async def test_planar_run_is_refused_beside_a_twin_and_takes_over_once_it_is_gone(
    flow_config, sandbox, account, prefect_api, tmp_path: Path
) -> None:
    first = flow_config(name="twincli")
    second = tmp_path / "twincli-elsewhere.json"  # the same strategy and account, another store root
    second.write_text(json.dumps({**json.loads(first.read_text()), "store_root": str(tmp_path / "elsewhere")}))
    async with live_process(first, prefect_api, sandbox, account, "twincli") as (proc, _run):
        theirs = {o["client_order_id"] for o in open_orders(sandbox, account)}
        assert len(theirs) == 2
        code, _, err = await _planar(prefect_api, "run", str(second), "--duration", "5")
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err[-3000:]
        assert "another engine of strategy twincli" in lines[0] and "--takeover" in lines[0]
        assert all(cid in lines[0] for cid in theirs)
        # it placed nothing: every order of the account is the first engine's
        assert {o["client_order_id"] for o in sandbox.ex.snapshot()["accounts"][account.api_key]["orders"]} == theirs
        os.kill(proc.pid, signal.SIGKILL)  # the first engine is gone; its orders stay on the exchange
        proc.wait(timeout=10)
    code, out, err = await _planar(prefect_api, "run", str(second), "--duration", "4", "--takeover")
    assert code == 0, (out + err)[-3000:]
    # adopted, not duplicated: the logic (two resting buys) found them as its own and placed nothing more
    assert {o["client_order_id"] for o in open_orders(sandbox, account)} == theirs
    assert len(sandbox.ex.snapshot()["accounts"][account.api_key]["orders"]) == 2
    taken = json.loads((tmp_path / "elsewhere" / "twincli" / "takeovers.json").read_text())["epochs"]
    assert len(taken) == 1
