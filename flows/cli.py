"""The ``planar`` command line: the engine's groups (``planar sandbox``, ``planar trace``, from planar_core) and the
commands that go through Prefect (run, demo, emergency-stop, rearm, serve, deployments, automations).

This is the composition root of the command line; planar_core itself never imports Prefect."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from planar_core.cli import fail, new_app, run_cli
from planar_core.model.json import integer, obj, rows
from planar_core.model.types import Json

if TYPE_CHECKING:
    from planar_core.config import StrategyConfig

app = new_app("Planar-Py: live trading engine, sandbox exchange and operations.")


@app.command("demo")
def demo(
    duration: float = typer.Option(45.0, min=5, help="seconds of live trading"),
    trip_breaker: bool = typer.Option(False, "--trip-breaker", help="drop BTC 15 % halfway to trip the daily-loss breaker"),
    out_dir: str | None = typer.Option(None, help="where the store, trace and report go (default ./demo-output/<time>)"),
) -> None:
    """Sandbox exchange + live strategy flow + trace + report, on this machine, in under two minutes."""
    from .demo import run_demo

    asyncio.run(run_demo(duration, trip_breaker, out_dir))


@app.command("run")
def run_cmd(
    config: Path = typer.Argument(..., help="strategy config (TOML/YAML)"),
    duration: float | None = typer.Option(None, min=1, help="seconds; default: until cancelled or halted"),
    i_understand_live_trading: bool = typer.Option(
        False, "--i-understand-live-trading", help="required to run with sandbox = false (real money)"
    ),
    takeover: bool = typer.Option(
        False, "--takeover", help="another engine of this strategy (another store root) is gone: adopt the orders it left on the account"
    ),
    temporary_server: bool = typer.Option(
        False,
        "--temporary-server",
        help="without PREFECT_API_URL: Prefect's temporary server (slower start, nothing kept) instead of the local one",
    ),
) -> None:
    """Run the live_strategy flow in the foreground. It reports to PREFECT_API_URL when set, else to the local
    Prefect server on 127.0.0.1:4200 (PLANAR_PREFECT_PORT), started in the background the first time and kept."""
    from planar_core.config import ConfigError, load_config
    from planar_core.engine.lease import TwinEngineError

    from .common import awaited

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        fail(str(exc))
        return
    overrides = {"confirm_live_trading": True} if i_understand_live_trading else {}
    if not cfg.sandbox and cfg.mode == "live" and not (cfg.confirm_live_trading or i_understand_live_trading):
        fail("sandbox = false trades real money: pass --i-understand-live-trading (or set confirm_live_trading)")
    api = _prefect_api(cfg, temporary_server)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from .live import live_strategy

    try:
        with temporary_settings(updates={PREFECT_API_URL: api}) if api else contextlib.nullcontext():
            state = asyncio.run(
                awaited(
                    live_strategy(
                        strategy=cfg.name,
                        config_path=str(config),
                        duration=duration,
                        overrides=overrides,
                        takeover=takeover,
                        return_state=True,
                    )
                )
            )
    except ConfigError as exc:
        fail(str(exc))
        return
    result = asyncio.run(state.aresult(raise_on_failure=False))  # the session's data, or the error it failed with
    if isinstance(result, (ConfigError, TwinEngineError)):  # found after the run began (an unknown symbol, another engine)
        fail(str(result))
    if not isinstance(result, dict):  # refused before it traded (halted, lease held, bad credentials)
        typer.secho(f"{cfg.name}: {state.type.value.lower()}: {state.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    calls = ", ".join(f"{k} {v}" for k, v in obj(result.get("callbacks")).items()) or "none"
    failed = sum(integer(n) for n in obj(result.get("callback_errors")).values())
    status = obj(result.get("status"))
    orders, positions = integer(status.get("open_orders")), integer(status.get("open_positions"))
    if cfg.mode == "paper":  # the simulated exchange lived in the run's process: nothing stays anywhere
        left = f"open when the paper run ended: {orders} order(s), {positions} position(s) (the simulated exchange ends with the run)"
    else:
        left = f"left open on the exchange: {orders} order(s), {positions} position(s)"
        if orders or positions:
            close = " --close-positions" if positions else ""
            left += (
                f" (they stay; `planar emergency-stop {cfg.name} --config {config}{close}` cancels{' and closes' if close else ''} them)"
            )
    typer.echo(
        f"{cfg.name}: {state.type.value.lower()} ({result['ended']}); logic callbacks: {calls}; callback errors: {failed}; "
        f"{left}; trace {result.get('trace')}; report {result['report']}"
    )
    if state.is_failed():
        raise typer.Exit(1)


def _prefect_api(cfg: StrategyConfig, temporary: bool) -> str | None:
    """The API the run reports to (flows/prefect_api.py); while a local server starts, the config's symbols are
    checked against the exchange, so a wrong symbol is said at once rather than after the server is up."""
    from planar_core.config import ConfigError
    from planar_core.runner.standalone import check_markets

    from .prefect_api import LocalServerError, find_api

    api = find_api(temporary)
    if api.note:
        typer.secho(f"planar: {api.note}", err=True, fg=typer.colors.YELLOW)
    if api.pending:
        if cfg.mode == "live":  # only the server knows the Secret blocks; the environment can be read now
            creds = cfg.credentials.resolved()
            missing = [v for v, got in ((creds.api_key_env, creds.api_key), (creds.api_secret_env, creds.api_secret)) if got is None]
            if missing:
                blocks = ", ".join(v.lower().replace("_", "-") for v in missing)
                typer.secho(
                    f"planar: credentials: {', '.join(missing)} not in the environment; the Secret block(s) {blocks} are looked for once the server is up",
                    err=True,
                    fg=typer.colors.YELLOW,
                )
        try:
            asyncio.run(check_markets(cfg))
            api.wait()
        except (ConfigError, LocalServerError) as exc:
            fail(str(exc))
    return api.url


@app.command("rearm")
def rearm_cmd(
    strategy: str,
    reason: str = typer.Option(..., help="why trading may resume (recorded in the trace)"),
    config: Path | None = typer.Option(None, help="strategy config (TOML/YAML)"),
    by: str | None = typer.Option(None, help="who re-arms (default: your user name)"),
) -> None:
    """Allow a halted strategy to trade again; breaker baselines restart from the current equity."""
    import getpass

    from planar_core.config import ConfigError, load_config

    if config is not None:
        try:
            load_config(config, name=strategy)
        except ConfigError as exc:
            fail(str(exc))
            return
    from .common import awaited
    from .rearm import rearm

    state = asyncio.run(
        awaited(
            rearm(
                strategy=strategy,
                reason=reason,
                config_path=str(config) if config else None,
                by=by or getpass.getuser(),  # the person at the terminal, not the flow run's generated name
                return_state=True,
            )
        )
    )
    if not state.is_completed():
        fail(f"re-arm refused: {state.message}")
    result = asyncio.run(state.aresult())
    assert isinstance(result, dict)
    typer.echo(f"{strategy} re-armed by {result['by']}; breaker baselines reset to equity {result['equity']:.2f}")


@app.command("emergency-stop")
def emergency_stop_cmd(
    strategy: str | None = typer.Argument(None, help="the strategy to stop (or --account ACCOUNT)"),
    account: str | None = typer.Option(
        None, "--account", help="stop every strategy trading this exchange account (<exchange>-<hash of the API key>)"
    ),
    close_positions: bool = typer.Option(False, "--close-positions"),
    reason: str = typer.Option("Manual trigger (CLI)", help="recorded and alerted"),
    config: list[Path] | None = typer.Option(
        None, "--config", help="strategy config (TOML/YAML); with --account, repeat it for every config to look among"
    ),
    configs: Path | None = typer.Option(None, "--configs", help="with --account: a folder of strategy configs to look among"),
) -> None:
    """Cancel every open order of a strategy (optionally close positions), halt it and cancel its live flow runs; with
    --account, the same for every strategy trading that account, and every open order of the account cancelled."""
    from planar_core.config import ConfigError, load_config

    if (strategy is None) == (account is None):
        fail("give a STRATEGY or --account ACCOUNT (one of them)")
    if account is not None:
        _account_stop(account, close_positions, reason, config or [], configs)
        return
    if configs is not None or len(config or []) > 1:
        fail("--configs / several --config: only with --account; a strategy's e-stop takes one --config")
    path = config[0] if config else None
    assert strategy is not None

    if path is not None:
        try:
            load_config(path, name=strategy)  # a malformed config is refused here, before any flow run
        except ConfigError as exc:
            fail(str(exc))
            return
    unreachable = _no_prefect()
    if unreachable:  # nothing to report to, no live run to cancel: the stop at once, without Prefect's temporary server
        try:
            direct = asyncio.run(_stop_without_prefect(strategy, path, reason, close_positions))
        except ConfigError as exc:
            fail(str(exc))
            return
        typer.echo(f"emergency stop {strategy}: {'CLEAN' if direct['clean'] else 'NOT CLEAN'} ({unreachable})")
        _exit_unless_clean(direct)
        return
    try:
        report = asyncio.run(_stop_through_prefect(strategy, reason, close_positions, path))
    except ConfigError as exc:
        fail(str(exc))
        return
    typer.echo(str(report["line"]))  # the verdict, what the running engine cancelled, what this stop cancelled
    _exit_unless_clean(report)


async def _stop_through_prefect(strategy: str, reason: str, close_positions: bool, path: Path | None) -> Json:
    """The ``emergency_stop`` flow's report: its result, whether the run ended Completed (CLEAN) or Failed with its
    verdict (NOT CLEAN); a permanent error (a bad config) is raised."""
    from .emergency import emergency_stop

    state = await emergency_stop(
        strategy=strategy, reason=reason, close_positions=close_positions, config_path=str(path) if path else None, return_state=True
    )
    value = await state.aresult(raise_on_failure=False)
    if isinstance(value, BaseException):
        raise value
    if not isinstance(value, dict):
        raise RuntimeError(f"the emergency stop ended {state.type.value}: {state.message}")
    return value


def _no_prefect() -> str | None:
    """Why the stop runs without Prefect, or None: no PREFECT_API_URL and no local Prefect server answering (``planar
    run`` reports to one or the other: the e-stop started Prefect's temporary server first, 8 s before its first
    cancel, an outside crash trial), or a PREFECT_API_URL that does not answer (the stop failed on Prefect's client
    before its first cancel, with a traceback, and the engine traded on: an outside operator trial, 2 of 2)."""
    from prefect.settings import get_current_settings

    from .prefect_api import DEFAULT_PORT, healthy

    url = get_current_settings().api.url
    if url:  # a busy server answers late: 3 s before it is taken for down
        if healthy(url, timeout=3.0):
            return None
        return (
            f"the Prefect server at {url} does not answer: a live run of it was not cancelled; an engine still "
            "running reads the halt this stop wrote and places nothing more"
        )
    port = int(os.environ.get("PLANAR_PREFECT_PORT") or DEFAULT_PORT)
    if healthy(f"http://127.0.0.1:{port}/api", timeout=3.0):
        return None
    return "no Prefect server: no live run to cancel"


async def _stop_without_prefect(strategy: str, path: Path | None, reason: str, close_positions: bool) -> Json:
    from planar_core.config import load_config, locate_config
    from planar_core.runner import emergency_stop_standalone

    cfg = load_config(locate_config(strategy, str(path) if path else None, None), name=strategy)
    report = await emergency_stop_standalone(cfg, reason, close_positions)
    return report.as_dict()


def _account_stop(account: str, close_positions: bool, reason: str, config: list[Path], configs: Path | None) -> None:
    """``planar emergency-stop --account``: one line of summary, the table of what each strategy had open; exit 1
    when the exchange did not confirm everything settled."""
    from planar_core.config import ConfigError

    from .common import returned
    from .emergency import account_configs, account_emergency_stop

    if configs is not None and not configs.is_dir():
        fail(f"--configs: {configs} is not a folder")
    try:
        account_configs([str(p) for p in config], str(configs) if configs else None)  # refused here, before any flow run
        result = returned(
            asyncio.run(
                account_emergency_stop(
                    account=account,
                    reason=reason,
                    close_positions=close_positions,
                    config_paths=[str(p.resolve()) for p in config],
                    configs_dir=str(configs.resolve()) if configs else None,
                )
            )
        )
    except ConfigError as exc:
        fail(str(exc))
        return
    owners = ", ".join(f"{k} {v}" for k, v in obj(result["by_owner"]).items()) or "none"
    strategies = [str(n) for n in _items(result["strategies"])]
    typer.echo(
        f"account emergency stop {account}: {'CLEAN' if result['clean'] else 'NOT CLEAN'}; halted {', '.join(strategies)}; "
        f"open orders found: {owners}; cancelled {result['cancelled']}; closed {result['closed'] or '-'}; "
        f"live runs cancelled {len(_items(result['cancelled_runs']))}"
    )
    typer.echo(_owner_table(result))
    _exit_unless_clean(result)


def _exit_unless_clean(result: Json) -> None:
    """An e-stop (strategy or account) the exchange did not confirm settled: what is left, in red, and exit 1."""
    if not result["clean"]:
        typer.secho(
            f"NOT CLEAN, unverified: {result['unverified']}; still open: {result['remaining_open']} {result['remaining_positions']}",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)


def _items(value: object) -> list[object]:
    """A list of the flow's result (a JSON array), or none."""
    return list(value) if isinstance(value, list) else []


