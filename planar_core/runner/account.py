"""The account emergency stop from a fresh process: which strategies trade an account, and the stop itself.

How the strategies of an account are found (docs/orchestration.md, "Account emergency stop"):

* the strategy configs given (files, or a folder of them as the deployments are generated from) whose account,
  ``<exchange>-<hash of the API key>`` resolved as the engine resolves it, is the one asked; their credentials
  are the stop's (every config of one account holds the same key), their universes say what a spot close sells;
* and, in the store root of each of those configs, every strategy whose lease file names that account
  (``leases/<account>--<name>.lock`` / ``.lease``: left by each engine that ever traded the account from there),
  so a strategy whose config is not at hand is still halted and named in the report.

A config of another account, or in paper mode, is not a member. No member config at all is a configuration error:
without credentials of the account nothing can be cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..config import ConfigError, StrategyConfig
from ..engine.strategy import config_account, configured_alerts, trace_root
from ..exchange.errors import ExchangeOpError
from ..exchange.registry import credential_fields, open_venue
from ..model.sink import EventSink
from ..risk.account_estop import AccountEStopReport, Member, account_emergency_stop, halt_members
from ..risk.estop import pause
from ..storage import Store, is_remote

log = logging.getLogger("planar.runner.account")
LEASE_SUFFIXES = (".lock", ".lease")


def lease_names(store_root: str, account: str) -> list[str]:
    """Strategies that traded ``account`` from this store root: the names in its lease files."""
    prefix = f"{account}--"
    if is_remote(store_root):
        names = Store(store_root).list("leases")
    else:
        folder = Path(store_root) / "leases"
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    out = []
    for name in names:
        base = name.rsplit("/", 1)[-1]
        for suffix in LEASE_SUFFIXES:
            if base.startswith(prefix) and base.endswith(suffix):
                out.append(base[len(prefix) : -len(suffix)])
    return sorted(set(out))


def account_members(
    account: str,
    configs: list[StrategyConfig],
    secrets_provider: Callable[[str], str | None] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[list[Member], StrategyConfig]:
    """The members of ``account`` and the config whose credentials the stop uses; ``ConfigError`` when no config
    trades that account."""
    matching = [c for c in configs if c.mode == "live" and config_account(c, secrets_provider, env) == account]
    if not matching:
        seen = sorted({f"{c.name} ({'paper' if c.mode == 'paper' else config_account(c, secrets_provider, env)})" for c in configs})
        raise ConfigError(f"account: no strategy config trades {account} (configs seen: {', '.join(seen) or 'none'})")
    members: dict[str, Member] = {}
    for c in matching:
        members.setdefault(c.name, Member(c.name, c.shared_root, tuple(a.symbol for a in c.universe), c.margin))
    for root in sorted({c.store_root for c in matching}):
        for name in lease_names(root, account):
            members.setdefault(name, Member(name, f"{root.rstrip('/')}/{name}"))
    return list(members.values()), matching[0]


def account_sink(cfg: StrategyConfig, account: str) -> EventSink:
    """The account's trace, or (a live engine writes it) ``<store_root>/accounts/<account>/side-trace``."""
    from ..trace import EventTrace, TraceLockedError

    try:
        return EventTrace(trace_root(cfg))
    except TraceLockedError:
        return EventTrace(f"{account_dir(cfg, account)}/side-trace")


def account_dir(cfg: StrategyConfig, account: str) -> str:
    return f"{cfg.store_root.rstrip('/')}/accounts/{account}"


async def account_emergency_stop_standalone(
    account: str,
    configs: list[StrategyConfig],
    reason: str,
    close_positions: bool = False,
    budget_s: float | None = None,
    secrets_provider: Callable[[str], str | None] | None = None,
    env: dict[str, str] | None = None,
) -> AccountEStopReport:
    """Find the account's strategies, halt them, cancel every open order of the account and verify it, optionally
    close positions; from nothing but the configs and credentials (no engine runs here)."""
    import os

    members, base = account_members(account, configs, secrets_provider, env)
    creds = base.credentials.resolved(os.environ if env is None else env, secrets_provider, credential_fields(base.exchange))
    cfg = base.model_copy(update={"credentials": creds})
    budget = budget_s if budget_s is not None else max(c.risk.estop_budget_s for c in configs if c.name in {m.name for m in members})
    sink = account_sink(cfg, account)
    venue = open_venue(cfg, sink)
    alerts = configured_alerts(cfg)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    started = time.perf_counter()
    try:
        attempt = 0
        while True:
            try:
                await venue.load_markets(timeout=cfg.timeouts.market_data * 4)
                break
            except ExchangeOpError as err:
                if loop.time() + pause(attempt) >= deadline:  # halted anyway: nothing new is traded
                    report = AccountEStopReport(account, reason, seconds=time.perf_counter() - started)
                    halt_members(members, reason, report, sink)
                    report.unreachable = f"could not reach the exchange: {err}"[:300]
                    sink.record("emergency_stop", reason=f"account {account}: {reason}", payload=report.as_dict())
                    if alerts is not None:
                        alerts.submit(f"ACCOUNT EMERGENCY STOP ({account}): {reason}. {report.summary()}", "critical")
                    return report
                await asyncio.sleep(pause(attempt))
                attempt += 1
        return await account_emergency_stop(
            venue,
            account,
            members,
            reason,
            close_positions,
            max(1.0, deadline - loop.time()),
            sink,
            account_dir(cfg, account),
            alert=alerts.submit if alerts is not None else None,
        )
    finally:
        await venue.close()
        close = getattr(sink, "close", None)
        if callable(close):
            close()
        if alerts is not None:
            await alerts.stop()
