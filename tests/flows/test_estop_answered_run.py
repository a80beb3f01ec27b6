"""The e-stop flow and the live run whose engine answered it: the run is left to end by itself (its own final state,
"emergency stop ...: clean"), never asked to cancel meanwhile (its runner would kill the process as it writes its
report and overwrite that state). A run nobody answered is asked, then forced."""

from __future__ import annotations

import asyncio

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Running

from flows.emergency import cancel_runs


@flow
def live_stand_in() -> None:
    """Only its runs are used: their states are set by the test, as an engine's would be."""


async def running_run() -> object:
    async with get_client() as client:
        run = await client.create_flow_run(live_stand_in)
        await client.set_flow_run_state(run.id, Running(), force=True)
        return run


async def states_of(run_id: object) -> list[str]:
    async with get_client() as client:
        return [s.type.value for s in await client.read_flow_run_states(run_id)]  # type: ignore[arg-type]


async def test_a_run_whose_engine_answered_ends_by_itself_and_is_never_asked_to_cancel(prefect_api: str) -> None:
    answered, silent = await running_run(), await running_run()

    async def engine_ends() -> None:
        await asyncio.sleep(0.5)
        async with get_client() as client:
            await client.set_flow_run_state(answered.id, Cancelled(message="emergency stop (by hand): clean: 2 orders cancelled"))

    ending = asyncio.create_task(engine_ends())
    out = await cancel_runs([answered.id, silent.id], "by hand", grace_s=5.0, answered={str(answered.id)})
    await ending
    assert out == [str(answered.id), str(silent.id)]
    assert "CANCELLING" not in await states_of(answered.id)
    async with get_client() as client:
        ended = (await client.read_flow_run(answered.id)).state
        forced = (await client.read_flow_run(silent.id)).state
    assert ended is not None and ended.message == "emergency stop (by hand): clean: 2 orders cancelled"
    assert forced is not None and forced.is_cancelled() and "no process answered" in (forced.message or "")
    assert "CANCELLING" in await states_of(silent.id)  # the unanswered one was asked first
