"""A search space: ``fast=3:20`` (an int range, both ends included), ``x=0.1:0.5`` (a float range),
``x=0.1:0.5:0.1`` (a range with a step: grid points), ``mode=a,b,c`` (choices). Each name must be a field of the
logic's ``Params``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import optuna
from pydantic import BaseModel


class SpaceError(ValueError):
    """A search space that cannot be used: one line naming the parameter."""


@dataclass(frozen=True)
class Dimension:
    name: str
    kind: str  # int | float | choice
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    choices: tuple[str | int | float, ...] = ()

    def points(self) -> list[str | int | float]:
        """The grid's values of this dimension."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.step is None:
            raise SpaceError(f"{self.name}: a float range needs a step for a grid ({self.name}={self.low}:{self.high}:STEP)")
        n = round((self.high - self.low) / self.step)
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def suggest(self, trial: optuna.Trial) -> str | int | float:
        if self.kind == "choice":
            picked = trial.suggest_categorical(self.name, list(self.choices))
            assert picked is not None  # the choices hold no None
            return picked
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1))
        return trial.suggest_float(self.name, self.low, self.high, step=self.step)


def _number(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse(items: Mapping[str, str], params_model: type[BaseModel]) -> list[Dimension]:
    """``{name: spec}`` -> dimensions, each name checked against ``params_model``'s fields."""
    known = sorted(params_model.model_fields)
    dims = []
    for name, spec in items.items():
        if name not in params_model.model_fields:
            raise SpaceError(f"--param {name}: not a field of {params_model.__qualname__} (its fields: {', '.join(known)})")
        if ":" in spec:
            parts = [_number(x) for x in spec.split(":")]
            if len(parts) not in (2, 3) or not all(isinstance(x, int | float) for x in parts):
                raise SpaceError(f"--param {name}={spec}: expected LO:HI or LO:HI:STEP (numbers)")
            lo, hi = float(parts[0]), float(parts[1])
            step = float(parts[2]) if len(parts) == 3 else None
            if hi < lo or (step is not None and step <= 0):
                raise SpaceError(f"--param {name}={spec}: the range is empty")
            kind = "int" if all(isinstance(x, int) for x in parts) else "float"
            dims.append(Dimension(name, kind, lo, hi, step))
        else:
            choices = tuple(_number(x) for x in spec.split(",") if x)
            if not choices:
                raise SpaceError(f"--param {name}={spec}: no value")
            dims.append(Dimension(name, "choice", choices=choices))
    if not dims:
        raise SpaceError("--param: give at least one parameter to search (NAME=LO:HI)")
    return dims


def pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name or not spec:
            raise SpaceError(f"--param {item!r}: expected NAME=LO:HI, NAME=LO:HI:STEP or NAME=a,b,c")
        out[name] = spec
    return out
