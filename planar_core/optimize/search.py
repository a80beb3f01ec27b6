"""The search: Optuna proposes the trials (grid, random or TPE, seeded), each trial is a full backtest
(``backtest.command.backtest``) in a worker process, and the trials are told back in the order they were asked, so
the same data, space and seed give the same trials whatever the number of workers (a batch of ``workers`` trials is
asked, run in parallel, then told in order).

Walk-forward (``TRAIN:TEST``): consecutive folds over the data's span, the train window of each followed by its test
window, the next fold starting one test window later; each fold's search runs on its train window, its best params
are then backtested on its test window (out of sample, never seen by the search). Without it: one search on the
whole range.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import multiprocessing
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import optuna
from pydantic import ValidationError

from ..backtest.command import backtest, load_history
from ..backtest.run import timeframe_ms
from ..config import StrategyConfig, check_logic
from ..model.types import Json
from .space import Dimension, SpaceError

MINIMISED = frozenset({"max_drawdown", "max_drawdown_abs", "fees"})
UNITS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class OptimizeError(ValueError):
    """An optimisation that cannot run as asked: one line."""


@dataclass(frozen=True)
class Task:
    """One backtest, as a worker process receives it (everything picklable)."""

    config: Json
    config_dir: str | None
    data: str | None
    params: Json
    start_ms: int | None
    end_ms: int | None
    out: str
    warmup: int


@dataclass
class TrialRow:
    fold: int
    number: int
    params: Json
    status: str  # ok | invalid | error
    value: float | None  # the metric in the train window (in sample)
    summary: Json = field(default_factory=dict)
    note: str = ""


@dataclass
class Fold:
    number: int
    train: tuple[int | None, int | None]
    test: tuple[int, int] | None
    best_params: Json
    in_sample: float | None
    out_of_sample: float | None = None
    out_of_sample_summary: Json = field(default_factory=dict)


@dataclass
class Result:
    metric: str
    direction: str
    method: str
    trials: list[TrialRow]
    folds: list[Fold]

    @property
    def best(self) -> Fold:
        return self.folds[-1]  # the newest fold's: the params a scheduled run proposes


def run_task(task: Task) -> Json:
    """A worker's job: one backtest, its summary (``error`` when it raised)."""
    cfg = StrategyConfig.model_validate(task.config)
    cfg._config_dir = Path(task.config_dir) if task.config_dir else None
    step = timeframe_ms(cfg.timeframes[0])
    try:
        history = load_history(cfg, Path(task.data) if task.data else None, task.start_ms, task.end_ms, task.warmup * step)
        return _run(lambda: backtest(cfg, history, Path(task.out), task.start_ms, task.end_ms, task.params, task.warmup, report=False))
    except Exception as exc:  # a trial that fails is recorded, never stops the search
        return {"error": f"{type(exc).__name__}: {exc}"}


def _run(make: Callable[[], Coroutine[object, object, Json]]) -> Json:
    """Run a coroutine to its end from synchronous code: in this thread, or in a thread of its own when this one
    already runs an event loop (a Prefect task called from an async flow)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1) as one:
        return one.submit(lambda: asyncio.run(make())).result()


def duration_ms(text: str, bar_ms: int) -> int:
    if text.isdigit():
        return int(text) * bar_ms
    unit = UNITS.get(text[-1:])
    if unit is None or not text[:-1].replace(".", "", 1).isdigit():
        raise OptimizeError(f"--walk-forward: {text!r} is not a duration (20d, 12h, 90m, 2w) or a candle count")
    return int(float(text[:-1]) * unit)


def folds(spec: str, start: int, end: int, bar_ms: int) -> list[tuple[int, int, int]]:
    """(train start, test start, test end) of each fold over [start, end)."""
    train_s, sep, test_s = spec.partition(":")
    if not sep:
        raise OptimizeError(f"--walk-forward: {spec!r}: expected TRAIN:TEST (e.g. 20d:10d)")
    train, test = duration_ms(train_s, bar_ms), duration_ms(test_s, bar_ms)
    out, t = [], start
    while t + train + test <= end:
        out.append((t, t + train, t + train + test))
        t += test
    if not out:
        raise OptimizeError(f"--walk-forward {spec}: the data spans {(end - start) / 86_400_000:.1f} days, less than one fold")
    return out


def span(cfg: StrategyConfig, data: Path | None) -> tuple[int, int]:
    """The first candle's open and the last candle's close common to the universe's data."""
    step = timeframe_ms(cfg.timeframes[0])
    firsts, lasts = [], []
    for chunks in load_history(cfg, data, None, None, 0).values():
        first = last = None
        for df in chunks:
            first = int(df["timestamp"].iloc[0]) if first is None else first
            last = int(df["timestamp"].iloc[-1])
        if first is None or last is None:
            raise OptimizeError("no candles in the data")
        firsts.append(first)
        lasts.append(last + step)
    return max(firsts), min(lasts)


def sampler(method: str, dims: list[Dimension], seed: int) -> optuna.samplers.BaseSampler:
    """grid: every point, in order, enqueued as fixed trials (Optuna's GridSampler stops the study from inside
    ``tell`` once the grid is done, which the ask/tell loop of parallel workers cannot take); random; TPE."""
    if method in ("grid", "random"):
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "bayes":
        return optuna.samplers.TPESampler(seed=seed)
    raise SpaceError(f"--method: {method!r} is not grid, random or bayes")


