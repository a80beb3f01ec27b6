"""A strategy built inside a Prefect run (a flow or a task): secrets from Prefect Secret blocks, risk events as
Prefect events, engine logs in the run's logs (redacted). Tasks build their helper strategies here and the flows
build the live one here, so the flows and the tasks share it without the tasks importing the flows."""

from __future__ import annotations

import os
from collections.abc import Mapping

from planar_core.alerts import AlertConfig, AlertDispatcher, Redactor, setup_live_logging
from planar_core.config import StrategyConfig, load_config
from planar_core.engine import Strategy
from planar_core.engine.strategy import config_account, strategy_from_config
from planar_core.engine.supervisor import TaskObserver
from planar_core.exchange.registry import credential_fields
from planar_core.model.sink import EventSink

from .blocks import secret_block_provider
from .events import PrefectEventSink
from .log_forwarding import forward_engine_logs


def load_strategy_config(strategy_name: str, config_path: str | None, overrides: Mapping[str, object] | None = None) -> StrategyConfig:
    """The config file (or the environment alone without one), named ``strategy_name``, with a run's overrides."""
    return load_config(config_path or None, None, name=strategy_name, **(overrides or {}))


def build_strategy(
    strategy_name: str, config_path: str | None = None, observer: TaskObserver | None = None, overrides: Mapping[str, object] | None = None
) -> Strategy:
    """A strategy whose secrets may come from Prefect Secret blocks, whose risk events become Prefect events,
    and whose engine logs go to the flow run's logs (redacted). If anything fails after the trace was opened,
    the trace (and its writer lock) is released before the error goes on."""
    cfg = load_strategy_config(strategy_name, config_path, overrides)
    cfg = cfg.model_copy(
        update={"credentials": cfg.credentials.resolved(os.environ, secret_block_provider, credential_fields(cfg.exchange))}
    )
    redactor = Redactor(cfg.credentials.secret_values())
    alerts = AlertDispatcher(AlertConfig.from_env(), redactor=redactor) if cfg.alerts is None and _alerts_in_env() else None
    # the account aims an automation's e-stop; no path: on a work pool this run's folder is gone when the e-stop runs
    identity = {"account": config_account(cfg, secret_block_provider)}

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


def _alerts_in_env() -> bool:
    return any(os.environ.get(v) for v in AlertConfig.ENV.values())