def _owner_table(result: Json) -> str:
    """What each strategy had open (from the flow's result, a plain dict)."""
    from pydantic import TypeAdapter

    from planar_core.risk.account_estop import AccountEStopReport, OpenOrder

    report = AccountEStopReport(str(result["account"]), str(result["reason"]), strategies=[str(n) for n in _items(result["strategies"])])
    report.found = [TypeAdapter(OpenOrder).validate_python(o) for o in rows(result["found"])]
    return report.table()


@app.command("serve")
def serve_cmd(
    configs: Path = typer.Option(Path(__file__).resolve().parents[1] / "examples", help="folder of strategy configs"),
    stop_agent: bool = typer.Option(True, "--stop-agent/--no-stop-agent", help="run e-stops and re-arms in this process within a second"),
) -> None:
    """Serve every deployment (live, e-stop, re-arm, daily reset, auto-tune, resync, compaction) of every config in a folder."""
    from deployments.serve import build_deployments, serve_with

    from .stop_agent import StopAgent

    if not configs.is_dir():
        fail(f"--configs: {configs} is not a folder")
    deployments = build_deployments(configs)  # outside the event loop: Prefect builds them synchronously there
    beside = [StopAgent(configs).run()] if stop_agent else []  # the stop agent: e-stops within a second
    asyncio.run(serve_with(deployments, *beside))


