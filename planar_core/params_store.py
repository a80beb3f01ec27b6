"""The strategy's ``Params`` as changed after it was configured: every version, who changed it, and why.

One JSON document per strategy (``<store_root>/<name>/params.json``), updated by compare-and-swap
(``storage.Store.update_json``), so the optimisation flow on one worker and ``planar params rollback`` on another
cannot lose each other's change. The config's ``logic_params`` are version 0, implied; each change is a new version
holding the *whole* params (not a diff), its source (``optimize`` / ``rollback`` / ``manual``), the reason in words
and what justified it (the out-of-sample figures). A rollback never erases anything: it is a new version that
restores the params of the version before the current one.

The running engine reads it (runner/host.py): at start, so a restart keeps the params it was running with, and
every few seconds after, applying a new version between two callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .model.json import integer, obj, text
from .model.types import Json
from .storage import Store, json_object

DOC = "params.json"


class NothingToRollBack(ValueError):
    """There is no earlier version to go back to."""


@dataclass(frozen=True)
class ParamsVersion:
    version: int
    params: Json
    source: str  # optimize | rollback | manual
    reason: str
    at: str  # UTC, ISO-8601
    previous: int  # the version it replaced
    details: Json = field(default_factory=dict)  # what justified it (in- and out-of-sample figures, bounds)

    def as_json(self) -> Json:
        return {
            "version": self.version,
            "params": self.params,
            "source": self.source,
            "reason": self.reason,
            "at": self.at,
            "previous": self.previous,
            "details": self.details,
        }


def _version(row: object) -> ParamsVersion:
    d = obj(row)
    return ParamsVersion(
        integer(d.get("version")),
        obj(d.get("params")),
        text(d.get("source")) or "?",
        text(d.get("reason")) or "",
        text(d.get("at")) or "",
        integer(d.get("previous")),
        obj(d.get("details")),
    )


class ParamsStore:
    """The params document of the strategy whose shared root is ``shared_root`` (module docstring)."""

    def __init__(self, shared_root: str) -> None:
        self.store = Store(shared_root)
        self.remedy = f"fix or remove {self.store.url(DOC)} (the config's logic_params are used without it)"

    def history(self) -> list[ParamsVersion]:
        raw = self.store.read(DOC)
        if raw is None:
            return []
        doc = json_object(raw, self.store.url(DOC), self.remedy)
        rows = doc.get("versions")
        return [_version(r) for r in rows] if isinstance(rows, list) else []

    def current(self) -> ParamsVersion | None:
        """The version in force (None: the config's own params)."""
        history = self.history()
        return history[-1] if history else None

    def propose(self, params: Json, source: str, reason: str, details: Json | None = None) -> ParamsVersion:
        """A new version holding ``params`` (the whole set), in force from now."""
        return self._append(lambda versions: (params, versions[-1].version if versions else 0), source, reason, details or {})

    def rollback(self, reason: str = "rolled back by hand") -> ParamsVersion:
        """A new version restoring the params in force before the current one (the config's when that was version 0:
        ``params`` then is empty and the engine goes back to ``logic_params``)."""

        def restore(versions: list[ParamsVersion]) -> tuple[Json, int]:
            if not versions:
                raise NothingToRollBack("no params change to roll back: the config's logic_params are in force")
            current = versions[-1]
            earlier = {v.version: v for v in versions}
            before = earlier.get(current.previous)
            return (dict(before.params) if before is not None else {}), current.version

        return self._append(restore, "rollback", reason, {})

    def _append(self, pick: Callable[[list[ParamsVersion]], tuple[Json, int]], source: str, reason: str, details: Json) -> ParamsVersion:
        def change(doc: dict[str, object]) -> ParamsVersion:
            rows = doc.get("versions")
            versions = [_version(r) for r in rows] if isinstance(rows, list) else []
            params, previous = pick(versions)
            made = ParamsVersion(
                (versions[-1].version if versions else 0) + 1,
                dict(params),
                source,
                reason,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                previous,
                dict(details),
            )
            doc["versions"] = [v.as_json() for v in versions] + [made.as_json()]
            return made

        return self.store.update_json(DOC, change, self.remedy)
