"""The parts a Strategy coordinates, built in one place (``build_parts``) and handed to it.

``Strategy`` builds none of its collaborators and creates no directory: the composition root
(``strategy_from_config``) or a test's builder calls ``build_parts`` and hands the result over. A test swaps a part
(an in-memory venue, a memory sink, a test clock) by passing it here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..alerts import AlertDispatcher, Redactor
from ..config import StrategyConfig
from ..exchange.client_ids import ClientOrderIds, IntentJournal, ObjectJournal, intent_journal
from ..exchange.registry import credential_fields, open_venue
from ..model import AssetInstance
from ..model.clock import Clock, SystemClock
from ..model.sink import EventSink, MemorySink
from ..model.venue import Venue
from ..risk.manager import RiskManager
from ..sim.paper import PaperVenue
from ..state import StateStore
from .account_book import AccountBook
from .freshness import Freshness
from .gate import TradingGate
from .heartbeat import Heartbeat
from .hooks import Hooks
from .lease import Lease, RemoteLease, engine_lease
from .ledger import FillLedger
from .order_book import OrderBook
from .store_guard import GuardedSink
from .supervisor import Supervisor, TaskObserver
from .twins import Twins


@dataclass
class EngineParts:
    """What a Strategy is given: where it records (``sink``), the exchange (``venue``), its persisted state, its
    client order ids and their intent journal, the lease that makes it the one engine of this strategy and
    account, the supervisor of its tasks, its alert channels and its clock; and the parts that own the engine's
    state (docs/architecture.md, "The composition root"), none of which keeps the strategy."""

    sink: GuardedSink  # every write of the engine and its parts: a failed one halts instead of raising
    venue: Venue
    state_store: StateStore
    ids: ClientOrderIds
    journal: IntentJournal | ObjectJournal
    lease: Lease | RemoteLease
    supervisor: Supervisor
    alerts: AlertDispatcher | None
    clock: Clock
    universe: dict[str, AssetInstance]  # empty until the markets load; shared by the strategy and its account book
    freshness: Freshness
    holdings: AccountBook
    gate: TradingGate  # whether orders may go out: the halt, the store's health, unreadable files
    book: OrderBook  # the orders, their status and fills, and what the order path learned about them
    ledger: FillLedger  # fills applied, fills that came before their order, an earlier run's orders
    hooks: Hooks  # who is told what, and the delivery
    risk: RiskManager  # pre-trade checks, breakers, the risk monitor
    heartbeat: Heartbeat  # the exchange's dead-man's switch and the heartbeat record
    twins: Twins  # one engine per strategy and account across store roots


def build_parts(
    config: StrategyConfig,
    sink: EventSink | None = None,
    venue: Venue | None = None,
    alerts: AlertDispatcher | None = None,
    observer: TaskObserver | None = None,
    clock: Clock | None = None,
) -> EngineParts:
    """The parts of ``config``'s strategy; those given are used as they are (a memory sink, the config's venue from
    the registry on that sink, the config's alert channels and the real clock otherwise). Creates the strategy's
    local directory."""
    raw = sink if sink is not None else MemorySink()
    guarded = raw if isinstance(raw, GuardedSink) else GuardedSink(raw)
    config.store_path.mkdir(parents=True, exist_ok=True)
    venue = venue if venue is not None else engine_venue(config, raw)
    venue.sink = guarded  # its api_call records go through the guard too
    clock = clock if clock is not None else SystemClock()
    universe: dict[str, AssetInstance] = {}
    freshness = Freshness(config, venue, guarded)
    alerts = alerts if alerts is not None else configured_alerts(config)
    state_store = StateStore(config.shared_root)
    ids = ClientOrderIds(config.shared_root, config.name)
    journal = intent_journal(config.store_path, config.shared_root, fsync=config.event_tracing.fsync)
    gate = TradingGate(config.name, state_store, guarded, journal, ids, clock, alerts)
    guarded.on_failure = gate.store_failed  # a failed write halts, with a critical alert, once per episode
    state_store.on_unreadable = gate.persisted_unreadable
    account = config_account(config)
    return EngineParts(
        sink=guarded,
        venue=venue,
        state_store=state_store,
        ids=ids,
        journal=journal,
        lease=engine_lease(config, account),
        supervisor=Supervisor(observer=observer),
        alerts=alerts,
        clock=clock,
        universe=universe,
        freshness=freshness,
        holdings=AccountBook(config, universe, freshness, guarded, clock),
        gate=gate,
        book=OrderBook(config.history_kept),
        ledger=FillLedger(),
        hooks=Hooks(config.name, guarded, alerts),
        risk=RiskManager(config.risk, state_store, guarded, clock),
        heartbeat=Heartbeat(config, account, venue, guarded),
        twins=Twins(config),
    )


def engine_venue(cfg: StrategyConfig, sink: EventSink | None = None) -> Venue:
    """The venue an engine trades on: the exchange (live), or the simulated exchange behind the exchange's public
    market data (paper: sim/paper.py, the sandbox's rules, so paper accepts and refuses what live does)."""
    if cfg.mode == "paper":
        return PaperVenue(cfg, sink)
    return open_venue(cfg, sink)


def configured_alerts(cfg: StrategyConfig) -> AlertDispatcher | None:
    """The alert channels of the config (None: alerts are only logged)."""
    if cfg.alerts is None:
        return None
    return AlertDispatcher(cfg.alerts, redactor=Redactor(cfg.credentials.secret_values()))


def config_account(
    cfg: StrategyConfig, secrets_provider: Callable[[str], str | None] | None = None, env: dict[str, str] | None = None
) -> str:
    """A config's exchange account, ``<exchange>-<hash of the API key>`` (paper: ``paper-<name>``), never the key.
    Credentials are resolved (environment, then ``secrets_provider``) if the config does not hold them yet."""
    from ..trace import account_id

    if cfg.mode == "paper":
        return f"paper-{cfg.name}"
    creds = cfg.credentials
    if creds.api_key is None:
        creds = creds.resolved(os.environ if env is None else env, secrets_provider, credential_fields(cfg.exchange))
    return account_id(cfg.exchange, creds.api_key.get_secret_value() if creds.api_key is not None else None)