@app.command("stop-agent")
def stop_agent_cmd(
    configs: Path = typer.Option(Path("examples"), help="folder of strategy configs (for runs whose config path is not here)"),
    every: float = typer.Option(0.25, min=0.05, help="seconds between polls of the Prefect API"),
) -> None:
    """Run e-stop, account e-stop and re-arm flow runs within a second of their creation, in this process (beside the
    work pool's workers; `planar serve` runs one itself). Start it from the repository root."""
    from .stop_agent import StopAgent

    if not configs.is_dir():
        fail(f"--configs: {configs} is not a folder")
    import os
    import sys

    # strategy modules import from the working directory, as in a worker's `python -m prefect.engine` in its clone
    sys.path.insert(0, os.getcwd())
    typer.echo(f"stop agent: runs e-stop, account e-stop and re-arm flow runs, polling every {every:g}s (configs: {configs.resolve()})")
    try:
        asyncio.run(StopAgent(configs, every=every).run())
    except KeyboardInterrupt:
        pass


state_app = typer.Typer(help="A strategy's persisted state (state.json, client order id sequence, intent journal).", no_args_is_help=True)
app.add_typer(state_app, name="state")


@state_app.command("reset")
def state_reset_cmd(
    strategy: str,
    reason: str = typer.Option(..., help="why (recorded in the trace and in the new state's halt reason)"),
    config: Path | None = typer.Option(None, help="strategy config (TOML/YAML)"),
    epoch: str | None = typer.Option(None, help="the client order id epoch when the evidence cannot decide ('new': a fresh one)"),
    force: bool = typer.Option(False, "--force", help="reset state.json even if it reads"),
    by: str | None = typer.Option(None, help="who resets (default: your user name)"),
) -> None:
    """Repair a strategy's persisted files that cannot be read, after listing its open orders and positions on the
    exchange: state.json reset to halted (re-arm stays explicit), the sequence keeps its epoch, the journal keeps
    what reads. Each damaged file is kept beside the new one. Refused while an engine of the strategy runs."""
    import getpass
    import os

    from planar_core.config import ConfigError, load_config
    from planar_core.engine.lease import LeaseHeldError
    from planar_core.engine.reset import ResetRefused, reset_state
    from planar_core.engine.strategy import strategy_from_config
    from planar_core.exchange.errors import ExchangeOpError
    from tasks.blocks import secret_block_provider

    if not reason.strip():
        fail("--reason: say why (it is recorded in the trace)")
    try:
        cfg = load_config(config, name=strategy) if config is not None else load_config(name=strategy)
        # the environment first: Prefect's Secret blocks (and its API) only for credentials it does not hold
        s = strategy_from_config(cfg, secrets_provider=lambda var: None if os.environ.get(var) else secret_block_provider(var))
    except ConfigError as exc:
        fail(str(exc))

    async def run() -> list[str]:
        try:
            return (await reset_state(s, reason, by or getpass.getuser(), epoch, force)).lines()
        finally:
            await s.stop()

    try:
        lines = asyncio.run(run())
    except (ResetRefused, LeaseHeldError, ConfigError) as exc:
        fail(str(exc))
    except ExchangeOpError as exc:
        fail(f"{strategy}: the exchange cannot be reached to check its orders and positions first ({type(exc).__name__}: {exc})")
    for line in lines:
        typer.echo(line)


