"""Shared by the flows: how a run ends (permanent failures, no retry), artifacts, what a flow gives back.

Building the strategy itself (Secret blocks, Prefect events, run logs) is ``tasks.strategy``: the tasks need it too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.states import State

from planar_core.config import ConfigError
from planar_core.exchange.errors import AuthError
from planar_core.model.types import Json
from planar_core.storage import CorruptStateError

log = logging.getLogger("planar.flows")
T = TypeVar("T")

Outcome = Json | State[object]
"""What a flow function returns: its plain result, or the final State it chose (Failed with the error of a permanent
failure, Cancelled with the session's data) when how it ended must show in the UI."""


def artifact_key(name: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes."""
    return f"{name.lower().replace('_', '-')}-{what}"


PERMANENT = (ConfigError, AuthError, CorruptStateError)  # a file that cannot be read stays so until repaired


async def no_retry(exc: BaseException | None) -> None:
    """A permanent error (invalid config, unknown symbol, refused credentials): set this run's retries to 0 so
    Prefect fails it once instead of retrying the same error (and printing the same traceback) again."""
    try:
        await update_this_run(retries_off=True)
    except Exception as err:  # the run may then be retried; it fails the same way
        log.warning("could not turn off retries after a permanent outcome (%s): %s", type(exc).__name__ if exc else "halted", err)


async def permanent_failure(exc: BaseException) -> State[object]:
    """End the run Failed with the error's one-line message (no traceback in the logs for a bad config) and no
    retry; whoever called the flow gets the exception back."""
    from prefect.states import Failed

    await no_retry(exc)
    get_run_logger_safe().error("%s: %s", type(exc).__name__, exc)
    return Failed(message=f"{type(exc).__name__}: {exc}", data=exc)


class InPlaceArtifact:
    """A markdown artifact created once per run and then updated in place: one card per run in the Artifacts tab,
    not a new version every few seconds (720 an hour)."""

    def __init__(self, key: str, description: str) -> None:
        self.key = key
        self.description = description
        self.id: UUID | None = None

    async def publish(self, markdown: str) -> None:
        from prefect.artifacts import acreate_markdown_artifact
        from prefect.client.schemas.actions import ArtifactUpdate

        if self.id is None:
            self.id = await acreate_markdown_artifact(key=self.key, markdown=markdown, description=self.description)
            return
        async with get_client() as client:
            await client.update_artifact(self.id, ArtifactUpdate(data=markdown))

    async def publish_quietly(self, markdown: str) -> bool:
        """``publish``, an API error logged instead of raised (True when published): a live session's status must
        not end the session. A Prefect server restart of 75 s ended a healthy engine with its orders resting (its
        status update raised ConnectError; an outside operator trial, 2 of 2)."""
        try:
            await self.publish(markdown)
        except Exception as exc:
            get_run_logger_safe().warning(
                "artifact %s not updated (%s: %s); the next update tries again", self.key, type(exc).__name__, exc
            )
            return False
        return True


def get_run_logger_safe() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def example_config() -> Path:
    return Path(__file__).resolve().parents[1] / "examples" / "ma_cross.toml"


def returned(value: Outcome) -> Json:
    """What a flow called directly (without ``return_state``) gave back. Prefect resolves a State the flow returned
    into that state's result, raising for Failed and Cancelled, so only the plain result reaches the caller; the flow
    functions' annotations still name the State they may return."""
    if isinstance(value, State):
        raise TypeError(f"a flow call returned its {value.type.value} state, not its result")
    return value


async def awaited(call: Awaitable[T]) -> T:
    """A flow called with ``return_state=True`` as a coroutine (Prefect types that call as an Awaitable of its State),
    for ``asyncio.run`` and ``asyncio.create_task``, which take coroutines only."""
    return await call


async def tag_this_run(*tags: str) -> None:
    """Add tags to the current flow run, however it was created (a UI click, an automation, the CLI): the runs of a
    strategy are found by ``strategy:<name>`` whatever deployment made them."""
    try:
        await update_this_run(tags=tags)
    except Exception as err:  # a tag is for finding the run; the stop goes on
        log.warning("could not tag flow run %s with %s: %s", flow_run.id, tags, err)


async def update_this_run(tags: tuple[str, ...] = (), retries_off: bool = False) -> None:
    """The current flow run (none outside a run) with ``tags`` added and, with ``retries_off``, no retry left."""
    run_id = flow_run.id
    if not run_id:
        return
    async with get_client() as client:
        fr = await client.read_flow_run(run_id)
        await client.update_flow_run(
            run_id,
            tags=sorted({*fr.tags, *tags}) if tags else None,
            empirical_policy=fr.empirical_policy.model_copy(update={"retries": 0}) if retries_off else None,
        )
