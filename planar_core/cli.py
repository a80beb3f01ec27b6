"""The ``planar`` command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from .sandbox.limits import Limits

app = typer.Typer(help="Planar-Py: live trading engine, sandbox exchange and operations.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
sandbox_app = typer.Typer(help="The local Binance-compatible sandbox exchange.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
trace_app = typer.Typer(help="Read the event trace (Zarr) of an exchange account.", no_args_is_help=True)
app.add_typer(trace_app, name="trace")


def _trace_root(root: str | None) -> str:
    """--root, else the only trace under $PLANAR_HOME/traces."""
    import os

    if root:
        return root
    base = Path(os.environ.get("PLANAR_HOME", "./.planar")) / "traces"
    found = sorted(p for p in base.glob("*") if (p / "manifest.json").is_file()) if base.is_dir() else []
    if len(found) != 1:
        fail(f"pass --root: {len(found)} traces under {base}" + (f" ({', '.join(p.name for p in found)})" if found else ""))
    return str(found[0])


def _print_events(df, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    import json as _json

    from rich.console import Console
    from rich.table import Table

    from .trace.reading import to_records

    records = to_records(df)
    if as_json:
        for r in records:
            typer.echo(_json.dumps({**r, "timestamp": r["timestamp"].isoformat()}, default=str))
        return
    table = Table(show_lines=False)
    for col in ("timestamp", "kind", "symbol", "client_order_id", "side", "amount", "price", "details"):
        table.add_column(col)
    core = {"timestamp", "kind", "symbol", "client_order_id", "side", "amount", "price"}
    for r in records:
        details = ", ".join(f"{k}={v}" for k, v in r.items() if k not in core)
        table.add_row(r["timestamp"].isoformat(), r["kind"], r.get("symbol", ""), r.get("client_order_id", ""), r.get("side", ""),
                      f"{r['amount']:g}" if "amount" in r else "", f"{r['price']:g}" if "price" in r else "", details[:80])
    Console().print(table)


@trace_app.command("tail")
def trace_tail_cmd(n: int = typer.Option(10, "-n", min=1, help="number of events"), as_json: bool = typer.Option(False, "--json"),
                   kind: str | None = typer.Option(None, help="only this event kind"),
                   root: str | None = typer.Option(None, help="trace root (path or fsspec URL)")) -> None:
    """The last N events."""
    from .trace import trace_tail

    _print_events(_read(lambda r: trace_tail(r, n=n, as_df=True, kind=kind), _trace_root(root)), as_json)


@trace_app.command("between")
def trace_between_cmd(start: str, end: str, as_json: bool = typer.Option(False, "--json"),
                      kind: str | None = typer.Option(None, help="only this event kind"),
                      root: str | None = typer.Option(None, help="trace root (path or fsspec URL)")) -> None:
    """Events with START <= timestamp < END (ISO-8601, UTC if no zone)."""
    import pandas as pd

    from .trace import extract_events_by_date

    try:
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    except ValueError as exc:
        fail(f"not a date: {exc}")
        return
    _print_events(_read(lambda r: extract_events_by_date(r, lo, hi, kind=kind), _trace_root(root)), as_json)


def _read(fn, root: str):  # type: ignore[no-untyped-def]
    """A trace read; a root that is not a trace (a file, a missing path) is a one-line error, and nothing is created."""
    from .trace.store import TraceNotFoundError

    try:
        return fn(root)
    except TraceNotFoundError as exc:
        fail(str(exc))
    except ValueError as exc:  # e.g. an unsupported schema version
        fail(f"{root}: {exc}")


def fail(message: str) -> None:
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
) -> None:
    """Serve the sandbox until SIGINT/SIGTERM; prints one JSON line with url, ws_url, api_key, api_secret."""
    from .sandbox.runner import build_exchange, parse_balances, serve_forever
    from .sandbox.server import SandboxServer

    try:
        balances = parse_balances(balance)
        ex = build_exchange(data, speed=speed, seed=seed, limits=Limits(weight_per_minute=weight_per_minute, orders_per_10s=orders_per_10s),
                            synthetic=synthetic_markets)
        acct = ex.add_account(balances, api_key, api_secret)
        server = SandboxServer(ex, host=host, port=port, allow_non_loopback=allow_non_loopback)
    except ValueError as exc:
        fail(str(exc))
        return
    asyncio.run(serve_forever(server, acct.api_key, acct.api_secret))


@app.command("demo")
def demo(duration: float = typer.Option(45.0, min=5, help="seconds of live trading"),
         trip_breaker: bool = typer.Option(False, "--trip-breaker", help="drop BTC 15 % halfway to trip the daily-loss breaker"),
         out_dir: str | None = typer.Option(None, help="where the store, trace and report go (default ./demo-output/<time>)")) -> None:
    """Sandbox exchange + live strategy flow + trace + report, on this machine, in under two minutes."""
    from flows.demo import (
        run_demo,  # the orchestration side; planar_core itself never imports Prefect
    )

    asyncio.run(run_demo(duration, trip_breaker, out_dir))


@app.command("run")
def run_cmd(config: Path = typer.Argument(..., help="strategy config (TOML/YAML)"),
            duration: float | None = typer.Option(None, min=1, help="seconds; default: until cancelled or halted"),
            i_understand_live_trading: bool = typer.Option(False, "--i-understand-live-trading",
                                                           help="required to run with sandbox = false (real money)")) -> None:
    """Run the live_strategy flow in the foreground (ephemeral Prefect API unless PREFECT_API_URL is set)."""
    from .config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        fail(str(exc))
        return
    overrides = {"confirm_live_trading": True} if i_understand_live_trading else {}
    if not cfg.sandbox and cfg.mode == "live" and not (cfg.confirm_live_trading or i_understand_live_trading):
        fail("sandbox = false trades real money: pass --i-understand-live-trading (or set confirm_live_trading)")
    from flows.live import live_strategy

    try:
        state = asyncio.run(live_strategy(strategy=cfg.name, config_path=str(config), duration=duration, overrides=overrides,
                                          return_state=True))
    except ConfigError as exc:
        fail(str(exc))
        return
    result = _state_result(state)
    if isinstance(result, ConfigError):  # found after the run began (an unknown symbol, refused credentials)
        fail(str(result))
    if not isinstance(result, dict):  # refused before it traded (halted, lease held, bad credentials)
        typer.secho(f"{cfg.name}: {state.type.value.lower()}: {state.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    typer.echo(f"{cfg.name}: {state.type.value.lower()} ({result['ended']}) after {result['ticks']} ticks; report {result['report']}")
    if state.is_failed():
        raise typer.Exit(1)


def _state_result(state: object) -> object:
    """A finished flow run's return value (or the exception it failed with), from synchronous code."""
    import inspect

    out = state.result(raise_on_failure=False)  # type: ignore[attr-defined]
    return asyncio.run(out) if inspect.iscoroutine(out) else out