deployments_app = typer.Typer(help="Deployments generated from a folder of strategy configs.", no_args_is_help=True)
app.add_typer(deployments_app, name="deployments")


@deployments_app.command("write")
def deployments_write(
    configs: Path = typer.Option(Path("examples"), help="folder of strategy configs"),
    target: Path = typer.Option(Path("prefect.yaml"), help="where to write (the repository root's prefect.yaml)"),
) -> None:
    """Write prefect.yaml with every deployment of every config (for `prefect deploy --all`)."""
    from deployments.prefect_yaml import write
    from planar_core.config import ConfigError

    if not configs.is_dir():
        fail(f"--configs: {configs} is not a folder")
    try:
        typer.echo(f"wrote {write(configs, target)}")
    except ConfigError as exc:
        fail(str(exc))


@app.command("automations")
def automations_cmd(
    notification_block: str | None = typer.Option(None, help="Prefect notification block for failures"),
    estop_deployment: str = typer.Option("emergency_stop/emergency-stop"),
    resync_deployment: str = typer.Option("resync/resync"),
    watchdog_after: float = typer.Option(90.0, min=0, help="seconds without a planar.heartbeat before the e-stop (0: no watchdog)"),
    zombie_after: float = typer.Option(
        90.0, min=0, help="seconds without a Prefect flow-run heartbeat (every 30 s) before Crashed (0: none)"
    ),
    restart: bool = typer.Option(True, "--restart/--no-restart", help="restart a crashed live run"),
) -> None:
    """Create or update the shipped automations: breaker -> e-stop of that strategy; reconnect -> resync; heartbeat
    lost -> e-stop; zombie run -> Crashed; crashed live run -> restart; notify on failures (with a block)."""
    from prefect.exceptions import ObjectNotFound

    from deployments.automations import create_all

    try:
        ids = asyncio.run(
            create_all(estop_deployment, resync_deployment, notification_block, watchdog_after or None, zombie_after or None, restart)
        )
    except ObjectNotFound as exc:
        fail(f"deployment not found ({exc}); deploy first (planar serve, or prefect deploy --all)")
        return
    typer.echo(f"{len(ids)} automation(s) in place: {', '.join(map(str, ids))}")


def main() -> None:
    """Console entry point ``planar`` (and ``python -m flows``)."""
    run_cli(app)


if __name__ == "__main__":  # python -m flows.cli (it did nothing, exit 0)
    main()
