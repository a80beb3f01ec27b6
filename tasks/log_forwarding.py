"""Route engine logs into Prefect's run logs, with secrets redacted on every Prefect handler."""

from __future__ import annotations

import logging

from prefect.logging.handlers import APILogHandler

from planar_core.alerts.redact import RedactingFilter, Redactor

RUN_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs")


def install_redaction(redactor: Redactor) -> RedactingFilter:
    """Put the redactor in front of every handler Prefect uses for run logs (API, console)."""
    flt = RedactingFilter(redactor)
    for name in RUN_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) and f.redactor is redactor for f in handler.filters):
                handler.addFilter(flt)
    return flt


class EngineLogForwarder(APILogHandler):
    """Prefect's API log handler as installed on the engine's logger: one of them at a time, replaced when another
    strategy is built in the same process."""


def forward_engine_logs(redactor: Redactor, logger_name: str = "planar") -> logging.Handler:
    """Send the engine's records (``planar.*``) to the current flow run's logs, redacted first."""
    install_redaction(redactor)
    handler = EngineLogForwarder()
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger(logger_name)
    for h in [h for h in logger.handlers if isinstance(h, EngineLogForwarder)]:
        logger.removeHandler(h)
    logger.addHandler(handler)
    return handler
