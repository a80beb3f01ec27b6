"""Alert channels (through apprise) and structured JSON logging with secret redaction."""

from .config import AlertConfig, AlertConfigError, LoggingConfig
from .dispatcher import AlertDispatcher, send_alert
from .logs import setup_live_logging
from .redact import RedactingFilter, Redactor

__all__ = [
    "AlertConfig",
    "AlertConfigError",
    "AlertDispatcher",
    "LoggingConfig",
    "RedactingFilter",
    "Redactor",
    "send_alert",
    "setup_live_logging",
]