@app.command("rearm")
def rearm_cmd(strategy: str, reason: str = typer.Option(..., help="why trading may resume (recorded in the trace)"),
              config: Path | None = typer.Option(None, help="strategy config (TOML/YAML)"),
              by: str | None = typer.Option(None, help="who re-arms (default: your user name)")) -> None:
    """Allow a halted strategy to trade again; breaker baselines restart from the current equity."""
    from .config import ConfigError, load_config

    if config is not None:
        try:
            load_config(config, name=strategy)
        except ConfigError as exc:
            fail(str(exc))
            return
    from flows.rearm import rearm

    state = asyncio.run(rearm(strategy=strategy, reason=reason, config_path=str(config) if config else None, by=by, return_state=True))
    if not state.is_completed():
        fail(f"re-arm refused: {state.message}")
    result = _state_result(state)
    assert isinstance(result, dict)
    typer.echo(f"{strategy} re-armed by {result['by']}; breaker baselines reset to equity {result['equity']:.2f}")


@app.command("emergency-stop")
def emergency_stop_cmd(strategy: str, close_positions: bool = typer.Option(False, "--close-positions"),
                       reason: str = typer.Option("Manual trigger (CLI)", help="recorded and alerted"),
                       config: Path | None = typer.Option(None, help="strategy config (TOML/YAML)")) -> None:
    """Cancel every open order (optionally close positions), halt the strategy and cancel its live flow runs."""
    from flows.emergency import emergency_stop

    from .config import ConfigError, load_config

    if config is not None:
        try:
            load_config(config, name=strategy)  # a malformed config is refused here, before any flow run
        except ConfigError as exc:
            fail(str(exc))
            return
    try:
        report = asyncio.run(emergency_stop(strategy=strategy, reason=reason, close_positions=close_positions,
                                            config_path=str(config) if config else None))
    except ConfigError as exc:
        fail(str(exc))
        return
    typer.echo(f"emergency stop {strategy}: cancelled {report['cancelled']} orders, closed {report['closed']}, "
               f"live runs cancelled {report['cancelled_runs']}, clean={report['clean']}")
    if not report["clean"]:
        typer.secho(f"NOT CLEAN, unverified: {report['unverified']}; still open: {report['remaining_open']} "
                    f"{report['remaining_positions']}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)


@app.command("serve")
def serve_cmd(configs: Path = typer.Option(Path(__file__).resolve().parents[1] / "examples", help="folder of strategy configs")) -> None:
    """Serve every deployment (live, e-stop, re-arm, daily reset, auto-tune, resync, compaction) of every config in a folder."""
    from deployments.serve import main as serve_main

    if not configs.is_dir():
        fail(f"--configs: {configs} is not a folder")
    serve_main(configs)


deployments_app = typer.Typer(help="Deployments generated from a folder of strategy configs.", no_args_is_help=True)
app.add_typer(deployments_app, name="deployments")


@deployments_app.command("write")
def deployments_write(configs: Path = typer.Option(Path("examples"), help="folder of strategy configs"),
                      target: Path = typer.Option(Path("prefect.yaml"), help="where to write (the repository root's prefect.yaml)")) -> None:
    """Write prefect.yaml with every deployment of every config (for `prefect deploy --all`)."""
    from deployments.prefect_yaml import write

    from .config import ConfigError

    if not configs.is_dir():
        fail(f"--configs: {configs} is not a folder")
    try:
        typer.echo(f"wrote {write(configs, target)}")
    except ConfigError as exc:
        fail(str(exc))


@app.command("automations")
def automations_cmd(notification_block: str | None = typer.Option(None, help="Prefect notification block for failures"),
                    estop_deployment: str = typer.Option("emergency_stop/emergency-stop"),
                    resync_deployment: str = typer.Option("resync/ma_cross-resync")) -> None:
    """Create or update the shipped automations (breaker -> e-stop of that strategy; reconnect -> resync; notify on failures)."""
    from prefect.exceptions import ObjectNotFound

    from deployments.automations import create_all

    try:
        ids = asyncio.run(create_all(estop_deployment, resync_deployment, notification_block))
    except ObjectNotFound as exc:
        fail(f"deployment not found ({exc}); deploy first (planar serve, or prefect deploy --all)")
        return
    typer.echo(f"{len(ids)} automation(s) in place: {', '.join(map(str, ids))}")


def main() -> None:
    """Console entry point: usage errors (a bad option value, a missing argument) are one line and exit 2, like
    every other refusal of this CLI."""
    import sys

    try:
        code = app(prog_name="planar", standalone_mode=False)
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
