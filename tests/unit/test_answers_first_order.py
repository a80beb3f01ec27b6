"""``AnswersFirst`` (exchange/answers_first.py) on its own: held user-stream messages are handled while no order
request waits, in arrival order; an order sent while they are being handled pauses them until its answer is in,
and the cap releases them whatever is in flight."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from planar_core.exchange import answers_first
from planar_core.exchange.answers_first import AnswersFirst
from planar_core.model.types import Json

from ..conftest import wait_for


class _Stream:
    """What ccxt.pro's client does with a message: here, note it."""

    def __init__(self, config: Json) -> None:
        self.handled: list[object] = []

    def handle_message(self, client: object, message: object) -> None:
        self.handled.append(message["n"] if isinstance(message, dict) else message)


class _Client(AnswersFirst, _Stream):
    def __init__(self) -> None:
        super().__init__({})
        self.planar_seq = itertools.count(1).__next__

    def user_event(self, message: object) -> Json | None:
        return message if isinstance(message, dict) else None


async def _turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_an_order_sent_while_held_reports_are_handled_pauses_them_until_its_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers_first, "HOLD_MAX_S", 60.0)  # no release by the cap on a loaded machine
    c = _Client()
    c.begin_answer()
    c.handle_message(None, {"n": 1})
    c.handle_message(None, {"n": 2})
    await _turns()
    assert c.handled == []  # held while the first answer is awaited
    c.end_answer()  # answered: they are handled from the next turn of the loop...
    c.begin_answer()  # ...but the next order leaves before it comes
    await _turns()
    assert c.handled == []  # its answer first: the held reports do not take the loop's turns meanwhile
    c.end_answer()
    await wait_for(lambda: c.handled == [1, 2])  # then in arrival order
    c.handle_message(None, {"n": 3})  # nothing held, nothing in flight: handled at once
    assert c.handled == [1, 2, 3]


async def test_the_cap_releases_held_reports_while_an_answer_is_still_awaited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers_first, "HOLD_MAX_S", 0.01)
    c = _Client()
    c.begin_answer()
    c.handle_message(None, {"n": 1})
    c.handle_message(None, {"n": 2})
    await wait_for(lambda: c.handled == [1, 2])  # the answer never comes: the cap lets them through
    c.handle_message(None, {"n": 3})  # a new episode while still in flight: held again...
    assert c.handled == [1, 2]  # (checked before the loop turns: the 10 ms cap may pass on a loaded machine)
    await wait_for(lambda: c.handled == [1, 2, 3])  # ...until its own cap
    c.end_answer()
    c.handle_message(None, "market data")  # not a user-stream event: never held
    assert c.handled[-1] == "market data"
