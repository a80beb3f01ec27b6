"""The resync's divergence check replays the strategy's account trace and its side trace together: one run's order
may open in one (its engine recorded there) and end in the other (the next run recorded to the side trace while
another strategy held the account trace). Replayed alone, the account trace kept it open against an exchange that
had none: a false divergence alert (an outside operator trial)."""

from __future__ import annotations

from pathlib import Path

from planar_core.config import load_config
from planar_core.engine.strategy import side_trace_root, trace_root
from planar_core.trace import EventTrace
from tasks.trace import divergence_check


def test_an_order_opened_in_one_trace_and_ended_in_the_other_is_not_a_divergence(tmp_path: Path) -> None:
    config = tmp_path / "grid.toml"
    config.write_text(
        f'name = "grid"\nuniverse = ["BTC/USDT"]\nstore_root = "{tmp_path / "store"}"\n[credentials]\napi_key = "k"\napi_secret = "s"\n'
    )
    cfg = load_config(str(config))
    cid = "grid-abc123-e1-7"
    with EventTrace(trace_root(cfg)) as account:
        account.record("order_placed", client_order_id=cid, symbol="BTC/USDT", side="buy", amount=0.01, price=50_000.0, status="open")
    with EventTrace(side_trace_root(cfg)) as side:
        side.record("order_cancelled", client_order_id=cid, symbol="BTC/USDT", status="canceled")
    found = divergence_check.fn("grid", {"open": {"BTC/USDT": []}, "balances": {}}, config_path=str(config))
    assert found == [], found
