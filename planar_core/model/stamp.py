"""Where an account report stands among everything the engine has learned: the ordering of balances, positions
and fills that come by two roads (the user stream and REST) and must never be applied out of order.

Every report gets a sequence number from one counter per exchange client: a user-stream message when it arrives
on the wire (before ccxt hands it to anyone), a REST answer when its request is sent, a fill learned by REST when
the engine applies it. A report is newer than another when its number is higher; a REST snapshot whose request
left before a stream message arrived is therefore older than that message, whatever order the two reach the
engine in. ``ms`` is the exchange's own time of the account state or the fill, when it says (None otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stamp:
    seq: int
    ms: int | None = None  # the exchange's time of the state (account update time, trade time)
    assets: frozenset[str] | None = None  # the currencies a stream message carries (None: all it lists)
    rest: bool = False  # learned by REST: a snapshot (seq: when its request left), a fill (seq: when applied)

    def newer_than(self, held: Stamp) -> bool:
        """Whether this report should replace ``held``. Reports of one road keep their own order (the stream's is
        the wire's; snapshots the order their requests left in). Across roads the exchange's clock decides; when it
        cannot (the same millisecond, or a time unknown): a snapshot asked after the stream report arrived is
        newer, and a stream report never takes back a snapshot of the same millisecond, since the stream may lag
        behind REST (a lock message that arrives after a read which already shows the fill)."""
        if self.rest == held.rest:
            return self.seq > held.seq
        if self.ms is not None and held.ms is not None and self.ms != held.ms:
            return self.ms > held.ms
        if self.rest:
            return self.seq > held.seq
        return held.ms is None and self.seq > held.seq

    def ordered_against(self, held: Stamp) -> bool:
        """Whether the order between this report and ``held`` is known rather than decided by ``newer_than``'s
        tie rules. It is unknown across roads when the exchange's times do not tell them apart (the same
        millisecond, or a time missing) and the engine's own order does not prove it either: a snapshot asked
        *before* the stream message arrived may show the state before or after it; a stream message that arrived
        *after* a snapshot was asked may describe a change before or after the exchange read it (one cancel in the
        same millisecond as a read: the read's state lacks it, and its message arrives after the read)."""
        if self.rest == held.rest:
            return True
        if self.ms is not None and held.ms is not None and self.ms != held.ms:
            return True
        return self.seq > held.seq if self.rest else self.seq < held.seq

    def includes(self, fill: Stamp) -> bool:
        """Whether the account state this stamp describes includes ``fill``: the exchange stamped it strictly after
        the fill; or it is a snapshot asked after the fill was known; or a stream message that arrived after the
        fill's own report on the stream (not before it in the exchange's time). A fill known only by REST has no
        place on the stream yet: only a snapshot asked after it, or a state stamped strictly later, includes it."""
        if self.ms is not None and fill.ms is not None and self.ms > fill.ms:
            return True
        if self.rest:
            return self.seq > fill.seq
        if fill.rest:
            return False
        return self.seq > fill.seq and (self.ms is None or fill.ms is None or self.ms >= fill.ms)
