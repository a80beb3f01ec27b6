"""Asynchronous, bounded alert delivery through apprise.

``send_alert`` formats, logs and enqueues; a background worker delivers to
every channel in parallel, each bounded by ``channel_timeout_s`` (apprise is
synchronous, so each delivery runs in a worker thread). A failing or hanging
channel is logged and never delays the others or the trading loop; identical
alerts inside ``dedupe_window_s`` are sent once; a full queue drops the alert
with a log line instead of blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import apprise

from .config import AlertConfig
from .redact import Redactor

log = logging.getLogger("planar.alerts")
LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL}
LEVELS = {
    "debug": apprise.NotifyType.INFO,
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "error": apprise.NotifyType.FAILURE,
    "critical": apprise.NotifyType.FAILURE,
}


def _timeouts(cfg: AlertConfig) -> str:
    t = max(1, int(cfg.channel_timeout_s))
    return f"cto={t}&rto={t}"


def _plugin(url: str) -> apprise.NotifyBase:
    """One apprise plugin for ``url``; a URL apprise cannot parse is a configuration error, said at once."""
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise ValueError(f"alert channel URL not understood by apprise: {url.split('://')[0]}://...")
    return plugin


def build_channels(cfg: AlertConfig) -> dict[str, apprise.NotifyBase]:
    """One apprise plugin instance per configured channel, keyed by channel name."""
    out: dict[str, apprise.NotifyBase] = {}
    tmo = _timeouts(cfg)
    if cfg.telegram_bot_token and cfg.telegram_chat_id:
        plugin = _plugin(f"tgram://{cfg.telegram_bot_token.get_secret_value()}/{cfg.telegram_chat_id}/?{tmo}&format=text")
        plugin.notify_url = cfg.telegram_api_base.rstrip("/") + "/bot"  # type: ignore[attr-defined]  # apprise's per-plugin field
        out["telegram"] = plugin
    if cfg.smtp_server and cfg.alert_email:
        user = quote(cfg.smtp_username or "", safe="")
        pw = quote(cfg.smtp_password.get_secret_value(), safe="") if cfg.smtp_password else ""
        cred = f"{user}:{pw}@" if user else ""
        port = cfg.smtp_port or (465 if cfg.smtp_security == "ssl" else 587)
        scheme = "mailto" if cfg.smtp_security == "insecure" else "mailtos"
        sender = cfg.email_from or (cfg.smtp_username if cfg.smtp_username and "@" in cfg.smtp_username else cfg.alert_email)
        url = (
            f"{scheme}://{cred}{cfg.smtp_server}:{port}?smtp={cfg.smtp_server}&mode={cfg.smtp_security}"
            f"&to={quote(cfg.alert_email)}&from={quote(sender)}&{tmo}"
        )
        out["email"] = _plugin(url)
    if cfg.discord_webhook_url:
        parts = urlsplit(cfg.discord_webhook_url.get_secret_value())
        segments = parts.path.rstrip("/").split("/")
        plugin = _plugin(f"discord://{segments[-2]}/{segments[-1]}/?{tmo}&format=text")
        plugin.notify_url = f"{parts.scheme}://{parts.netloc}{'/'.join(segments[:-2])}"  # type: ignore[attr-defined]
        out["discord"] = plugin
    if cfg.webhook_url:
        parts = urlsplit(cfg.webhook_url.get_secret_value())
        scheme = "jsons" if parts.scheme == "https" else "json"
        query = f"{parts.query}&" if parts.query else ""
        out["webhook"] = _plugin(f"{scheme}://{parts.netloc}{parts.path}?{query}:message=text&:version=&:title=&:attachments=&:type=&{tmo}")
    return out


@dataclass
class AlertDispatcher:
    config: AlertConfig
    redactor: Redactor = field(default_factory=Redactor)
    channels: dict[str, apprise.NotifyBase] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)  # per channel
    failed: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.redactor.add(*self.config.secrets())
        if not self.channels:
            self.channels = build_channels(self.config)
        self._queue: asyncio.Queue[tuple[str, str]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._recent: dict[str, float] = {}

    def start(self) -> None:
        if self._worker is None:
            self._queue = asyncio.Queue(maxsize=self.config.queue_size)
            self._worker = asyncio.create_task(self._run(), name="alert-dispatcher")

    async def stop(self, drain_timeout: float = 5.0) -> None:
        if self._worker is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.drain(), drain_timeout)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    async def drain(self) -> None:
        """Wait until everything queued has been delivered or has failed."""
        if self._queue is not None:
            await self._queue.join()

    def submit(self, message: str, level: str = "info") -> bool:
        """Format, log and enqueue; never blocks. False when deduplicated or dropped."""
        level = level.lower()
        now = time.monotonic()
        key = f"{level}:{message}"
        if now - self._recent.get(key, -1e18) < self.config.dedupe_window_s:
            log.debug("alert deduplicated: %s", message)
            return False
        self._recent[key] = now
        stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        text = self.redactor(f"[{stamp}] [{level}] {message}")
        log.log(logging.getLevelName(level.upper()) if level != "critical" else logging.CRITICAL, "ALERT: %s", text)
        if not self.channels:
            return True
        self.start()
        assert self._queue is not None
        try:
            self._queue.put_nowait((text, level))
        except asyncio.QueueFull:
            log.error("alert queue full (%d); dropped: %s", self.config.queue_size, text)
            return False
        return True

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            text, level = await self._queue.get()
            try:
                await asyncio.gather(*(self._deliver(name, plugin, text, level) for name, plugin in self.channels.items()))
            finally:
                self._queue.task_done()

    async def _deliver(self, name: str, plugin: apprise.NotifyBase, text: str, level: str) -> None:
        notify_type = LEVELS.get(level, apprise.NotifyType.INFO)
        try:
            ok = await asyncio.wait_for(
                asyncio.to_thread(plugin.notify, body=text, title="Planar Live Trading Alert", notify_type=notify_type),
                self.config.channel_timeout_s,
            )
        except TimeoutError:
            ok = False
            log.error("alert channel %s timed out after %.1fs", name, self.config.channel_timeout_s)
        except Exception as exc:  # a broken channel must never break the engine
            ok = False
            log.error("alert channel %s failed: %s", name, self.redactor(repr(exc)))
        else:
            if not ok:
                log.error("alert channel %s reported a delivery failure", name)
        bucket = self.sent if ok else self.failed
        bucket[name] = bucket.get(name, 0) + 1


def send_alert(target: object, message: str, level: str = "info") -> bool:
    """Send ``message`` through ``target``'s channels: ``target`` is a strategy (its ``.alerts``) or a dispatcher."""
    dispatcher = target if isinstance(target, AlertDispatcher) else getattr(target, "alerts", None)
    if not isinstance(dispatcher, AlertDispatcher):
        # an "info" alert is not a warning; an error or critical one is a WARNING here, because whoever raised it has
        # logged the event at its own level already (the line says the alert's level)
        log.log(min(LOG_LEVELS.get(level, logging.WARNING), logging.WARNING), "alert (%s; no alert channel configured): %s", level, message)
        return False
    return dispatcher.submit(message, level)
