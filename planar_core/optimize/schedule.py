"""The scheduled optimisation's decision (the Prefect flow ``optimize_strategy`` runs it): search the config's
space walk-forward, then backtest the params in force on the newest fold's test window, and propose the newest
fold's best params to the running engine (``params_store``) only when

* their out-of-sample metric beats the params in force, on the same window, by ``optimization.min_improvement``
  (in the metric's units; for a minimised metric, lower is better), and
* every field they change stays within ``optimization.bounds`` (when a bound is given for it).

Otherwise nothing changes and the decision says why. Every proposal is a version of the params store (reason and
figures recorded, reversible with ``planar params rollback``); the engine applies it, traces ``params_changed`` and
alerts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..backtest.run import timeframe_ms
from ..config import StrategyConfig, check_logic
from ..model.types import Json
from ..params_store import ParamsStore, StaleProposal
from .search import Result, Search, span
from .space import parse


@dataclass
class Decision:
    applied: bool
    reason: str
    candidate: Json  # the params in force with the newest fold's best values of the searched fields
    current: Json  # the params in force (the whole set)
    candidate_value: float | None  # out of sample, on the newest fold's test window
    current_value: float | None  # the params in force, on the same window
    improvement: float | None
    window: tuple[int | None, int | None] = (None, None)
    out_of_bounds: dict[str, object] = field(default_factory=dict)
    version: int | None = None  # the params store's version, when applied

    def as_json(self) -> Json:
        return {
            "applied": self.applied,
            "reason": self.reason,
            "candidate": self.candidate,
            "current": self.current,
            "candidate_value": self.candidate_value,
            "current_value": self.current_value,
            "improvement": self.improvement,
            "window": list(self.window),
            "out_of_bounds": self.out_of_bounds,
            "version": self.version,
        }


def in_force(cfg: StrategyConfig, params_model: type[BaseModel] | None = None) -> tuple[int, Json]:
    """The params the running engine uses: the config's, with the params store's version in force over them, and
    that version's number (0: the config's). With ``params_model``, a version it does not validate is passed over
    as the engine passes over it (one written while the engine was down is not refused in the store yet)."""
    base = dict(cfg.logic_params or {})
    store = ParamsStore(cfg.shared_root)
    for v in reversed(store.history()):
        if v.refused:
            continue
        merged = {**base, **v.params}
        if params_model is not None:
            try:
                params_model.model_validate(merged)
            except ValidationError as exc:  # marked as the engine marks it: the store and this decision then agree on
                store.refuse(v.version, f"{params_model.__name__}: {exc.errors()[0]['msg']}")  # what is in force
                continue
        return v.version, merged
    return 0, base


def search_window(cfg: StrategyConfig, now_ms: int, data_end: int | None = None) -> tuple[int, int]:
    """The last ``optimization.days`` up to the last closed candle of the first timeframe, on candle boundaries
    (and no later than ``data_end``, the data's last close: a candle that closed after the download is not in it).
    ``now - days`` to the millisecond spanned a little under ``days`` (the last closed candle ends before now), so
    days = TRAIN + TEST (the shipped example) never made a fold, and two runs seconds apart searched other windows."""
    bar = timeframe_ms(cfg.timeframes[0])
    end = now_ms // bar * bar
    if data_end is not None:
        end = min(end, data_end)
    return end - cfg.optimization.days * 86_400_000, end


def scheduled_run(
    cfg: StrategyConfig, data: Path | None = None, progress: Callable[[str], None] = lambda line: None, now_ms: int | None = None
) -> tuple[Result, Decision]:
    opt = cfg.optimization
    if not opt.params:
        raise ValueError(f"{cfg.name}: optimization.params is empty: nothing to search")
    params_model = check_logic(cfg.logic or "", cfg.logic_params or {}, cfg.config_dir).Params
    search = Search(
        cfg,
        parse(opt.params, params_model),
        data=data,
        method=opt.method,
        metric=opt.metric,
        trials=opt.trials,
        workers=opt.workers,
        seed=opt.seed,
        progress=progress,
    )
    start, end = (
        (None, None)
        if data is not None
        else search_window(cfg, now_ms if now_ms is not None else int(time.time() * 1000), span(cfg, None)[1])
    )
    result = search.run(start, end, opt.walk_forward or None)
    best = result.best
    based_on, current = in_force(cfg, params_model)
    # only the searched fields change: the trial's whole set carried the optimisation config's other fields, and a
    # run with a config of its own (or a file edited since the engine loaded it) changed the running engine's
    # timeframe, outside the search and the bounds (an outside operator trial)
    searched = {k: v for k, v in best.best_params.items() if k in opt.params}
    candidate = {**current, **searched}
    window = best.test if best.test is not None else best.train
    cand = best.out_of_sample if best.test is not None else best.in_sample
    base, _ = search.evaluate(current, window[0], window[1])
    sign = -1.0 if result.direction == "minimize" else 1.0
    improvement = sign * (cand - base) if cand is not None and base is not None else None
    outside: dict[str, object] = {
        k: v
        for k, v in best.best_params.items()
        if k in opt.bounds and isinstance(v, int | float) and not opt.bounds[k][0] <= v <= opt.bounds[k][1]
    }
    decision = Decision(False, "", candidate, current, cand, base, improvement, window, outside)
    if not best.best_params:
        decision.reason = "no trial completed"
    elif candidate == current:
        decision.reason = "the best params are the ones in force"
    elif improvement is None:
        decision.reason = f"no out-of-sample {opt.metric} to compare (candidate {cand}, in force {base})"
    elif improvement < opt.min_improvement:
        decision.reason = (
            f"out-of-sample {opt.metric} {cand:.6g} vs {base:.6g} in force: {improvement:+.6g}, below the margin {opt.min_improvement:g}"
        )
    elif outside:
        limits = ", ".join(f"{k} [{lo:g}, {hi:g}]" for k, (lo, hi) in opt.bounds.items())  # 2, not 2.0, for an int field
        decision.reason = f"out of the configured bounds: {outside} (bounds {limits})"
    else:
        reason = f"out-of-sample {opt.metric} {cand:.6g} vs {base:.6g} in force: {improvement:+.6g} >= margin {opt.min_improvement:g}"
        try:
            made = ParamsStore(cfg.shared_root).propose(
                searched,  # over the params in force: what the search set, nothing else
                "optimize",
                reason,
                {"metric": opt.metric, "method": opt.method, **decision.as_json(), "reason": reason},
                based_on,
            )
        except StaleProposal as exc:  # another optimisation or a rollback came first: its figures compare with old params
            decision.reason = f"not proposed: {exc}; the next run decides again"
        else:
            decision.applied, decision.reason, decision.version = True, reason, made.version
    return result, decision
