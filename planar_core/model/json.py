"""Reading fields of JSON-shaped data (``Json``: ccxt structures, events, records) with their types checked.

``Json`` values are ``object``: whoever reads a field says what it expects, and these helpers convert or fall
back, so a malformed answer never becomes a wrong number silently typed as one."""

from __future__ import annotations

import math

from .types import Json


def num(x: object, default: float = 0.0) -> float:
    """A finite float from a number or a numeric string; ``default`` for None, "" or anything else."""
    if isinstance(x, bool) or x is None:
        return default
    if isinstance(x, (int, float, str)):
        try:
            v = float(x)
        except ValueError:
            return default
        return v if math.isfinite(v) else default
    return default


def opt_num(x: object) -> float | None:
    """Like ``num`` but None when absent or unreadable."""
    v = num(x, math.nan)
    return None if math.isnan(v) else v


def integer(x: object, default: int = 0) -> int:
    return int(num(x, float(default)))


def text(x: object) -> str | None:
    """A non-empty string (numbers are written out), else None."""
    if x is None or x == "":
        return None
    return x if isinstance(x, str) else str(x)


def obj(x: object) -> Json:
    """A mapping with string keys (an empty one for anything else)."""
    return {str(k): v for k, v in x.items()} if isinstance(x, dict) else {}


def rows(x: object) -> list[Json]:
    """The mappings of a list (non-mappings dropped)."""
    return [obj(r) for r in x if isinstance(r, dict)] if isinstance(x, list) else []


def strict_dumps(value: object) -> str:
    """JSON that every parser reads: NaN and infinities become ``null`` (``json.dumps`` writes bare ``NaN``, which
    strict parsers refuse), other non-JSON values their ``str``."""
    import json

    def clean(x: object) -> object:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if hasattr(x, "item") and callable(x.item):  # numpy scalars
            return clean(x.item())
        return x

    return json.dumps(clean(value), default=str, allow_nan=False)
