"""A search space: ``fast=3:20`` (an int range, both ends included), ``x=0.1:0.5`` (a float range),
``x=0.1:0.5:0.1`` (a range with a step: grid points), ``mode=a,b,c`` (choices). Each name must be a field of the
logic's ``Params``, and each range's ends (each choice; every grid point of a small range) must pass that field's
own constraints (``Field(ge=1)``, its type): refused here, in one line, naming the field. What pydantic can only tell
from several fields together (a model validator: MACross's ``fast < slow``) is left to the search, which records
such a trial ``invalid``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, cast

import optuna
from pydantic import BaseModel, TypeAdapter, ValidationError

GRID_CHECKED = 10_000  # a range with at most this many grid points has each checked against the field; else its ends


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
        n = math.floor((self.high - self.low) / self.step + 1e-9)  # the last point at or below high
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
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[object]:
    info = model.model_fields[name]
    field: type[object] = cast(type[object], Annotated[info.annotation, info])  # the field alone: type and constraints
    return TypeAdapter(field)


def _check(model: type[BaseModel], name: str, spec: str, value: int | float | str) -> None:
    try:
        _adapter(model, name).validate_python(value)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        raise SpaceError(f"--param {name}={spec}: {name}={value!r} is refused by {model.__qualname__} ({msg})") from None


def _choice(model: type[BaseModel], name: str, spec: str, text: str) -> int | float | str:
    """A choice as a number when the field takes it as one, else as the text itself (``mode=1,2`` for a str)."""
    number = _number(text)
    if number != text:
        try:
            _adapter(model, name).validate_python(number)
            return number
        except ValidationError:
            pass
    _check(model, name, spec, text)
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
            dim = Dimension(name, kind, lo, hi, step)
            if kind == "int" or step is not None:
                grid = dim.points()
                values = grid if len(grid) <= GRID_CHECKED else [grid[0], grid[-1]]
            else:
                values = [lo, hi]
            for v in values:
                _check(params_model, name, spec, v)
            dims.append(dim)
        else:
            raw = [x for x in spec.split(",") if x]
            if not raw:
                raise SpaceError(f"--param {name}={spec}: no value")
            dims.append(Dimension(name, "choice", choices=tuple(_choice(params_model, name, spec, x) for x in raw)))
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
