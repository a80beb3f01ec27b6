"""Structured live-trading logs: JSON lines with rotation, plus readable console output."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from .config import LoggingConfig
from .redact import RedactingFilter, Redactor

ROOT_LOGGER = "planar"


class _ContextFilter(logging.Filter):
    """Stamps every record with the strategy and exchange it belongs to."""

    def __init__(self, strategy: str, exchange: str) -> None:
        super().__init__()
        self.strategy, self.exchange = strategy, exchange

    def filter(self, record: logging.LogRecord) -> bool:
        record.strategy = getattr(record, "strategy", self.strategy)
        record.exchange = getattr(record, "exchange", self.exchange)
        return True


def _utc_iso(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _UtcJsonFormatter(JsonFormatter):
    def add_fields(self, log_record: dict[str, object], record: logging.LogRecord, message_dict: dict[str, object]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["timestamp"] = _utc_iso(record)
        log_record["level"] = record.levelname
        log_record["logger"] = record.name


def setup_live_logging(
    config: LoggingConfig,
    store_root: Path | str,
    strategy: str,
    exchange: str,
    secrets: list[str] | None = None,
    logger_name: str = ROOT_LOGGER,
) -> tuple[logging.Logger, Path, Redactor]:
    """Configure the ``planar`` logger; returns it, the JSON log file and the redactor (add secrets to it later).

    Redaction and context are filters on the handlers, so every record that reaches a file or the
    console - including records of child loggers - is scrubbed first.
    """
    logs_dir = Path(store_root) / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = logs_dir / f"live_trading_{stamp}.log"
    redactor = Redactor(secrets or [])
    filters: list[logging.Filter] = [_ContextFilter(strategy, exchange), RedactingFilter(redactor)]

    logger = logging.getLogger(logger_name)
    for h in list(logger.handlers):
        if getattr(h, "_planar", False):
            logger.removeHandler(h)
            h.close()
    logger.setLevel(config.level)

    file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=config.max_size, backupCount=config.max_files, encoding="utf-8")
    file_handler.setFormatter(_UtcJsonFormatter("%(message)s %(strategy)s %(exchange)s"))
    handlers: list[logging.Handler] = [file_handler]
    if config.console:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(strategy)s@%(exchange)s] %(message)s"))
        handlers.append(console)
    for h in handlers:
        for f in filters:
            h.addFilter(f)
        h._planar = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    return logger, path, redactor
