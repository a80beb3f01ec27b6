"""The answer to an order request before the stream's account of it: user-stream messages that arrive while an
order is being placed or cancelled wait until its answer is read, in the order they came.

Why: an exchange pushes an order's stream reports (its acknowledgement, its cancel, the account update that
locks or releases its funds) before it answers the REST request, and the event loop handles what arrived first.
The caller of ``create_order`` then waited behind the parsing of four stream messages per order, and an emergency
stop's cancel answers behind the parsing of a hundred order reports, although the answer is what the caller acts
on and the stream reports say the same thing later. Held, they are parsed while the next request is on the wire.

What stays as it was: a message's place among what the engine learns is taken when it arrives (``SEQ_KEY``, read
by ``arrival_seq`` when the dialect stamps it), not when it is parsed, so a held account update is never read as newer than an answer
read after it arrived. Messages are handled one per turn of the event loop, in arrival order, as ccxt's receive
loop does. A message is never held longer than ``HOLD_MAX_S`` (a slow or lost answer does not stall the stream),
and only user-stream events are held (the dialect names them); market data passes through.

The held messages are handled while no order request waits: an order sent while they are being handled pauses
them until its answer is in (or the cap). Without the pause, orders sent one after another each waited on the
wire behind the previous order's reports: the answer needs a few turns of the loop to be read, and each turn
handled one held message first (on loopback, 0.4 ms of a 1.5 ms order went there, bench/engine_hot_path.py's
"time on the wire" row). Past the cap they are handled whatever is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator

from ..model.types import Json

log = logging.getLogger("planar.exchange.answers_first")

SEQ_KEY = "_planar_arrived"  # a held message's place in the engine's sequence, taken on arrival
HOLD_MAX_S = 0.05  # the longest a user-stream message waits for an answer


class AnswersFirst:
    """A mixin for a ccxt.pro client, before the exchange's class among its bases. The dialect names its
    user-stream events (``user_event``) and brackets each order request with ``begin_answer`` / ``end_answer``."""

    planar_seq: Callable[[], int]

    def __init__(self, config: Json) -> None:
        super().__init__(config)  # type: ignore[call-arg]
        self._held: deque[tuple[object, object]] = deque()  # (client, message), in arrival order
        self._in_flight = 0  # order requests sent, not answered
        self._drain: asyncio.Handle | None = None
        self._cap: asyncio.TimerHandle | None = None
        self._overdue = False  # the cap passed: the held messages are handled even while an answer is awaited

    def arrival_seq(self, message: Json) -> int:
        """The message's place in the engine's sequence: the one it took on arrival when it was held, else the next."""
        seq = message.get(SEQ_KEY)
        return seq if isinstance(seq, int) else self.planar_seq()

    def user_event(self, message: object) -> Json | None:
        """The user-stream event in ``message`` (the dict its stamp goes on), or None: not one to hold."""
        return None

    def begin_answer(self) -> None:
        """An order request leaves: the user stream waits for its answer."""
        self._in_flight += 1

    def end_answer(self) -> None:
        """Its answer (or its failure) is in: the stream goes on once no order request is waiting."""
        self._in_flight -= 1
        if not self._in_flight:
            self._drain_soon()

    @contextlib.contextmanager
    def answer_first(self) -> Iterator[None]:
        """The stream waits while the block runs (``begin_answer`` ... ``end_answer``): an order request, or a whole
        emergency stop."""
        self.begin_answer()
        try:
            yield
        finally:
            self.end_answer()

    def handle_message(self, client: object, message: object) -> None:
        if self._held or self._in_flight:
            event = self.user_event(message)
            if event is not None:
                event.setdefault(SEQ_KEY, self.planar_seq())
                self._held.append((client, message))
                if self._cap is None:
                    self._cap = asyncio.get_running_loop().call_later(HOLD_MAX_S, self._capped)
                if not self._in_flight:
                    self._drain_soon()
                return
        super().handle_message(client, message)  # type: ignore[misc]

    async def close(self) -> None:
        """Held messages are dropped with the connections: nothing reads them once the client is closed."""
        self._held.clear()
        for handle in (self._drain, self._cap):
            if handle is not None:
                handle.cancel()
        self._drain = self._cap = None
        await super().close()  # type: ignore[misc]

    def _capped(self) -> None:
        self._cap = None
        self._overdue = True
        self._drain_soon()

    def _drain_soon(self) -> None:
        if self._drain is None and self._held:
            self._drain = asyncio.get_running_loop().call_soon(self._drain_one)

    def _drain_one(self) -> None:
        """Handle the oldest held message; the next one on the loop's next turn, until none is left."""
        self._drain = None
        if not self._held:
            return
        if self._in_flight and not self._overdue:
            return  # an order request left meanwhile: its answer first (end_answer resumes, or the cap)
        client, message = self._held.popleft()
        try:
            super().handle_message(client, message)  # type: ignore[misc]
        except Exception:
            log.exception("a held user-stream message could not be handled")
        finally:
            if self._held:
                self._drain_soon()
            else:
                self._overdue = False
                if self._cap is not None:
                    self._cap.cancel()
                    self._cap = None
