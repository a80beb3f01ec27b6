"""Secret redaction for log records, alert texts and anything else that leaves the process.

Two rules: every configured secret value is replaced wherever it appears, and
any ``key=value`` / ``"key": "value"`` whose key looks like a credential
(api key, secret, token, password, signature, passphrase) has its value masked
even when the value was never configured.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "***"
_SENSITIVE_KEY = r"(?:api[_-]?key|api[_-]?secret|secret|token|password|passwd|passphrase|signature|listenkey|x-mbx-apikey)"
_KV_RE = re.compile(
    r"""(?P<key>["']?[\w.-]*""" + _SENSITIVE_KEY + r"""[\w.-]*["']?)(?P<sep>\s*[:=]\s*)(?P<q>["']?)(?P<val>[^"'\s,&}\]]+)""", re.IGNORECASE
)
# secrets embedded in URLs: telegram bot tokens, webhook tokens
_URL_TOKEN_RE = re.compile(r"(/bot)(\d+:[\w-]+)|(/webhooks/\d+/)([\w-]+)|(/services/[\w-]+/[\w-]+/)([\w-]+)")
_RECORD_ATTRS = set(vars(logging.makeLogRecord({})))


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for value in secrets:
            if value and len(value) >= 4:  # masking 1-3 characters would mangle ordinary text
                self._secrets.add(value)

    def __call__(self, text: str) -> str:
        for value in sorted(self._secrets, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        text = _KV_RE.sub(lambda m: f"{m['key']}{m['sep']}{m['q']}{MASK}", text)
        return _URL_TOKEN_RE.sub(lambda m: "".join(g if i % 2 == 0 else MASK for i, g in enumerate(m.groups()) if g is not None), text)

    def value(self, obj: object) -> object:
        """Redact inside strings, lists and dicts (extra fields of a log record)."""
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, dict):
            return {k: (MASK if re.fullmatch(_SENSITIVE_KEY, str(k), re.IGNORECASE) else self.value(v)) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.value(v) for v in obj)
        if obj is None or isinstance(obj, (int, float, bool)):
            return obj
        return self(str(obj)) if any(s in str(obj) for s in self._secrets) else obj


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so no handler ever sees a secret (message, args, extras, exception)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        r = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # a bad format string still gets logged, redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = r(message), None
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS and key not in ("message", "asctime"):
                setattr(record, key, r.value(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = r(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = r(record.exc_text)
        if record.stack_info:
            record.stack_info = r(record.stack_info)
        return True
