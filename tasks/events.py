"""The engine's risk events as Prefect events: automations (a tripped breaker runs the e-stop deployment) and the UI
react to them. Used by every strategy built inside a Prefect run (``tasks.strategy``) and by the flows' own events."""

from __future__ import annotations

import contextlib
import logging

from prefect.events import emit_event

from planar_core.alerts import AlertDispatcher
from planar_core.model.sink import EventSink

log = logging.getLogger("planar.tasks.events")
RISK_EVENT_KINDS = {"breaker_tripped", "emergency_stop", "config_changed", "halted"}


def resource(name: str) -> dict[str, str]:
    """The Prefect resource a strategy's events are about (automations match on its id and read its name)."""
    return {"prefect.resource.id": f"planar.strategy.{name}", "prefect.resource.name": name}


class PrefectEventSink:
    """Wraps the engine's sink: risk events also become Prefect events (for automations and the UI).

    Automations react to these events (a tripped breaker runs the e-stop deployment), so a failed emission is not
    best effort: it is recorded in the trace and alerted, and retried once."""

    def __init__(self, inner: EventSink, name: str, identity: dict[str, str] | None = None, alerts: AlertDispatcher | None = None) -> None:
        self.inner = inner
        self.name = name
        self.identity = identity or {}  # account and config path: an automation aims its e-stop with them
        self.alerts = alerts  # the strategy's AlertDispatcher: a failed emission is alerted through it

    def record(self, kind: str, **fields: object) -> None:
        try:
            self.inner.record(kind, **fields)
        finally:  # a halt the trace could not write (a full disk halts) still reaches the automations
            if kind in RISK_EVENT_KINDS or kind in ("reconnect", "heartbeat"):  # heartbeats feed the watchdog automation
                self._emit(kind, fields)

    def _emit(self, kind: str, fields: dict[str, object]) -> None:
        payload: dict[str, object] = {
            **{k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v)) for k, v in fields.items()},
            **self.identity,
        }
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

    def __getattr__(self, item: str) -> object:
        """What the wrapped sink offers beyond the protocol (the trace's ``root``, a memory sink's ``of``)."""
        return getattr(self.inner, item)
