"""``planar emergency-stop --account`` in a subprocess against a real Prefect server (issue 25): three strategies on
one sandbox account, two of them trading in ``planar run`` processes, one not running with orders resting from an
earlier session, and a manual order. Every order of the account is cancelled (the exchange's admin snapshot says so),
each strategy is halted, each live run ends, and the CLI prints what each strategy had open."""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import get_client

from flows.control import live_runs
from planar_core.config import load_config
from planar_core.engine.strategy import config_account
from planar_core.model import PENDING, OrderType, Side
from planar_core.state import StateStore

from ..conftest import wait_for
from ..engine.test_order_call import bid_ask
from .test_flows import _planar, _start_live_process, artifact, open_orders


async def test_account_emergency_stop_from_the_cli(
    flow_config: Any, sandbox: Any, account: Any, prefect_api: str, client: Any, tmp_path
) -> None:
    configs = {name: flow_config(name=name) for name in ("desk", "desk-b", "desk-idle")}
    env = {"EXCHANGE_API_KEY": account.api_key, "EXCHANGE_API_SECRET": account.api_secret}
    from planar_core.engine import strategy as build

    idle = build("desk-idle", config_path=configs["desk-idle"], env=env)  # an earlier session left two orders resting
    await idle.start(watchers=False)
    bid, _ = bid_ask(sandbox)
    for i in range(2):
        assert await idle.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.001, price=bid * (0.9 - i / 100), waitfor=0) is PENDING
    await idle.stop()
    procs = [_start_live_process(configs[n], prefect_api) for n in ("desk", "desk-b")]
    try:
        await wait_for(lambda: len(open_orders(sandbox, account)) >= 6, timeout=120, interval=0.2)
        await client.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.85, 2), {"clientOrderId": "by-hand"})

        async def both_listed() -> bool:
            return bool(await live_runs("desk")) and bool(await live_runs("desk-b"))

        await wait_for(both_listed, timeout=30, interval=0.5)
        runs = [*(await live_runs("desk")), *(await live_runs("desk-b"))]
        acct = config_account(load_config(configs["desk"], env=env))
        code, out, err = await _planar(
            prefect_api, "emergency-stop", "--account", acct, "--configs", str(tmp_path), "--reason", "desk closed"
        )
        assert code == 0, (out, err[-3000:])
        assert open_orders(sandbox, account) == []  # the exchange's word
        summary, *table = out.strip().splitlines()[-7:]
        assert f"account emergency stop {acct}: CLEAN" in summary and "cancelled 7" in summary and "live runs cancelled 2" in summary
        rows = {line.split("|")[1].strip(): int(line.split("|")[2]) for line in table[2:]}
        assert rows == {"desk": 2, "desk-b": 2, "desk-idle": 2, "foreign/manual": 1}
        for name in configs:
            st = StateStore(load_config(configs[name], env=env).shared_root).load()
            assert st.halted and "account emergency stop: desk closed" in (st.halt_reason or "")
        for proc in procs:
            await wait_for(lambda proc=proc: proc.poll() is not None, timeout=60, interval=0.2)
        async with get_client() as pc:
            for r in runs:  # a stop by hand: Cancelled, whether the engine saw its halt or the run's cancel first
                state = (await pc.read_flow_run(r.id)).state
                assert state.is_cancelled() and state.message == "cancelled (emergency stop: account emergency stop: desk closed)", state
        (art,) = await artifact(f"account-{acct}-emergency-stop")
        assert "| desk-idle | 2 |" in art.data and "CLEAN" in art.data
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
    code, out, err = await _planar(prefect_api, "emergency-stop", "--account", "binance-000000000000", "--configs", str(tmp_path))
    assert code == 2 and "no strategy config trades binance-000000000000" in err and "Traceback" not in err
    code, _, err = await _planar(prefect_api, "emergency-stop", "desk", "--account", acct)
    assert code == 2 and "one of them" in err
