"""A running strategy follows its params store (``params_store.py``): the optimisation flow or ``planar params
rollback`` write a new version; the engine applies it between two callbacks, records it and alerts.

* At start the version in force is applied before ``on_start`` (a restart keeps the params it was running with).
* Then it is read every few seconds (a small document, one read); a new version is validated by the logic's
  ``Params`` over the config's ``logic_params`` (a version holds the whole set; an empty one means the config's).
* Applied: ``logic.params`` and ``ctx.params`` change together, ``params_changed`` is traced (version, source,
  reason, each changed field old -> new), an alert says the same. Refused (it does not validate): the running params
  stay, ``params_rejected`` is traced and alerted, the version is marked refused in the store (never in force for
  ``planar params show`` and the optimisation), and it is not tried again.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from ..engine.strategy import Strategy
from ..logic import Logic
from ..params_store import ParamsStore, ParamsVersion, in_force
from ..storage import CorruptStateError
from .context import LiveContext

log = logging.getLogger("planar.runner.params")


class ParamsFollower:
    def __init__(self, s: Strategy, logic: Logic, ctx: LiveContext) -> None:
        self.s, self.logic, self.ctx = s, logic, ctx
        self.store = ParamsStore(s.config.shared_root)
        self.applied = 0  # the version whose params run (0: the config's)
        self.refused: set[int] = set()  # versions this engine refused (marked in the store too, when it can be written)
        self._unreadable = False

    def check(self) -> ParamsVersion | None:
        """Apply the version in force in the store (the newest neither the store nor this engine refused) when it is
        not the one running; returns it when it was applied. After a refusal the one before it is in force, and it
        runs: the engine ran the config's params while the store said v1 (v1 and a bad v2 written together, v2
        refused: a review)."""
        try:
            history = self.store.history()
        except (CorruptStateError, OSError) as exc:
            if not self._unreadable:
                self._unreadable = True
                log.error("%s: params store unreadable, running params kept: %s", self.s.name, exc)
                self.s.sink.record("error_occurred", reason=f"params store unreadable: {exc}")
            return None
        self._unreadable = False
        while True:
            current = in_force([v for v in history if v.version not in self.refused])
            number = current.version if current is not None else 0
            if number == self.applied:
                return None
            if current is None:  # every version refused: the config's own params
                return self.apply(ParamsVersion(0, {}, "config", "every later version was refused", "", 0))
            applied = self.apply(current)
            if applied is not None:
                return applied

    def apply(self, v: ParamsVersion) -> ParamsVersion | None:
        s, logic = self.s, self.logic
        merged = {**dict(s.config.logic_params or {}), **v.params}
        try:
            new = type(logic).Params.model_validate(merged)
        except ValidationError as exc:
            self.refused.add(v.version)
            why = "; ".join((f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"] for e in exc.errors())
            s.sink.record("params_rejected", version=v.version, source=v.source, reason=why)
            try:  # marked in the store: never "in force" for `planar params show` and the optimisation
                self.store.refuse(v.version, why)
            except (CorruptStateError, OSError) as store_exc:
                log.error("%s: params version %d could not be marked refused: %s", s.name, v.version, store_exc)
            s.alert(f"{s.name}: params version {v.version} ({v.source}) refused, running params kept: {why}", "warning")
            return None
        self.applied = v.version
        old = logic.params.model_dump()
        changed = {k: [old.get(k), val] for k, val in new.model_dump().items() if old.get(k) != val}
        logic.params = new
        self.ctx._set_params(new)
        s.sink.record("params_changed", version=v.version, source=v.source, reason=v.reason, payload={"changed": changed})
        summary = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()) or "no field changed"
        s.alert(f"{s.name}: params version {v.version} ({v.source}: {v.reason}): {summary}", "info")
        log.info("%s: params version %d applied: %s", s.name, v.version, summary)
        return v