class Search:
    def __init__(
        self,
        cfg: StrategyConfig,
        dims: list[Dimension],
        *,
        data: Path | None = None,
        method: str = "bayes",
        metric: str = "sharpe",
        trials: int | None = None,
        workers: int = 1,
        seed: int = 7,
        warmup: int = 100,
        work_dir: Path | None = None,
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.cfg, self.dims, self.data, self.method, self.metric = cfg, dims, data, method, metric
        self.direction: Literal["minimize", "maximize"] = "minimize" if metric in MINIMISED else "maximize"
        size = math.prod(len(d.points()) for d in dims) if method == "grid" else None
        self.trials = trials if trials is not None else (size or 50)
        if size is not None:
            self.trials = min(self.trials, size)
        self.workers, self.seed, self.warmup, self.progress = workers, seed, warmup, progress
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="planar-optimize-"))
        self.logic = check_logic(cfg.logic or "", cfg.logic_params or {}, cfg.config_dir)
        self._count = 0
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def _task(self, params: Json, start: int | None, end: int | None) -> Task:
        self._count += 1
        return Task(
            self.cfg.model_dump(mode="json"),
            str(self.cfg.config_dir) if self.cfg.config_dir else None,
            str(self.data) if self.data else None,
            params,
            start,
            end,
            str(self.work_dir / f"trial-{self._count:05d}"),
            self.warmup,
        )

    def evaluate(self, params: Json, start: int | None, end: int | None) -> tuple[float | None, Json]:
        """One backtest of ``params`` between ``start`` and ``end``: the metric and the summary."""
        summary = run_task(self._task(params, start, end))
        return self._value(summary), summary

    def _value(self, summary: Json) -> float | None:
        v = summary.get(self.metric)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None

    def _batches(self, study: optuna.Study, n: int) -> Iterator[list[tuple[optuna.Trial, Json]]]:
        asked = 0
        while asked < n:
            batch: list[tuple[optuna.Trial, Json]] = []
            for _ in range(min(self.workers, n - asked)):
                trial = study.ask()
                batch.append((trial, {d.name: d.suggest(trial) for d in self.dims}))
                asked += 1
            yield batch

    def _search(self, pool: Executor | None, fold: int, start: int | None, end: int | None, rows: list[TrialRow]) -> optuna.Study:
        study = optuna.create_study(direction=self.direction, sampler=sampler(self.method, self.dims, self.seed))
        if self.method == "grid":
            for point in itertools.islice(itertools.product(*(d.points() for d in self.dims)), self.trials):
                study.enqueue_trial(dict(zip((d.name for d in self.dims), point)))
        for batch in self._batches(study, self.trials):
            valid: list[tuple[optuna.Trial, Json]] = []
            for trial, params in batch:
                try:
                    self.logic.Params.model_validate({**(self.cfg.logic_params or {}), **params})
                except ValidationError as exc:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    rows.append(TrialRow(fold, trial.number, params, "invalid", None, note=exc.errors()[0]["msg"]))
                    continue
                valid.append((trial, params))
            tasks = [self._task(p, start, end) for _, p in valid]
            summaries = list(pool.map(run_task, tasks)) if pool is not None else [run_task(t) for t in tasks]
            for (trial, params), summary in zip(valid, summaries):
                value = self._value(summary)
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    status = "error" if "error" in summary else "ok"
                    rows.append(TrialRow(fold, trial.number, params, status, None, summary, str(summary.get("error", f"no {self.metric}"))))
                else:
                    study.tell(trial, value)
                    rows.append(TrialRow(fold, trial.number, params, "ok", value, summary))
                self.progress(f"fold {fold} trial {trial.number}: {params} -> {self.metric} {value}")
        return study

    def run(self, start: int | None = None, end: int | None = None, walk_forward: str | None = None) -> Result:
        rows: list[TrialRow] = []
        out: list[Fold] = []
        pool: Executor | None = None
        if self.workers > 1:
            pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            if walk_forward is None:
                study = self._search(pool, 0, start, end, rows)
                best = study.best_trial if _any_complete(study) else None
                out.append(Fold(0, (start, end), None, dict(best.params) if best else {}, best.value if best else None))
            else:
                first, last = span(self.cfg, self.data)
                first, last = max(first, start or first), min(last, end or last)
                for i, (t0, t1, t2) in enumerate(folds(walk_forward, first, last, timeframe_ms(self.cfg.timeframes[0]))):
                    study = self._search(pool, i, t0, t1, rows)
                    if not _any_complete(study):
                        out.append(Fold(i, (t0, t1), (t1, t2), {}, None))
                        continue
                    best = study.best_trial
                    summary = run_task(self._task(dict(best.params), t1, t2))
                    out.append(Fold(i, (t0, t1), (t1, t2), dict(best.params), best.value, self._value(summary), summary))
        finally:
            if pool is not None:
                pool.shutdown()
        return Result(self.metric, self.direction, self.method, rows, out)


def _any_complete(study: optuna.Study) -> bool:
    return any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
