"""Shared by the flows: building a strategy from flow parameters, Prefect events for risk events."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.runtime import flow_run

from planar_core.alerts import AlertConfig, AlertDispatcher, Redactor, setup_live_logging
from planar_core.config import ConfigError, StrategyConfig, load_config
from planar_core.engine import Strategy
from planar_core.engine.strategy import config_account, strategy_from_config
from planar_core.engine.supervisor import TaskObserver
from planar_core.exchange.errors import AuthError
from planar_core.model.sink import EventSink
from planar_core.storage import CorruptStateError

from .blocks import secret_block_provider
from .log_forwarding import forward_engine_logs

log = logging.getLogger("planar.flows")
RISK_EVENT_KINDS = {"breaker_tripped", "emergency_stop", "config_changed", "halted"}


def artifact_key(name: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes."""
    return f"{name.lower().replace('_', '-')}-{what}"


def resource(name: str) -> dict[str, str]:
    return {"prefect.resource.id": f"planar.strategy.{name}", "prefect.resource.name": name}


class PrefectEventSink:
    """Wraps the engine's sink: risk events also become Prefect events (for automations and the UI).

    Automations react to these events (a tripped breaker runs the e-stop deployment), so a failed emission is not
    best effort: it is recorded in the trace and alerted, and retried once."""

    def __init__(self, inner: Any, name: str, identity: dict[str, str] | None = None, alerts: AlertDispatcher | None = None) -> None:
        self.inner = inner
        self.name = name
        self.identity = identity or {}  # account and config path: an automation aims its e-stop with them
        self.alerts = alerts  # the strategy's AlertDispatcher: a failed emission is alerted through it

    def record(self, kind: str, **fields: Any) -> None:
        try:
            self.inner.record(kind, **fields)
        finally:  # a halt the trace could not write (a full disk halts) still reaches the automations
            if kind in RISK_EVENT_KINDS or kind == "reconnect":
                self._emit(kind, fields)

    def _emit(self, kind: str, fields: dict[str, Any]) -> None:
        payload = {**{k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v)) for k, v in fields.items()}, **self.identity}
        error: Exception | None = None
        for _ in range(2):
            try:  # None back means events are switched off here (no API): nothing to deliver, nothing failed
                emit_event(event=f"planar.{kind}", resource=resource(self.name), payload=payload)
                return
            except Exception as exc:
                error = exc
        msg = f"{self.name}: the Prefect event planar.{kind} could not be emitted ({error}); automations waiting for it will not run"
        log.error(msg)
        with contextlib.suppress(OSError):  # the trace may be what failed
            self.inner.record("error_occurred", reason=msg)
        if self.alerts is not None:  # the strategy's AlertDispatcher
            self.alerts.submit(msg, "error")

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()
        else:
            self.inner.flush()

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)


def load_strategy_config(strategy_name: str, config_path: str | None, **overrides: Any) -> StrategyConfig:
    return load_config(config_path, name=strategy_name, **overrides) if config_path else load_config(name=strategy_name, **overrides)


def build_strategy(strategy_name: str, config_path: str | None = None, observer: TaskObserver | None = None, **overrides: Any) -> Strategy:
    """A strategy whose secrets may come from Prefect Secret blocks, whose risk events become Prefect events,
    and whose engine logs go to the flow run's logs (redacted). If anything fails after the trace was opened,
    the trace (and its writer lock) is released before the error goes on."""
    cfg = load_strategy_config(strategy_name, config_path, **overrides)
    cfg = cfg.model_copy(update={"credentials": cfg.credentials.resolved(os.environ, secret_block_provider)})
    redactor = Redactor(cfg.credentials.secret_values())
    alerts = AlertDispatcher(AlertConfig.from_env(), redactor=redactor) if cfg.alerts is None and _alerts_in_env() else None
    identity = {
        "account": config_account(cfg, secret_block_provider),
        "config_path": str(Path(config_path).resolve()) if config_path else "",
    }

    def prefect_events(inner: EventSink, dispatcher: AlertDispatcher | None) -> EventSink:
        return PrefectEventSink(inner, cfg.name, identity, dispatcher)

    s = strategy_from_config(cfg, secrets_provider=secret_block_provider, wrap_sink=prefect_events, alerts=alerts, observer=observer)
    try:
        setup_live_logging(
            s.config.logging.model_copy(update={"console": False}),
            s.config.store_path,
            s.name,
            s.config.exchange,
            secrets=s.config.credentials.secret_values(),
        )
        forward_engine_logs(redactor)
    except BaseException:
        close = getattr(s.sink, "close", None)
        if callable(close):
            close()
        s.journal.close()
        raise
    return s


PERMANENT = (ConfigError, AuthError, CorruptStateError)  # a file that cannot be read stays so until repaired


async def no_retry(exc: BaseException | None) -> None:
    """A permanent error (invalid config, unknown symbol, refused credentials): set this run's retries to 0 so
    Prefect fails it once instead of retrying the same error (and printing the same traceback) again."""
    run_id = flow_run.id
    if not run_id:
        return
    try:
        async with get_client() as client:
            fr = await client.read_flow_run(run_id)
            await client.update_flow_run(run_id, empirical_policy=fr.empirical_policy.model_copy(update={"retries": 0}))
    except Exception as err:  # the run may then be retried; it fails the same way
        log.warning("could not turn off retries after a permanent outcome (%s): %s", type(exc).__name__ if exc else "halted", err)


async def permanent_failure(exc: BaseException) -> Any:
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


def get_run_logger_safe() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def _alerts_in_env() -> bool:
    import os

    return any(os.environ.get(v) for v in AlertConfig.ENV.values())


def example_config() -> Path:
    return Path(__file__).resolve().parents[1] / "examples" / "ma_cross.toml"
