"""The engine's command line: the sandbox exchange, the event trace and ``new`` (``python -m planar_core``).

No Prefect here: the orchestration commands (run, demo, emergency-stop, rearm, serve, deployments, automations)
live in ``flows/cli.py``, which builds the full ``planar`` command from these groups and ``run_cli``."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import pandas as pd
import typer

from .model.json import num, strict_dumps
from .model.types import Json
from .sandbox.limits import Limits

if TYPE_CHECKING:
    from rich.console import Console

    from .config import StrategyConfig
    from .params_store import ParamsStore

sandbox_app = typer.Typer(help="The local sandbox exchange (Binance, or Bybit v5 with --venue bybit).", no_args_is_help=True)
T = TypeVar("T")
trace_app = typer.Typer(help="Read the event trace (Zarr) of an exchange account.", no_args_is_help=True)


def backtest_cmd(
    config: Path = typer.Argument(..., help="the strategy's config (as for planar run)"),
    start: str | None = typer.Option(None, "--start", help="first candle (ISO-8601 date/time, UTC if no zone, or epoch ms)"),
    end: str | None = typer.Option(None, "--end", help="stop before this time"),
    data: Path | None = typer.Option(
        None, "--data", help="CSV/Parquet file, or folder of <SYMBOL>-<timeframe>.csv|parquet files (default: the market-data store)"
    ),
    param: list[str] | None = typer.Option(None, "--param", help="a logic param over the config's, NAME=VALUE (repeatable)"),
    out: Path | None = typer.Option(None, "--out", help="where the trace and summary.json go (default: ./backtests/<name>-<time>)"),
    warmup: int = typer.Option(100, "--warmup", min=0, help="candles before --start loaded as history before on_start"),
    as_json: bool = typer.Option(False, "--json", help="print one strict-JSON object"),
) -> None:
    """Run a strategy over history on a simulated clock, through the full engine (docs/backtest.md)."""
    from .backtest.command import BacktestInputError, backtest, load_history, parse_params, parse_time, summary_text, warnings
    from .backtest.run import warmup_span_ms
    from .config import ConfigError, load_config

    try:
        cfg = load_config(config)
        start_ms, end_ms = parse_time(start), parse_time(end)
        params = parse_params(param)
        history = load_history(cfg, data, start_ms, end_ms, warmup_span_ms(cfg, warmup))
    except (ConfigError, BacktestInputError) as exc:
        fail(str(exc))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    where = out if out is not None else Path("backtests") / f"{cfg.name}-{stamp}"
    try:
        summary = asyncio.run(backtest(cfg, history, where, start_ms, end_ms, params, warmup))
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(strict_dumps(summary))
    else:
        typer.echo(summary_text(summary))
        typer.echo(f"wrote {where / 'summary.json'}")
    for line in warnings(summary):
        typer.echo(line, err=True)
    if summary.get("callback_errors"):
        raise typer.Exit(1)  # finished, but not the strategy's figures: a script must not take them as such


params_app = typer.Typer(help="The strategy's Params as changed while it runs (optimisation, rollback).", no_args_is_help=True)


def _params_store(name: str, config: Path | None, root: str | None) -> tuple[str, ParamsStore]:
    """The params store of strategy ``name``: under ``--root`` (a store root), else the config's, else $PLANAR_HOME."""
    import os

    from .params_store import ParamsStore

    if config is not None:
        from .config import ConfigError, load_config

        try:
            cfg = load_config(config, name=name)
        except (ConfigError, OSError) as exc:
            fail(f"{config}: {exc}")
        return cfg.shared_root, ParamsStore(cfg.shared_root)
    base = (root or os.environ.get("PLANAR_HOME", "./.planar")).rstrip("/")
    return f"{base}/{name}", ParamsStore(f"{base}/{name}")


