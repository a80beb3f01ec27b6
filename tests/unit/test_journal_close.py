"""Closing the intent journal twice (a strategy stopped twice) must not close a descriptor the process has since
given to another file: that closed the next engine's trace writer lock (EBADF at its own close)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from planar_core.exchange.client_ids import IntentJournal, boot_id


def test_a_second_close_leaves_a_reused_descriptor_alone(tmp_path: Path) -> None:
    journal = IntentJournal(tmp_path / "a", fsync=False)
    journal.close()
    other = os.open(tmp_path / "other", os.O_WRONLY | os.O_CREAT, 0o600)  # the lowest free number: often the journal's
    try:
        journal.close()
        os.fstat(other)  # still open
        os.write(other, b"x")
    finally:
        os.close(other)


def test_a_clean_stop_is_marked_and_a_killed_run_is_not(tmp_path: Path) -> None:
    """The next start-up trusts the journal to name every order only after a clean stop; a run killed after its
    first intent (its "stop" never written) leaves the journal unclean even if the run before it stopped cleanly."""
    j = IntentJournal(tmp_path / "a", fsync=False)
    assert not j.clean_stop  # a new journal: nothing is known of an earlier run
    j.compact()  # what a start-up does once it has reconciled
    j.close()
    j = IntentJournal(tmp_path / "a", fsync=False)
    assert j.clean_stop
    j.intent("a-1", symbol="BTC/USDT")
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "a" / "intents.jsonl").read_bytes().splitlines()]
    assert kinds[-2:] == ["start", "intent"]  # "start" precedes the first intent: "stop" is no longer the last word
    # killed here: no close
    assert not IntentJournal(tmp_path / "a", fsync=False).clean_stop


def test_a_run_that_never_settled_leaves_the_journal_as_it_was(tmp_path: Path) -> None:
    j = IntentJournal(tmp_path / "a", fsync=False)
    j.intent("a-1", symbol="BTC/USDT")
    before = (tmp_path / "a" / "intents.jsonl").read_bytes()
    IntentJournal(tmp_path / "a", fsync=False).close()  # a start refused before it reconciled
    assert (tmp_path / "a" / "intents.jsonl").read_bytes() == before
    assert list(IntentJournal(tmp_path / "a", fsync=False).unresolved()) == ["a-1"]


def test_a_run_killed_in_this_boot_is_vouched_for_and_one_of_another_boot_is_not(tmp_path: Path) -> None:
    """A killed process loses nothing the kernel has: the journal of a run that started in this boot of the machine
    names every order it sent (``complete``). After a reboot (a power loss) its unsynced tail may be gone."""
    j = IntentJournal(tmp_path / "a", fsync=False)
    j.compact()  # a start-up reconciled: this run's "start" record, with the boot id, is the file's last line
    records = [json.loads(line) for line in (tmp_path / "a" / "intents.jsonl").read_bytes().splitlines()]
    assert [r["kind"] for r in records] == ["start"] and records[0]["boot"] == boot_id()
    j.intent("a-1", symbol="BTC/USDT")
    # killed here: no close
    again = IntentJournal(tmp_path / "a", fsync=False)
    assert not again.clean_stop
    assert again.complete == (boot_id() is not None)  # an OS without a boot id: every unclean stop is a power loss
    path = tmp_path / "a" / "intents.jsonl"
    path.write_bytes(path.read_bytes().replace(f'"boot":"{boot_id()}"'.encode(), b'"boot":"before-a-reboot"'))
    assert not IntentJournal(tmp_path / "a", fsync=False).complete


def test_a_journal_without_a_start_record_is_not_vouched_for(tmp_path: Path) -> None:
    """An older journal (no "start" with a boot id) whose run did not stop cleanly: nothing says which boot wrote it."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "intents.jsonl").write_bytes(b'{"t":1,"kind":"intent","cid":"a-1","symbol":"BTC/USDT"}\n')
    assert not IntentJournal(tmp_path / "a", fsync=False).complete


def test_a_writer_that_did_not_reconcile_never_vouches_for_a_run_it_cannot(tmp_path: Path) -> None:
    """After a power loss (the last run started in another boot), a process that writes intents without reconciling
    (an e-stop closing positions) must not leave "stop" last: the next start-up would trust the journal to name the
    lost run's orders. The engine's start-up, which reconciles (compact), may."""
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "intents.jsonl"
    path.write_bytes(b'{"t":1,"kind":"start","boot":"before-a-reboot"}\n{"t":2,"kind":"intent","cid":"a-1","symbol":"BTC/USDT"}\n')
    estop = IntentJournal(tmp_path / "a", fsync=False)
    assert not estop.complete
    estop.intent("a-2", symbol="BTC/USDT")
    estop.close()
    after = IntentJournal(tmp_path / "a", fsync=False)
    assert not after.clean_stop and not after.complete
    after.compact()  # the engine's start-up reconciled
    after.close()
    assert IntentJournal(tmp_path / "a", fsync=False).clean_stop


def test_a_journal_knows_it_is_the_first_one(tmp_path: Path) -> None:
    """No journal yet (or an empty one): the start-up says it is the strategy's first run, not that "the previous run
    did not stop cleanly" (a newcomer's very first run warned so); any journal with a record is not new."""
    j = IntentJournal(tmp_path / "a", fsync=False)
    assert j.new and not j.complete
    j.close()
    assert IntentJournal(tmp_path / "a", fsync=False).new  # a run that never wrote: still nothing of an earlier one
    j = IntentJournal(tmp_path / "a", fsync=False)
    j.intent("a-1", symbol="BTC/USDT")
    assert not IntentJournal(tmp_path / "a", fsync=False).new
