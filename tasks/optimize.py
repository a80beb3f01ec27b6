"""Tasks of the scheduled optimisation: download the candles it searches (retried: a download resumes), then the
search and the decision (not retried: it may propose params to the running engine)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from planar_core.model.types import Json

from . import Overrides
from .blocks import secret_block_provider
from .strategy import load_strategy_config

WARMUP_BARS = 100


@task(retries=2, retry_delay_seconds=[10, 60], cache_policy=NO_CACHE)
async def download_history(strategy: str, config_path: str | None = None, overrides: Overrides = None) -> Json:
    """The universe's candles of the first timeframe over the last ``optimization.days`` (plus the warm-up) into the
    market-data store; returns what each series holds."""
    from planar_core.exchange.registry import credential_fields, dialect_of
    from planar_core.history.check import timeframe_ms
    from planar_core.history.download import download
    from planar_core.history.store import default_root

    cfg = load_strategy_config(strategy, config_path, overrides)
    cfg = cfg.model_copy(
        update={"credentials": cfg.credentials.resolved(os.environ, secret_block_provider, credential_fields(cfg.exchange))}
    )
    tf = cfg.timeframes[0]
    since = int(time.time() * 1000) - cfg.optimization.days * 86_400_000 - WARMUP_BARS * timeframe_ms(tf)
    ex = dialect_of(cfg.exchange).build(cfg)
    log = get_run_logger()
    try:
        await ex.load_markets()
        results = await download(ex, cfg.exchange, [a.symbol for a in cfg.universe], tf, since, None, default_root(cfg), log.info)
    finally:
        await ex.close()
    return {r.symbol: r.check.line() for r in results}


@task(cache_policy=NO_CACHE)
def search_and_decide(strategy: str, config_path: str | None = None, data: str | None = None, overrides: Overrides = None) -> Json:
    """The walk-forward search and the decision (planar_core/optimize/schedule.py)."""
    from planar_core.optimize.output import as_json, trials_frame
    from planar_core.optimize.schedule import scheduled_run

    cfg = load_strategy_config(strategy, config_path, overrides)
    log = get_run_logger()
    result, decision = scheduled_run(cfg, Path(data) if data else None, log.info)
    rows = trials_frame(result).to_dict("records")
    return {"result": as_json(result), "decision": decision.as_json(), "rows": [{str(k): v for k, v in r.items()} for r in rows]}
