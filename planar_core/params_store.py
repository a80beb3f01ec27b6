"""The strategy's ``Params`` as changed after it was configured: every version, who changed it, and why.

One JSON document per strategy (``<store_root>/<name>/params.json``), updated by compare-and-swap
(``storage.Store.update_json``), so the optimisation flow on one worker and ``planar params rollback`` on another
cannot lose each other's change. The config's ``logic_params`` are version 0, implied; each change is a new version
holding the *whole* params (not a diff), its source (``optimize`` / ``rollback`` / ``manual``), the reason in words
and what justified it (the out-of-sample figures). A rollback never erases anything: it is a new version that
restores the params of the version before the one in force; rolling back again steps further back, to the config's.
A version the engine refused (its ``Params`` did not validate it) is marked so and is never the one in force.
A proposal names the version its decision was based on and is refused (``StaleProposal``) when another change came
in between: two optimisations at once, or a rollback during a search, cannot stack a change on figures made stale.

The running engine reads it (runner/host.py): at start, so a restart keeps the params it was running with, and
every few seconds after, applying a new version between two callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .model.json import integer, obj, text
from .model.types import Json
from .storage import Store, json_object

DOC = "params.json"


class NothingToRollBack(ValueError):
    """There is no earlier version to go back to."""


class StaleProposal(ValueError):
    """The version in force is no longer the one the proposal's decision was based on."""


@dataclass(frozen=True)
class ParamsVersion:
    version: int
    params: Json
    source: str  # optimize | rollback | manual
    reason: str
    at: str  # UTC, ISO-8601
    previous: int  # the version it replaced
    details: Json = field(default_factory=dict)  # what justified it (in- and out-of-sample figures, bounds)
    restores: int | None = None  # a rollback: the version whose params it restores (0: the config's)
    refused: str = ""  # why the engine refused it (its Params did not validate): never in force

    def as_json(self) -> Json:
        return {
            "version": self.version,
            "params": self.params,
            "source": self.source,
            "reason": self.reason,
            "at": self.at,
            "previous": self.previous,
            "details": self.details,
            "restores": self.restores,
            "refused": self.refused,
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
        None if d.get("restores") is None else integer(d.get("restores")),
        text(d.get("refused")) or "",
    )


def _restored_by_old_rollbacks(versions: list[ParamsVersion]) -> list[ParamsVersion]:
    """A rollback written before ``restores`` existed restored the params of the version before the one it replaced:
    said here, so that rolling back again steps further back instead of toggling (a review)."""
    earlier: dict[int, ParamsVersion] = {}
    out = []
    for v in versions:
        if v.source == "rollback" and v.restores is None:
            replaced = earlier.get(v.previous)
            number = replaced.previous if replaced is not None else 0
            step = earlier.get(number)
            v = replace(v, restores=step.restores if step is not None and step.restores is not None else number)
        earlier[v.version] = v
        out.append(v)
    return out


def in_force(versions: list[ParamsVersion]) -> ParamsVersion | None:
    """The newest version the engine did not refuse (None: the config's own params)."""
    return next((v for v in reversed(versions) if not v.refused), None)


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
        return _restored_by_old_rollbacks([_version(r) for r in rows]) if isinstance(rows, list) else []

    def current(self) -> ParamsVersion | None:
        """The version in force (None: the config's own params)."""
        return in_force(self.history())

    def propose(self, params: Json, source: str, reason: str, details: Json | None = None, based_on: int | None = None) -> ParamsVersion:
        """A new version holding ``params`` (the whole set), in force from now. ``based_on``: the version in force
        when the decision was made (0: the config's); another in force now raises ``StaleProposal``."""

        def pick(versions: list[ParamsVersion]) -> tuple[Json, int, int | None]:
            now = in_force(versions)
            number = now.version if now is not None else 0
            if based_on is not None and number != based_on:
                raise StaleProposal(f"the params in force changed while deciding (v{based_on} then, v{number} now)")
            return params, number, None

        return self._append(pick, source, reason, details or {})

    def rollback(self, reason: str = "rolled back by hand") -> ParamsVersion:
        """A new version restoring the params in force before the current one (the config's when that was version 0:
        ``params`` then is empty and the engine goes back to ``logic_params``). Again: one more step back."""

        def restore(versions: list[ParamsVersion]) -> tuple[Json, int, int | None]:
            current = in_force(versions)
            if current is None or current.restores == 0:
                raise NothingToRollBack("no params change to roll back: the config's logic_params are in force")
            earlier = {v.version: v for v in versions}
            carried = earlier.get(current.restores) if current.restores is not None else current  # whose params
            number = carried.previous if carried is not None else 0  # in force before it
            while number in earlier and earlier[number].refused:  # a refused version was never in force: past it
                number = earlier[number].previous
            step = earlier.get(number)
            if step is not None and step.restores is not None:  # an older rollback: the version it restored
                number = step.restores
            target = earlier.get(number)
            return (dict(target.params) if target is not None else {}), current.version, number

        return self._append(restore, "rollback", reason, {})

    def refuse(self, version: int, why: str) -> None:
        """The engine refused ``version`` (its ``Params`` did not validate it): never in force, said by ``show``."""

        def change(doc: dict[str, object]) -> None:
            rows = doc.get("versions")
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict) and row.get("version") == version:
                    row["refused"] = why or "refused"

        self.store.update_json(DOC, change, self.remedy)

    def _append(
        self, pick: Callable[[list[ParamsVersion]], tuple[Json, int, int | None]], source: str, reason: str, details: Json
    ) -> ParamsVersion:
        def change(doc: dict[str, object]) -> ParamsVersion:
            rows = doc.get("versions")
            versions = _restored_by_old_rollbacks([_version(r) for r in rows]) if isinstance(rows, list) else []
            params, previous, restores = pick(versions)
            made = ParamsVersion(
                (versions[-1].version if versions else 0) + 1,
                dict(params),
                source,
                reason,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                previous,
                dict(details),
                restores,
            )
            doc["versions"] = [v.as_json() for v in versions] + [made.as_json()]
            return made

        return self.store.update_json(DOC, change, self.remedy)