@params_app.command("show")
def params_show(
    name: str = typer.Argument(..., help="the strategy's name"),
    config: Path | None = typer.Option(None, "--config", help="its config (for its store root)"),
    root: str | None = typer.Option(None, "--root", help="the store root (default: $PLANAR_HOME, else ./.planar)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every params version of a strategy, the one in force last (version 0: the config's logic_params)."""
    from .params_store import in_force
    from .storage import CorruptStateError

    where, store = _params_store(name, config, root)
    try:
        history = store.history()
    except CorruptStateError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(strict_dumps({"strategy": name, "store": where, "versions": [v.as_json() for v in history]}))
        return
    if not history:
        typer.echo(f"{name}: no params change recorded ({where}): the config's logic_params are in force")
        return
    for v in history:
        refused = f"  REFUSED by the engine: {v.refused}" if v.refused else ""
        typer.echo(f"v{v.version}  {v.at}  {v.source:<9} replaced v{v.previous}  {strict_dumps(v.params)}  {v.reason}{refused}")
    now = in_force(history)
    typer.echo(f"in force: v{now.version}" if now is not None else "in force: the config's logic_params (v0)")


@params_app.command("rollback")
def params_rollback(
    name: str = typer.Argument(..., help="the strategy's name"),
    config: Path | None = typer.Option(None, "--config", help="its config (for its store root)"),
    root: str | None = typer.Option(None, "--root", help="the store root (default: $PLANAR_HOME, else ./.planar)"),
    reason: str = typer.Option("rolled back by hand", "--reason", help="why, for the record and the alert"),
) -> None:
    """Restore the params in force before the current version (a new version: nothing is erased; again: one more
    step back). A running engine applies it within seconds and alerts."""
    from .params_store import NothingToRollBack
    from .storage import CorruptStateError

    where, store = _params_store(name, config, root)
    try:
        made = store.rollback(reason)
    except (NothingToRollBack, CorruptStateError) as exc:
        fail(f"{name}: {exc}")
    restored = strict_dumps(made.params) if made.params else "the config's logic_params"
    typer.echo(f"{name}: v{made.version} restores {restored} (replaced v{made.previous}); {where}")


data_app = typer.Typer(help="Market data for backtests: download candles, list and check the store (docs/data.md).", no_args_is_help=True)


def _data_root(config: Path | None, root: Path | None) -> tuple[Path, str, StrategyConfig | None]:
    """The store root (``--root``, else the config's ``<store_root>/market_data``, else $PLANAR_HOME's), the
    exchange and the config."""
    import os

    from .history.store import default_root

    cfg = None
    if config is not None:
        from .config import ConfigError, load_config

        try:
            cfg = load_config(config)
        except (ConfigError, OSError) as exc:
            fail(f"{config}: {exc}")
    base = root or (default_root(cfg) if cfg is not None else Path(os.environ.get("PLANAR_HOME", "./.planar")) / "market_data")
    return base, (cfg.exchange if cfg is not None else "binance"), cfg


@data_app.command("download")
def data_download(
    symbols: list[str] = typer.Argument(..., help="unified symbols, e.g. BTC/USDT ETH/USDT:USDT"),
    timeframe: str = typer.Option("1m", "--timeframe", help="candle interval (ccxt notation)"),
    since: str = typer.Option(..., "--since", help="from (ISO-8601 date/time, UTC if no zone, or epoch ms)"),
    until: str | None = typer.Option(None, "--until", help="to (default: now)"),
    config: Path | None = typer.Option(None, "--config", help="a strategy config: its exchange, endpoint (sandbox) and credentials"),
    exchange: str | None = typer.Option(None, "--exchange", help="without --config: a ccxt exchange id (public data)"),
    root: Path | None = typer.Option(None, "--root", help="the store (default: <store_root>/market_data)"),
) -> None:
    """Page the exchange's candles into the store; resumes where the last download ended; reports gaps and duplicates."""
    from .backtest.command import BacktestInputError, parse_time
    from .history.check import UNIT_MS
    from .history.download import DownloadError, download

    base, name, cfg = _data_root(config, root)
    try:
        since_ms, until_ms = parse_time(since), parse_time(until)
    except BacktestInputError as exc:
        fail(str(exc))
    if timeframe[-1:] not in UNIT_MS or not timeframe[:-1].isdigit():
        fail(f"--timeframe: {timeframe!r} is not a candle interval (1m, 5m, 1h, 1d ...)")
    assert since_ms is not None

    async def go() -> list[object]:
        import ccxt.async_support as ccxt_async

        from .exchange.registry import dialect_of

        if cfg is not None:
            ex = dialect_of(cfg.exchange).build(cfg)
        else:
            maker = getattr(ccxt_async, exchange or name, None)
            if maker is None:
                fail(f"--exchange: {exchange!r} is not a ccxt exchange")
            ex = maker({"enableRateLimit": True})
        try:
            await ex.load_markets()
            return list(
                await download(ex, cfg.exchange if cfg else (exchange or name), symbols, timeframe, since_ms, until_ms, base, progress)
            )
        finally:
            await ex.close()

    def progress(line: str) -> None:
        typer.echo(line, err=True)

    try:
        results = asyncio.run(go())
    except DownloadError as exc:
        fail(str(exc))
    except Exception as exc:  # the exchange unreachable after the retries: one line
        fail(f"download failed: {type(exc).__name__}: {str(exc)[:200]}")
    from .history.download import DownloadResult

    for r in results:
        assert isinstance(r, DownloadResult)
        typer.echo(f"{r.symbol} {r.timeframe}: {r.written} written; {r.check.line()}; {r.path}")


@data_app.command("list")
def data_list(
    config: Path | None = typer.Option(None, "--config", help="a strategy config (its store)"),
    root: Path | None = typer.Option(None, "--root", help="the store (default: <store_root>/market_data)"),
) -> None:
    """Every stored series: exchange, symbol, timeframe, candles, first and last."""
    from .history.store import listing, read_series

    base, _, _ = _data_root(config, root)
    rows = listing(base)
    if not rows:
        typer.echo(f"no market data under {base} (planar data download ...)")
    for ex, sym, tf, path in rows:
        df = read_series(path)
        first, last = (
            (pd.Timestamp(int(df["timestamp"].iloc[i]), unit="ms", tz="UTC").isoformat() for i in (0, -1)) if len(df) else ("-", "-")
        )
        typer.echo(f"{ex:<10} {sym:<16} {tf:<4} {len(df):>9}  {first}  {last}")


@data_app.command("check")
def data_check(
    symbol: str = typer.Argument(..., help="unified symbol"),
    timeframe: str = typer.Option("1m", "--timeframe"),
    config: Path | None = typer.Option(None, "--config", help="a strategy config (its store and exchange)"),
    root: Path | None = typer.Option(None, "--root", help="the store (default: <store_root>/market_data)"),
) -> None:
    """Gaps, duplicates and bad rows of one stored series; exit 1 if it has any."""
    from .history.check import check_candles
    from .history.store import read_series, series_path

    base, name, _ = _data_root(config, root)
    path = series_path(base, name, symbol, timeframe)
    if not path.exists():
        fail(f"no {symbol} {timeframe} in {base} (planar data download {symbol} --timeframe {timeframe} --since DATE)")
    check = check_candles(read_series(path), timeframe)
    typer.echo(f"{symbol} {timeframe}: {check.line()}")
    for after, before, missing in check.gaps[:20]:
        typer.echo(
            f"  gap: {missing} candles missing after {pd.Timestamp(after, unit='ms', tz='UTC')} (next {pd.Timestamp(before, unit='ms', tz='UTC')})"
        )
    raise typer.Exit(0 if check.clean else 1)


def optimize_cmd(
    config: Path = typer.Argument(..., help="the strategy's config (as for planar run)"),
    param: list[str] = typer.Option(
        ..., "--param", help="a Params field to search: NAME=LO:HI, NAME=LO:HI:STEP or NAME=a,b,c (repeatable)"
    ),
    method: str = typer.Option("bayes", "--method", help="grid, random or bayes (Optuna's TPE)"),
    metric: str = typer.Option("sharpe", "--metric", help="a summary figure: sharpe, return, realized_pnl, max_drawdown (minimised) ..."),
    trials: int | None = typer.Option(None, "--trials", min=1, help="trials per fold (default: the whole grid, else 50)"),
    walk_forward: str | None = typer.Option(None, "--walk-forward", help="TRAIN:TEST windows, e.g. 20d:10d or 500:200 (candles)"),
    workers: int = typer.Option(1, "--workers", min=1, help="backtests in parallel (processes)"),
    seed: int = typer.Option(7, "--seed", help="the search's seed"),
    data: Path | None = typer.Option(None, "--data", help="candle files, as for planar backtest (default: the market-data store)"),
    start: str | None = typer.Option(None, "--start", help="first candle (ISO-8601 or epoch ms)"),
    end: str | None = typer.Option(None, "--end", help="stop before this time"),
    out: Path | None = typer.Option(None, "--out", help="where the trials go (default: ./optimizations/<name>-<time>)"),
    as_json: bool = typer.Option(False, "--json", help="print one strict-JSON object"),
) -> None:
    """Search the strategy's Params by backtest, in sample or walk-forward (docs/optimize.md)."""
    from .backtest.command import BacktestInputError, parse_time
    from .config import ConfigError, check_logic, load_config
    from .optimize import output
    from .optimize.search import OptimizeError, Search
    from .optimize.space import SpaceError, pairs, parse

    try:
        cfg = load_config(config)
        dims = parse(pairs(param), check_logic(cfg.logic or "", cfg.logic_params or {}, cfg.config_dir).Params)
        start_ms, end_ms = parse_time(start), parse_time(end)
        where = out if out is not None else Path("optimizations") / f"{cfg.name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
        search = Search(
            cfg,
            dims,
            data=data,
            method=method,
            metric=metric,
            trials=trials,
            workers=workers,
            seed=seed,
            work_dir=where / "runs",
            progress=lambda line: typer.echo(line, err=True),
        )
        result = search.run(start_ms, end_ms, walk_forward)
    except (ConfigError, OptimizeError, SpaceError, BacktestInputError) as exc:
        fail(str(exc))
    files = output.write(result, where, f"Optimisation of {cfg.name}: {metric} ({result.direction}), {method}")
    if as_json:
        typer.echo(strict_dumps({**output.as_json(result), "out": str(where)}))
        return
    typer.echo(output.trials_frame(result).drop(columns=["note"]).to_string(index=False, max_rows=200))
    if walk_forward:
        typer.echo(output.folds_frame(result).to_string(index=False))
    best = result.best
    if not best.best_params:
        typer.echo(f"no trial gave a {metric} (see the notes in {files['trials_csv']})", err=True)
    typer.echo(
        f"best {best.best_params}: {metric} ({result.direction}d) {best.in_sample} in sample"
        + (f", {best.out_of_sample} out of sample (fold {best.number}'s test window)" if best.test else "")
    )
    typer.echo(f"wrote {files['html']}, {files['trials_csv']}, {files['png']}, {files['best']}")


def new_app(help_text: str) -> typer.Typer:
    """A root command with the engine's groups (sandbox, trace) and ``new``; the orchestration side adds its commands."""
    root = typer.Typer(help=help_text, no_args_is_help=True, pretty_exceptions_enable=False)
    root.add_typer(sandbox_app, name="sandbox")
    root.add_typer(trace_app, name="trace")
    root.add_typer(params_app, name="params")
    root.add_typer(data_app, name="data")
    root.command("new")(new_strategy_cmd)
    root.command("backtest")(backtest_cmd)
    root.command("optimize")(optimize_cmd)
    return root


def new_strategy_cmd(
    name: str = typer.Argument(..., help="the strategy's name: NAME.py, NAME.toml and test_NAME.py are written"),
    directory: Path = typer.Option(Path("."), "--dir", help="where to write them (created if missing)"),
) -> None:
    """Write a new strategy, its config and its passing unit test (planar_core.testing); never over a file."""
    from .scaffold import ScaffoldError, write_strategy

    try:
        written = write_strategy(name, directory)
    except ScaffoldError as exc:
        fail(str(exc))
    for path in written:
        typer.echo(f"wrote {path}")
    where = f"cd {directory} && " if directory != Path(".") else ""
    typer.echo(f"next: {where}python -m pytest -q test_{name}.py   (then: planar run {name}.toml, docs/testing.md)")


CONFIG_OPTION = typer.Option(None, "--config", help="a strategy config: read the trace of its account (credentials from the environment)")

app = new_app("Planar-Py engine tools: the sandbox exchange and the event trace (the full CLI is `planar`).")


def _trace_root(root: str | None, config: Path | None = None) -> str:
    """The trace to read: ``--root``; else the account trace of ``--config`` (its credentials resolved from the
    environment, as the engine does); else the only trace under $PLANAR_HOME/traces; else the newest demo run's
    (``./demo-output/<time>/store/traces``), said on stderr."""
    import os

    if root:
        return root
    if config is not None:
        from .config import ConfigError, load_config
        from .engine.strategy import trace_root

        try:
            cfg = load_config(config)
        except (ConfigError, OSError) as exc:
            fail(f"{config}: {exc}")
        creds = cfg.credentials
        if cfg.mode != "paper" and not cfg.event_tracing.root and creds.resolved(fields=("api_key",)).api_key is None:
            # the account's trace is named after its API key: without it, the name of an account that does not exist
            fail(
                f"{config}: {creds.api_key_env} is not set, and the trace is the exchange account's (named after its API key): set it, or pass --root"
            )
        return trace_root(cfg)
    base = Path(os.environ.get("PLANAR_HOME", "./.planar")) / "traces"
    found = _traces_in(base)
    if len(found) == 1:
        return str(found[0])
    if not found:
        demos = sorted(Path("demo-output").glob("*/store/traces")) if Path("demo-output").is_dir() else []
        latest = _traces_in(demos[-1]) if demos else []
        if len(latest) == 1:
            typer.secho(f"reading the last demo run's trace: {latest[0]}", err=True)
            return str(latest[0])
    fail(
        f"pass --root or --config: {len(found)} traces under {base}"
        + (f" ({', '.join(p.name for p in found)})" if found else ", and no demo run under ./demo-output")
    )


def _traces_in(base: Path) -> list[Path]:
    return sorted(p for p in base.glob("*") if (p / "manifest.json").is_file()) if base.is_dir() else []


def _iso(ts: object) -> str:
    return ts.isoformat() if isinstance(ts, pd.Timestamp) else str(ts)


def console() -> Console:
    """Rich's console, as wide as the terminal; piped or redirected (where rich assumes 80 columns and cut the
    tables) as wide as ``COLUMNS`` says, else 240, and cells wrap rather than end in an ellipsis."""
    import os
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 240)


def _print_events(df: pd.DataFrame, as_json: bool) -> None:
    from rich.table import Table

    from .trace.reading import to_records

    records = to_records(df)
    if as_json:
        for r in records:
            typer.echo(strict_dumps({**r, "timestamp": _iso(r["timestamp"])}))
        return
    table = Table(show_lines=False)
    for col in ("timestamp", "kind", "symbol", "client_order_id", "side", "amount", "price", "details"):
        table.add_column(col, overflow="fold")
    core = {"timestamp", "kind", "symbol", "client_order_id", "side", "amount", "price"}
    for r in records:
        details = ", ".join(f"{k}={v}" for k, v in r.items() if k not in core)
        table.add_row(
            _iso(r["timestamp"]),
            str(r["kind"]),
            str(r.get("symbol", "")),
            str(r.get("client_order_id", "")),
            str(r.get("side", "")),
            f"{num(r['amount']):g}" if "amount" in r else "",
            f"{num(r['price']):g}" if "price" in r else "",
            details,
        )
    console().print(table)


@trace_app.command("tail")
def trace_tail_cmd(
    n: int = typer.Option(10, "-n", min=1, help="number of events"),
    as_json: bool = typer.Option(False, "--json"),
    kind: str | None = typer.Option(None, help="only this event kind"),
    root: str | None = typer.Option(None, help="trace root (path or fsspec URL)"),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """The last N events."""
    from .trace import trace_tail

    _print_events(_known_kind(kind, _read(lambda r: trace_tail(r, n=n, as_df=True, kind=kind), _trace_root(root, config))), as_json)


@trace_app.command("between")
def trace_between_cmd(
    start: str,
    end: str,
    as_json: bool = typer.Option(False, "--json"),
    kind: str | None = typer.Option(None, help="only this event kind"),
    root: str | None = typer.Option(None, help="trace root (path or fsspec URL)"),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Events with START <= timestamp < END (ISO-8601, UTC if no zone)."""
    import pandas as pd

    from .trace import extract_events_by_date

    try:
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    except ValueError as exc:
        fail(f"not a date: {exc}")
        return
    _print_events(_known_kind(kind, _read(lambda r: extract_events_by_date(r, lo, hi, kind=kind), _trace_root(root, config))), as_json)


@trace_app.command("stats")
def trace_stats_cmd(
    as_json: bool = typer.Option(False, "--json"),
    root: str | None = typer.Option(None, help="trace root (path or fsspec URL)"),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Events by kind and by day, time range, segments, size on disk."""
    from rich.table import Table

    from .trace.export import TraceStats, trace_stats

    st: TraceStats = _read_any(trace_stats, _trace_root(root, config))
    if as_json:
        typer.echo(strict_dumps(st.as_json()))
        return
    out = console()
    out.print(f"[bold]{st.root}[/]")
    out.print(
        f"{st.events:,} events, {st.first} .. {st.last}; {st.segments} segment(s), {st.wal_files} log file(s) not yet in a "
        f"segment; {st.bytes / 1e6:,.2f} MB on disk"
    )
    kinds = list(st.by_kind)
    table = Table(title="events by day and kind")
    table.add_column("day")
    for k in kinds:
        table.add_column(k, justify="right")
    table.add_column("all", justify="right")
    for day, row in st.by_day_kind.items():
        table.add_row(day, *(f"{row.get(k, 0):,}" for k in kinds), f"{st.by_day[day]:,}")
    table.add_row("all", *(f"{st.by_kind[k]:,}" for k in kinds), f"{st.events:,}")
    out.print(table)


@trace_app.command("export")
def trace_export_cmd(
    out: Path = typer.Argument(..., help="the file to write"),
    to: str = typer.Option("parquet", "--to", help="format (parquet)"),
    kind: str | None = typer.Option(None, help="only this event kind"),
    start: str | None = typer.Option(None, help="from this time (ISO-8601, UTC if no zone)"),
    end: str | None = typer.Option(None, help="before this time"),
    root: str | None = typer.Option(None, help="trace root (path or fsspec URL)"),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Write the trace (or a kind / time range of it) to a file for other tools: Parquet, core columns typed, the
    other fields as JSON text."""
    from .trace import extract_events_by_date
    from .trace.export import to_parquet

    if to != "parquet":
        fail(f"--to {to}: only parquet is supported")
    try:
        lo = pd.Timestamp(start) if start else None
        hi = pd.Timestamp(end) if end else None
    except ValueError as exc:
        fail(f"not a date: {exc}")
    df = _known_kind(kind, _read(lambda r: extract_events_by_date(r, lo, hi, kind=kind), _trace_root(root, config)))
    try:
        n = to_parquet(df, out)
    except OSError as exc:
        fail(f"{out}: {exc}")
    typer.echo(f"wrote {n:,} events to {out}")


@trace_app.command("repair")
def trace_repair_cmd(
    root: str | None = typer.Option(None, help="trace root (path or fsspec URL)"),
    config: Path | None = CONFIG_OPTION,
    drop: list[str] | None = typer.Option(None, "--drop", help="a segment to leave out where the repair cannot decide (repeatable)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what it would write, write nothing"),
) -> None:
    """Make a trace whose manifest.json cannot be read readable again: from its copy when that is provably
    complete, else rebuilt from the segments present. Nothing is deleted; every segment left out is named."""
    from .storage import CorruptStateError
    from .trace.files import TraceLockedError, TraceNotFoundError
    from .trace.repair import RepairRefused, repair_manifest

    try:
        report = repair_manifest(_trace_root(root, config), drop or (), dry_run)
    except (RepairRefused, TraceLockedError, TraceNotFoundError, CorruptStateError, ValueError) as exc:
        fail(str(exc))
    for line in report.lines():
        typer.echo(line)


def _known_kind(kind: str | None, found: pd.DataFrame) -> pd.DataFrame:
    """``--kind`` that matched nothing and is not a kind the engine records (trace/schema.py): a typo, said as one
    line with exit 2, not an empty answer that reads as "no such events" (``balance_update`` for
    ``balance_updated``). A kind of the documented list with no events is an empty answer; so is any kind found."""
    from .trace.schema import KINDS

    if kind is not None and found.empty and kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=3)
        fail(f"--kind {kind}: no such event kind" + (f" (did you mean {', '.join(close)}?)" if close else "; kinds: " + ", ".join(KINDS)))
    return found


def _read(fn: Callable[[str], pd.DataFrame | list[Json]], root: str) -> pd.DataFrame:
    """A trace read; a root that is not a trace (a file, a missing path) is a one-line error, and nothing is created."""
    out = _read_any(fn, root)
    return out if isinstance(out, pd.DataFrame) else pd.DataFrame(out)


def _read_any(fn: Callable[[str], T], root: str) -> T:
    from .storage import CorruptStateError
    from .trace.files import TraceNotFoundError

    try:
        return fn(root)
    except (TraceNotFoundError, CorruptStateError) as exc:  # the latter names the file and `planar trace repair`
        fail(str(exc))
    except ValueError as exc:  # e.g. an unsupported schema version
        fail(f"{root}: {exc}")


def fail(message: str) -> NoReturn:
    """Exit non-zero with a one-line reason (no traceback)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


@sandbox_app.command("serve")
def sandbox_serve(
    host: str = typer.Option("127.0.0.1", help="bind address (loopback only unless --allow-non-loopback)"),
    port: int = typer.Option(0, min=0, max=65535, help="port; 0 picks a free one"),
    data: list[Path] | None = typer.Option(None, help="candle CSV replacing the shared file of the same name (repeatable)"),
    balance: str = typer.Option("USDT=10000,BTC=0.5,ETH=5", help="default account balances, ASSET=AMOUNT,..."),
    api_key: str | None = typer.Option(None, help="API key of the default account (random if omitted)"),
    api_secret: str | None = typer.Option(None, help="API secret of the default account (random if omitted)"),
    speed: float = typer.Option(1.0, min=0.0, help="price-path clock speed (60: one data minute per second)"),
    seed: int = typer.Option(7, help="seed for generated paths and fault dice"),
    weight_per_minute: int = typer.Option(6000, min=1, help="request-weight limit per IP per minute"),
    orders_per_10s: int = typer.Option(100, min=1, help="order-rate limit per account per 10 s"),
    allow_non_loopback: bool = typer.Option(False, help="permit binding a non-loopback address"),
    synthetic_markets: int = typer.Option(0, min=0, help="extra generated spot markets SYN0/USDT... (scale tests)"),
    venue: str = typer.Option("binance", help="the wire dialect: binance or bybit (Bybit v5; its own rate limits)"),
    bybit_limit_scale: float = typer.Option(
        1.0, min=0.001, help="bybit: multiplies Bybit's per-UID and per-IP request limits (benchmarks raise them)"
    ),
) -> None:
    """Serve the sandbox until SIGINT/SIGTERM; prints one JSON line with url, ws_url, api_key, api_secret."""
    from .sandbox.runner import build_exchange, parse_balances, serve_forever
    from .sandbox.server import SandboxServer

    if venue not in ("binance", "bybit"):
        fail(f"--venue: expected binance or bybit, got {venue!r}")

    try:
        balances = parse_balances(balance)
        ex = build_exchange(
            data,
            speed=speed,
            seed=seed,
            limits=Limits(weight_per_minute=weight_per_minute, orders_per_10s=orders_per_10s),
            synthetic=synthetic_markets,
        )
        acct = ex.add_account(balances, api_key, api_secret)
        if venue == "bybit":
            from .sandbox.bybit import BybitServer
            from .sandbox.bybit.limits import BybitLimits

            bybit = BybitServer(ex, host=host, port=port, allow_non_loopback=allow_non_loopback)
            bybit.bybit_limiter.limits = BybitLimits(ip_per_5s=max(1, int(600 * bybit_limit_scale)), scale=bybit_limit_scale)
            server: SandboxServer = bybit
        else:
            server = SandboxServer(ex, host=host, port=port, allow_non_loopback=allow_non_loopback)
    except ValueError as exc:
        fail(str(exc))
        return
    try:
        asyncio.run(serve_forever(server, acct.api_key, acct.api_secret))
    except OSError as exc:  # the port in use, an address this host does not have: one line, not asyncio's traceback
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def run_cli(root: typer.Typer) -> None:
    """Run ``root``: usage errors (a bad option value, a missing argument) are one line and exit 2, like every other
    refusal of this CLI."""
    import sys

    try:
        code = root(prog_name="planar", standalone_mode=False)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except typer.TyperException as exc:  # click's usage errors, as vendored by typer
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help())
            sys.exit(0)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        typer.secho(f"error: {message}{where}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def main() -> None:
    """``python -m planar_core``: the engine's groups only."""
    run_cli(app)
