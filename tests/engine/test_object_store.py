"""An engine whose store root is on an S3-compatible object store (a local moto server): the trace, the persisted
state, the client-order-id sequence, the intent journal and the engine lease are objects in the bucket, shared by
every worker."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from planar_core.engine.lease import LeaseHeldError
from planar_core.model import OrderType, Side, Trade
from planar_core.state import StateStore
from planar_core.trace import read_trace


async def test_an_engine_keeps_its_shared_store_on_s3(strategy_factory, s3_root: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PLANAR_LOCAL_HOME", str(tmp_path / "local"))  # this worker's own files (journal, logs)
    s = await strategy_factory("s3strat", store_root=s3_root)
    trade = await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=5)
    assert isinstance(trade, Trade)
    s.state_store.update(tuned_params={"limit_order_offset": 0.1})

    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    bucket = s3_root.removeprefix("s3://")
    objects = {p.removeprefix(bucket + "/") for p in fs.find(bucket)}
    assert {"s3strat/state.json", "s3strat/client_order_seq.json"} <= objects
    cid = trade.client_order_id
    assert {f"s3strat/journal/{cid}.intent.json", f"s3strat/journal/{cid}.outcome.json"} <= objects  # every worker sees it
    assert any(p.startswith("leases/") and p.endswith("--s3strat.lease") for p in objects)
    assert any(p.startswith("traces/") and p.endswith("/writer.lease") for p in objects)
    assert not (tmp_path / "local" / "s3strat" / "state.json").exists()  # shared state is not on the local disk

    second = await strategy_factory("s3strat", start=False, store_root=s3_root)  # another worker, same strategy
    with pytest.raises(LeaseHeldError, match="is held by"):
        await second.start()
    assert second.ids.next().rsplit("-", 1)[0] == s.ids.prefix  # same epoch from the shared sequence ...
    assert int(second.ids.next().rsplit("-", 1)[1], 36) >= 1000  # ... and its own block, after the engine's
    assert StateStore(f"{s3_root}/s3strat").load().tuned_params == {"limit_order_offset": 0.1}  # what an e-stop flow elsewhere reads

    await s.stop()
    trace_root = s.sink.root
    placed = read_trace(trace_root)
    assert trade.client_order_id in set(placed.loc[placed["kind"] == "order_placed", "client_order_id"].astype(str))
    third = await strategy_factory("s3strat", store_root=s3_root)  # the lease and the trace are free once it stopped
    assert third.running and third.state_store.load().tuned_params == {"limit_order_offset": 0.1}


def test_client_order_id_blocks_on_s3_never_overlap(s3_root: str) -> None:
    """Two allocators sharing one sequence object (two workers): each block is reserved by a conditional PUT."""
    from planar_core.exchange.client_ids import ClientOrderIds

    a = ClientOrderIds(s3_root, "s", block=3)
    b = ClientOrderIds(s3_root, "s", block=3)
    ids = [x.next() for _ in range(9) for x in (a, b)]
    assert len(set(ids)) == len(ids) == 18


def test_an_intent_in_doubt_is_seen_from_another_worker(s3_root: str) -> None:
    """A worker died between an order's intent and its outcome: a restart on another worker finds the intent."""
    from planar_core.exchange.client_ids import ObjectJournal

    first = ObjectJournal(f"{s3_root}/s")
    first.intent("s-x-1", symbol="BTC/USDT", side="buy", amount=0.01)
    first.intent("s-x-2", symbol="BTC/USDT", side="buy", amount=0.01)
    first.outcome("s-x-2", "accepted", "99")
    other = ObjectJournal(f"{s3_root}/s")
    assert list(other.unresolved()) == ["s-x-1"] and other.unresolved()["s-x-1"]["amount"] == 0.01
    assert other.compact() == 2 and list(other.unresolved()) == ["s-x-1"]
