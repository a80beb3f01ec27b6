"""``planar state reset``: a strategy's persisted files that cannot be read, repaired after a look at the exchange.

An engine refuses to start on a state, a client-order-id sequence or an intent journal it cannot read (and halts
if one becomes unreadable while it runs). This is the way back, and it is deliberate about each file (every
damaged one is kept beside the new one as ``<name>.corrupt-<UTC time>``):

* ``state.json`` becomes a fresh state that is **halted**, with the reason: trading resumes only by an explicit
  ``planar rearm`` (whose breaker baselines start from the equity then). What the old file held (breaker
  baselines, tuned parameters, the e-stop's unverified list) is not guessed back; the exchange's view is shown
  instead.
* ``client_order_seq.json`` keeps its **epoch**: read from what is left of the file, or from the client order ids
  this store issued (its journal, its traces). A new epoch would make the strategy's own older open orders look
  like another store root's to the twin-engine check, so a new one is taken only when nothing anywhere (the
  store, the exchange's open orders) knows an id of this strategy, or when asked (``--epoch new``). The next
  block starts past every id seen, plus a margin of ``SKIP`` ids (blocks another process reserved leave no trace
  until used), so no id is ever issued twice.
* the intent journal keeps the records that read; each one that does not is named (with its client order id when
  it can still be made out) so it can be looked up on the exchange.

It takes the engine's lease for its duration (so it refuses while an engine of the strategy runs, and no engine
starts meanwhile), lists the strategy's open orders and positions on the exchange first (refusing when the
exchange cannot be reached), and records ``state_reset`` in the trace with the reason.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..exchange.client_ids import BLOCK, ClientOrderIds, parse, restore_sequence, sequence_hints
from ..model.venue import OrderReport
from ..state import PersistedState
from ..storage import CorruptStateError, Store
from .sync import load_markets, sync_positions

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.reset")
SKIP = 1000 * BLOCK  # ids skipped past the highest one seen


class ResetRefused(ValueError):
    """The reset cannot be done as asked (the message says why, in one line)."""


@dataclass
class ResetReport:
    strategy: str
    damaged: dict[str, str] = field(default_factory=dict)  # file -> what is wrong with it
    open_orders: list[str] = field(default_factory=list)  # this strategy's, on the exchange
    others: int = 0  # open orders on the same symbols that are not this strategy's
    positions: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        if not self.damaged and not self.actions:
            return [f"{self.strategy}: its state, client order id sequence and intent journal read fine; nothing to reset"]
        out = [f"{self.strategy}: {path}: {what}" for path, what in self.damaged.items()]
        out.append(
            f"on the exchange: {len(self.open_orders)} open order(s) of {self.strategy}"
            + (f", {self.others} of others on the same symbols" if self.others else "")
            + (f"; positions: {', '.join(self.positions)}" if self.positions else "; no position")
        )
        out += [f"  open: {o}" for o in self.open_orders]
        out += self.actions
        return out


async def reset_state(s: Strategy, reason: str, by: str, epoch: str | None = None, force: bool = False) -> ResetReport:
    """See the module. ``epoch``: the sequence's epoch when the evidence cannot decide (``new``: a fresh one);
    ``force``: reset ``state.json`` even if it reads."""
    if not reason.strip():
        raise ResetRefused("--reason: say why (it is recorded in the trace)")
    if epoch is not None and epoch != "new" and not (epoch.isalnum() and epoch == epoch.lower()):
        raise ResetRefused(f"--epoch {epoch!r}: an epoch is a base-36 word (digits and lowercase letters), or 'new'")
    s.lease.acquire("planar state reset")  # LeaseHeldError while an engine of this strategy runs
    report = ResetReport(s.name)
    state_bad = _damage(report, s.state_store.read)
    seq_bad = _damage(report, s.ids.check)
    journal_bad = _damage(report, s.journal.unresolved)
    for path, exc in s.gate.unreadable.items():  # the account trace: not this command's to repair
        report.damaged[path] = f"{exc.what} (not reset here: {exc.remedy})"
    if not (state_bad or seq_bad or journal_bad or force):
        return report
    rows = await _exchange_view(s, report)
    if state_bad or force:
        store = s.state_store.store
        copy = store.set_aside(s.state_store.NAME, "corrupt" if state_bad else "reset")
        why = f"state reset by {by}: {reason}; re-arm to trade (planar rearm {s.name} --reason TEXT)"
        store.update(s.state_store.NAME, lambda old: (_encode_halted(why), None))
        report.actions.append(f"state.json: reset, halted ({why})" + (f"; the old one kept as {copy}" if copy else ""))
    if seq_bad:
        report.actions.append(_restore_sequence(s, rows, epoch))
    if journal_bad:
        copy, bad = s.journal.salvage()
        report.actions.append(
            f"intent journal: {len(bad)} unreadable record(s) left out ({'; '.join(bad)}); the old one kept as {copy}; "
            "look those orders up on the exchange (open ones are listed above)"
        )
    s.sink.record("state_reset", reason=reason, by=by, files=sorted(report.damaged), actions=report.actions, open_orders=len(rows))
    log.warning("%s: persisted state reset by %s (%s): %s", s.name, by, reason, "; ".join(report.actions))
    return report


def _damage(report: ResetReport, read: Callable[[], object]) -> bool:
    try:
        read()
    except CorruptStateError as exc:
        report.damaged[exc.path] = exc.what
        return True
    return False


def _encode_halted(reason: str) -> bytes:
    state = PersistedState(halted=True, halt_reason=reason, halted_at=int(time.time() * 1000))
    return json.dumps(state.model_dump(), indent=1, sort_keys=True).encode()


async def _exchange_view(s: Strategy, report: ResetReport) -> list[OrderReport]:
    """The strategy's open orders (and how many of others) on its symbols, and its positions; the exchange's word
    before anything is written (``ExchangeOpError`` when it cannot be reached)."""
    await load_markets(s)
    mine: list[OrderReport] = []
    for ai in s.universe.values():
        for row in await s.venue.open_orders(ai.symbol, s.config.timeouts.order_placement):
            cid = row.client_order_id
            if s.ids.owns(cid):
                mine.append(row)
                side = row.side.value if row.side is not None else None
                report.open_orders.append(f"{ai.symbol} {side} {row.amount} @ {row.price} ({cid})")
            else:
                report.others += 1
    if s.config.margin:
        await sync_positions(s)
        report.positions = [f"{ai.symbol} {p.contracts:g}" for ai in s.universe.values() for p in ai.positions.values() if p.contracts]
    return mine


def _restore_sequence(s: Strategy, rows: list[OrderReport], asked: str | None) -> str:
    ids = s.ids
    hint_epoch, hint_block = sequence_hints(ids.store.read(ids.NAME))
    local: dict[str, int] = {}  # epoch -> highest seq this store issued under it (from its own records)
    for cid in _store_ids(s):
        _note(ids, cid, local)
    if hint_epoch:
        local.setdefault(hint_epoch, -1)
    seen: dict[str, int] = {}
    for row in rows:
        _note(ids, row.client_order_id, seen)
    if asked == "new":
        chosen = None
    elif asked:
        chosen = asked
    elif len(local) == 1:
        chosen = next(iter(local))
    elif local:
        raise ResetRefused(f"{ids.url}: this store's records name several epochs ({', '.join(sorted(local))}); pass --epoch E")
    elif seen:
        raise ResetRefused(
            f"{ids.url}: nothing in this store knows an epoch, but the exchange has open orders of {s.name} under "
            f"{', '.join(sorted(seen))} (this store's, its records lost, or another engine's): pass --epoch E if they are "
            "this store's, --epoch new otherwise"
        )
    else:
        chosen = None  # nothing of this strategy's is known anywhere: a new epoch collides with nothing
    if chosen is None:
        chosen = ClientOrderIds.fresh_epoch()
        start = 0
        why = "a new epoch" + (" (asked)" if asked == "new" else ": no id of this strategy is known anywhere")
    else:
        top = max(local.get(chosen, -1), seen.get(chosen, -1), (hint_block or 0) - 1)
        start = ((top + 1 + BLOCK - 1) // BLOCK) * BLOCK + SKIP
        why = f"epoch {chosen} kept" + (" (asked)" if asked else "")
    copy = restore_sequence(ids.store.root, chosen, start)
    return f"client_order_seq.json: {why}, next id {start} (past every id seen, +{SKIP}); the old one kept as {copy}"


def _note(ids: ClientOrderIds, cid: str | None, into: dict[str, int]) -> None:
    parsed = parse(cid)
    if parsed is not None and parsed.identity == ids.identity:
        into[parsed.epoch] = max(into.get(parsed.epoch, -1), parsed.seq)
        return
    legacy = f"{ids.name[:18]}-"
    rest = (cid or "")[len(legacy) :].split("-") if (cid or "").startswith(legacy) else []
    if len(rest) == 2 and rest[0].isalnum() and rest[1].isdigit():  # the earlier <name[:18]>-<epoch>-<seq> format
        into[rest[0]] = max(into.get(rest[0], -1), int(rest[1]))


def _store_ids(s: Strategy) -> list[str]:
    """Client order ids this store issued, from its own records: the intent journal (what reads of it) and the
    ``order_placed`` events of its traces (the account trace, its archive, this strategy's side trace)."""
    found: list[str] = []
    journal_path = getattr(s.journal, "path", None)
    if journal_path is not None and journal_path.is_file():
        found += [m.decode(errors="replace") for m in re.findall(rb'"cid":"([^"]+)"', journal_path.read_bytes())]
    journal_store = getattr(s.journal, "store", None)
    if isinstance(journal_store, Store):
        found += [name.split(".", 1)[0] for name in journal_store.list("journal")]
    from ..trace.reading import extract_events_by_date
    from .strategy import side_trace_root, trace_root

    root = trace_root(s.config)
    for where in (root, f"{root}/archive", side_trace_root(s.config)):
        try:
            df = extract_events_by_date(where, kind="order_placed")
        except (OSError, ValueError) as exc:  # absent, or damaged (then `planar trace repair` first, if it matters)
            log.info("state reset: %s not read (%s)", where, exc)
            continue
        if "client_order_id" in df:
            found += [str(x) for x in df["client_order_id"].dropna()]
    return found


__all__ = ["ResetRefused", "ResetReport", "reset_state"]
