"""Every persisted file a strategy reads back fails the same way when it cannot be read: ``CorruptStateError``, one
line naming the file, what is wrong and the remedy (issue 25, item 9). No sockets: the files alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planar_core.exchange.client_ids import ClientOrderIds, IntentJournal, sequence_hints
from planar_core.state import PersistedState, StateStore
from planar_core.storage import CorruptStateError
from planar_core.trace.files import Manifest

DAMAGE = {"empty": b"", "truncated": b'{\n "halted": true,\n "halt_reason": "brea', "not JSON": b"\x00\x00\x00\x00", "a list": b"[1, 2]"}


def assert_one_line(exc: CorruptStateError, path: Path | str, what: str) -> None:
    msg = str(exc)
    assert "\n" not in msg and msg.startswith(f"{path}: ") and what in msg, msg


@pytest.mark.parametrize("raw", DAMAGE.values(), ids=DAMAGE.keys())
def test_state_file(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "state.json").write_bytes(raw)
    store = StateStore(tmp_path / "s")
    with pytest.raises(CorruptStateError) as err:
        store.load()
    assert_one_line(err.value, tmp_path / "s" / "state.json", "planar state reset s --reason")
    with pytest.raises(CorruptStateError):
        store.update(peak_equity=1.0)
    assert (tmp_path / "s" / "state.json").read_bytes() == raw  # never written over


def test_state_file_of_the_wrong_shape(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"halted": "perhaps", "peak_equity": "lots"}))
    with pytest.raises(CorruptStateError) as err:
        StateStore(tmp_path).load()
    assert_one_line(err.value, tmp_path / "state.json", "unexpected content: halted: ")
    assert "(and 1 more)" in str(err.value)


def test_a_guarded_state_store_answers_halted_and_reports_once(tmp_path: Path) -> None:
    heard: list[CorruptStateError] = []
    store = StateStore(tmp_path, on_unreadable=heard.append)
    store.save(PersistedState(peak_equity=5.0))
    (tmp_path / "state.json").write_bytes(b'{"peak_eq')
    for _ in range(3):
        st = store.load()
        assert st.halted and str(tmp_path / "state.json") in (st.halt_reason or "")
    assert store.update(breaker_tripped="drawdown").halted  # nothing written ...
    assert (tmp_path / "state.json").read_bytes() == b'{"peak_eq'
    with pytest.raises(CorruptStateError):
        store.update(halted=False)  # ... and a halt nobody can read is never lifted
    assert len(heard) == 1
    store.save(PersistedState(halted=True, halt_reason="reset"))
    assert store.load().halt_reason == "reset" and store.fault is None


@pytest.mark.parametrize(
    "raw,what",
    [
        (b'{"epoch": "x8ab', "not valid JSON (truncated?)"),
        (b'{"epoch": "X-Y!", "next_block": 2000}', "epoch 'X-Y!' is not a base-36 word"),
        (b'{"epoch": "x8abcde", "next_block": "2000"}', "next_block '2000' is not a count"),
        (b'{"next_block": 2000}', "reserved under no epoch"),
    ],
)
def test_client_order_id_sequence(tmp_path: Path, raw: bytes, what: str) -> None:
    (tmp_path / "client_order_seq.json").write_bytes(raw)
    ids = ClientOrderIds(tmp_path, "seq")  # builds (an e-stop may cancel with it) ...
    with pytest.raises(CorruptStateError) as err:
        ids.next()  # ... but never issues an id on a guess
    assert_one_line(err.value, tmp_path / "client_order_seq.json", what)
    with pytest.raises(CorruptStateError):
        ids.check()
    assert (tmp_path / "client_order_seq.json").read_bytes() == raw


def test_sequence_hints_read_what_is_left() -> None:
    assert sequence_hints(b'{\n "epoch": "x8abcde",\n "next_block": 3000\n}') == ("x8abcde", 3000)
    assert sequence_hints(b'{\n "epoch": "x8abcde",\n "next_block": 30') == ("x8abcde", None)  # 30 may be 3000 cut
    assert sequence_hints(b'{\n "epo') == (None, None)


def test_journal_lines(tmp_path: Path) -> None:
    j = IntentJournal(tmp_path)
    j.intent("a-1", symbol="BTC/USDT")
    j.intent("a-2", symbol="BTC/USDT")
    j.outcome("a-1", "accepted", "7")
    j.close()
    good = (tmp_path / "intents.jsonl").read_bytes()
    (tmp_path / "intents.jsonl").write_bytes(good + b'{"t":5,"kind":"int')  # a torn last write
    assert list(IntentJournal(tmp_path).unresolved()) == ["a-2"]
    intent_a1 = next(line for line in good.split(b"\n") if b'"kind":"intent","cid":"a-1"' in line)
    (tmp_path / "intents.jsonl").write_bytes(good + b'{"t":5,"kind":"int' + intent_a1 + b"\n")  # torn, then appended
    assert list(IntentJournal(tmp_path).unresolved()) == ["a-2", "a-1"]
    (tmp_path / "intents.jsonl").write_bytes(b'{"t":1,"kind":"nonsense"}\n' + good)
    with pytest.raises(CorruptStateError) as err:
        IntentJournal(tmp_path).unresolved()
    assert_one_line(err.value, f"{tmp_path / 'intents.jsonl'} line 1", "not an intent or outcome record")


def test_manifest(tmp_path: Path) -> None:
    where = str(tmp_path / "manifest.json")
    for raw, what in [
        (b'{"schema_version": 2, "segm', "not valid JSON (truncated?)"),
        (b'{"schema_version": 2, "wal_consumed": 3}', "no 'segments' field"),
        (b'{"schema_version": 2, "wal_consumed": 3, "segments": [{"name": "a", "rows": "x", "t_min": 0, "t_max": 0}]}', "wrong type"),
    ]:
        with pytest.raises(CorruptStateError) as err:
            Manifest.from_json(raw, where)
        assert_one_line(err.value, where, what)
    with pytest.raises(ValueError, match="schema version 9 is not supported"):  # a newer trace: refused, not "damaged"
        Manifest.from_json(b'{"schema_version": 9, "segments": [], "wal_consumed": -1}', where)
