"""Strategy configuration: pydantic models, loaded from a TOML/YAML file, then ``PLANAR_*``
environment variables, then keyword overrides (each layer wins over the previous one).

Every model forbids unknown fields and bounds its numbers, so a typo or a
negative limit fails at load with pydantic's message naming the field.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator

from .alerts.config import AlertConfig, LoggingConfig
from .model.types import Json
from .storage import is_remote

if TYPE_CHECKING:
    from .logic import Logic

# ccxt's unified timeframe notation (no venue serves every one); which of them a venue serves is the venue's
# (``Capabilities.timeframes``, checked when the venue is opened: exchange/registry.py)
KNOWN_TIMEFRAMES = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")


class ConfigError(ValueError):
    """Invalid configuration; the message names the field."""


class _Model(BaseModel):
    # inf and nan are never a valid duration, limit or amount here
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class AssetConfig(_Model):
    symbol: str = Field(min_length=3, description="ccxt unified symbol, e.g. BTC/USDT or BTC/USDT:USDT")
    max_position: float | None = Field(None, gt=0, le=1, description="max position value as a fraction of equity")
    risk_per_trade: float | None = Field(None, gt=0, le=1, description="max order value as a fraction of equity")
    margin_mode: Literal["cross", "isolated"] | None = Field(
        None, description="futures: this asset's margin mode (default: the strategy's)"
    )


class WatcherConfig(_Model):
    enabled: bool = True
    interval: float = Field(30.0, gt=0, le=86400, description="polling interval (s) when the websocket is off or failing")
    retry_count: int = Field(3, ge=0, le=20, description="retries (with backoff) of one failed poll before it counts as failed")
    timeout: float = Field(10.0, gt=0, le=3600, description="seconds one poll request may take")
    use_websocket: bool = True
    verify_interval: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="while the websocket is healthy, poll anyway this often: "
        "an update the stream lost silently is corrected within this time",
    )
    stall_after: float | None = Field(
        60.0,
        gt=0,
        le=86400,
        description="a websocket that has delivered nothing for this long is stalled: fetch now (Planar's 60 s "
        "guard), counted in the watcher's health as stalls; None: off",
    )


class BalanceWatcherConfig(WatcherConfig):
    fill_wait: float = Field(
        0.5,
        ge=0,
        le=60,
        description="after a fill reported by the user stream, how long the stream's own balance (and position) "
        "update may take before the engine reads them by REST; a fill learned by REST reads them at once",
    )


class PositionWatcherConfig(WatcherConfig):
    """Positions are always read from the exchange at start-up (a position the engine does not know is money at
    risk), so there is no ``sync_on_startup`` switch to turn that off."""

    interval: float = Field(15.0, gt=0, le=86400)
    alert_on_changes: bool = Field(
        True,
        description="alert when a position changes while the engine has no order working on "
        "that asset (a manual trade, a liquidation, auto-deleveraging)",
    )


class OrderMonitoring(_Model):
    enabled: bool = True
    interval: float = Field(5.0, gt=0, description="polling interval (s) of the order/trade tasks without websocket")
    retries: int = Field(2, ge=0, le=10, description="re-sends (same client order id) of an order proven absent after a failed request")
    timeout: float = Field(900.0, gt=0, description="order/trade tasks stop after this long without open orders (Planar: 15 min)")
    verify_interval: float = Field(
        30.0,
        gt=0,
        le=86400,
        description="while the websocket is healthy, poll the asset's orders "
        "anyway this often: an update the stream lost silently is corrected within this time",
    )
    absent_after: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="an order whose request outcome is unknown is taken as never booked "
        "only when look-ups by client id still find nothing this many seconds after the request "
        "(Binance may hide a new order from GET for a few seconds)",
    )
    resend_absent: bool = Field(
        False,
        description="an order call() answered UNKNOWN for (the placement "
        "budget ran out) and that the resolver later proves never booked is sent again, once, under a NEW client id, "
        "checked again locally (off by default: the market may have moved since; the strategy is told either way)",
    )
    use_websocket: bool = True


class StartupSync(_Model):
    """What the start-up sync reads, as Planar does it: the last orders and a lookback of trades per asset;
    positions always come from the exchange, whatever their age."""

    closed_orders: int = Field(100, ge=0, le=1000, description="the last N orders per asset (Planar: 100)")
    trades_lookback_s: float = Field(3 * 86400.0, ge=0, le=90 * 86400, description="trades of this lookback per asset (Planar: 3 days)")
    foreign_orders: Literal["adopt", "ignore", "cancel"] = Field(
        "adopt",
        description="orders on the account that this strategy did not place (by hand, another bot): adopt them as "
        "Planar does, ignore them, or cancel them; each decision is recorded",
    )


class Timeouts(_Model):
    waitfor: float = Field(5.0, ge=0, le=3600, description="how long call() waits for a fill when its waitfor is not given")
    order_placement: float = Field(
        30.0, gt=0, le=3600, description="budget of one placement: the request, retries before handling and look-ups of a lost answer"
    )
    order_cancellation: float = Field(10.0, gt=0, le=3600, description="how long a cancel may take")
    balance_sync: float = Field(15.0, gt=0, le=3600)
    position_sync: float = Field(20.0, gt=0, le=3600)
    market_data: float = Field(5.0, gt=0, le=3600)


class RateLimits(_Model):
    orders_per_second: float = Field(10.0, gt=0)
    requests_per_minute: int = Field(
        1200,
        gt=0,
        description="cap on the count of REST requests in any 60 s, whatever their weight; an order waits for it at most half its timeout, then is refused (RATE_LIMITED, not sent)",
    )
    weight_per_minute: int = Field(6000, gt=0)
    burst_allowance: int = Field(5, ge=0)
    shared_budget: bool = Field(
        True,
        description="draw request weight (per IP) and new orders (per account) from budgets shared by every process on "
        "this host ($PLANAR_BUDGET_DIR); False: this process paces alone, as if it were the only one",
    )
    budget_headroom: float = Field(
        0.9, gt=0, le=1, description="share of the exchange's weight limit reservations may use (the rest absorbs what they cannot see)"
    )


class ConnectionConfig(_Model):
    health_interval: float = Field(60.0, gt=0, description="seconds between health checks")
    max_retries: int = Field(5, ge=1)
    retry_delay: float = Field(10.0, ge=0, description="base delay (s); attempt k waits retry_delay * 2**(k-1)")


class RiskConfig(_Model):
    max_daily_loss: float | None = Field(None, gt=0, description="quote currency")
    max_drawdown: float | None = Field(None, gt=0, lt=1, description="fraction of the peak equity (0.02: a 2 % fall trips it)")
    position_limit: float | None = Field(
        None, gt=0, le=1, description="fraction of equity per position, its worst case with the strategy's open orders (docs/engine.md)"
    )
    max_total_exposure: float | None = Field(
        None, gt=0, description="gross exposure / equity (worst case with open orders); the monitor trims every position to 70 % above it"
    )
    max_leverage: float | None = Field(
        None, gt=0, description="the same figure as max_total_exposure; the monitor closes the largest position above it"
    )
    correlation_limit: float | None = Field(None, gt=0, le=1)
    sector_limit: float | None = Field(None, gt=0, le=1)
    sectors: dict[str, str] = Field(default_factory=dict, description="base asset -> sector")
    max_volatility_threshold: float | None = Field(None, gt=0)
    volatility_adjustment: bool = False
    target_volatility: float = Field(0.02, gt=0)
    emergency_stop: bool = True
    emergency_close_positions: bool = False
    estop_budget_s: float = Field(
        30.0, gt=0, le=3600, description="how long the emergency stop keeps retrying before it reports what it could not verify"
    )
    exclusive_account: bool = Field(
        False,
        description="the account (a sub-account of its own) is this strategy's alone: the emergency stop cancels each "
        "symbol's orders with one cancel-all request, whoever placed them, instead of one cancel per order of its own "
        "(Binance spot has no batch cancel); orders of others it meets are reported and alerted",
    )
    refuse_when_unvalued: bool = Field(
        True,
        description="refuse risk-increasing orders while equity cannot be computed "
        "(a holding or position without a price path to the main currency)",
    )
    monitor_interval: float = Field(30.0, gt=0)


class EventTracing(_Model):
    enabled: bool = True
    trace_market_data: bool = False
    trace_api_calls: bool = True
    flush_interval: float = Field(60.0, gt=0, description="seconds between flushes (order, fill, cancel and position events flush at once)")
    fsync: bool = Field(
        True,
        description="sync the trace's write-ahead log and the intent journal to disk (group commit, off the event "
        "loop) so they survive a power loss (False: they survive a process crash only)",
    )
    root: str | None = Field(None, description="trace root (path or fsspec URL); default <store_root>/traces/<account>")


class TwinCheck(_Model):
    """One engine per strategy and account, whatever its store root (engine/twins.py): orders that carry this
    strategy's identity but that this engine's store did not issue, or that its journal and trace do not know, mean
    another engine of the strategy trades the account. At start they refuse the start (``--takeover`` adopts them);
    while trading they halt the strategy with a critical alert."""

    enabled: bool = True
    recent_s: float = Field(
        600.0,
        gt=0,
        le=7 * 86400,
        description="at start, an order of another engine counts when it is open or was created or updated within "
        "this many seconds (older closed orders are history: a store root used before)",
    )
    interval: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="while trading, the universe's open orders are also polled this often (the user stream reports "
        "another engine's orders at once; the poll covers a stream that is down)",
    )


class DeadMansSwitch(_Model):
    """The engine's heartbeat (engine/heartbeat.py). It keeps the exchange's dead-man's switch armed, so that the
    exchange cancels the open orders of an engine (or host) that died: on Binance USDⓈ-M ``countdownCancelAll`` for
    every symbol of the universe, on Bybit spot and linear Disconnected Cancel All (DCP) for the product; on every
    market it writes ``<store_root>/<name>/heartbeat.json`` and a ``heartbeat`` trace event."""

    enabled: bool = True
    heartbeat_s: float = Field(30.0, gt=0, le=3600, description="seconds between heartbeats (Binance recommends 30)")
    countdown_s: float = Field(
        120.0,
        ge=1,
        le=86400,
        description="the countdown each heartbeat sets (Binance recommends 120): the exchange cancels the symbol's "
        "open orders this long after the last heartbeat. Bybit (DCP): the product's window, whole seconds in 3-300, "
        "after the engine's connection goes; it covers every order of the product on the account, and a clean stop "
        "cannot disarm it (a restart within the window keeps the orders)",
    )

    @model_validator(mode="after")
    def _heartbeat_well_below_countdown(self) -> "DeadMansSwitch":
        if self.heartbeat_s * 3 > self.countdown_s:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s}) must be at most a third of countdown_s ({self.countdown_s}): "
                "a heartbeat that fails must have time to be retried before the exchange cancels the orders"
            )
        return self


class Credentials(_Model):
    """API credentials. Values come from the named environment variables or a secrets provider."""

    api_key_env: str = "EXCHANGE_API_KEY"
    api_secret_env: str = "EXCHANGE_API_SECRET"
    passphrase_env: str = "EXCHANGE_PASSPHRASE"
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    passphrase: SecretStr | None = None

    def resolved(
        self,
        env: Mapping[str, str] | None = None,
        provider: Callable[[str], str | None] | None = None,
        fields: Collection[str] = ("api_key", "api_secret", "passphrase"),
    ) -> "Credentials":
        """Fill missing values from ``provider(name)`` (e.g. Prefect Secret blocks) then the environment; only
        ``fields``, the ones the venue asks for (``Capabilities.credentials``): a lookup the venue has no use for is
        not free (a Prefect Secret block read without a Prefect API starts a temporary server, about 10 s)."""
        env = os.environ if env is None else env
        values: Json = {}
        for field_name, var in (("api_key", self.api_key_env), ("api_secret", self.api_secret_env), ("passphrase", self.passphrase_env)):
            if getattr(self, field_name) is not None or field_name not in fields:
                continue
            value = (provider(var) if provider else None) or env.get(var)
            if value:
                values[field_name] = SecretStr(value)
        return self.model_copy(update=values)

    def secret_values(self) -> list[str]:
        return [v.get_secret_value() for v in (self.api_key, self.api_secret, self.passphrase) if v is not None]


class SandboxEndpoint(_Model):
    url: str | None = Field(None, description="REST base of the sandbox (or testnet)")
    ws_url: str | None = None

    @field_validator("url", "ws_url")
    @classmethod
    def _url_scheme(cls, v: str | None) -> str | None:
        """An http(s) or ws(s) URL; the address itself is not checked (the sandbox, a testnet)."""
        if v is not None and not v.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must be an http(s) or ws(s) URL")
        return v


class OptimizationConfig(_Model):
    """The scheduled optimisation of the strategy's ``Params`` (flows/optimize.py, docs/optimize.md): a search by
    walk-forward backtests over the last ``days`` of candles; the best params reach the running engine only when
    their out-of-sample metric beats the params in force by ``min_improvement`` and every changed field stays within
    ``bounds``."""

    enabled: bool = Field(False, description="deploy the scheduled optimisation of this strategy (planar serve, prefect.yaml)")
    schedule: str = Field("0 3 * * 1", description="cron (UTC) of the scheduled runs; default weekly, Monday 03:00")
    params: dict[str, str] = Field(
        default_factory=dict, description="search space: Params field -> 'lo:hi' (int or float range), 'lo:hi:step', or 'a,b,c'"
    )
    method: Literal["grid", "random", "bayes"] = Field("bayes", description="grid, random or bayes (Optuna's TPE)")
    metric: str = Field("sharpe", description="a backtest summary figure to maximise (max_drawdown: minimised)")
    trials: int = Field(40, ge=1, le=100_000, description="trials per fold (grid: every point)")
    days: int = Field(30, ge=1, le=3650, description="days of candles downloaded and searched (ending now)")
    walk_forward: str = Field("20d:10d", description="TRAIN:TEST windows (durations like 20d, 12h, or candle counts)")
    min_improvement: float = Field(
        0.1, ge=0, description="how much the new params' out-of-sample metric must beat the current params' on the same windows"
    )
    bounds: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="Params field -> [lo, hi]: a proposal outside is not applied (recorded as refused)"
    )
    workers: int = Field(1, ge=1, le=64, description="backtests run in parallel (processes)")
    seed: int = Field(7, description="the search's seed (the same data and seed give the same trials)")

    @field_validator("walk_forward")
    @classmethod
    def _windows(cls, v: str) -> str:
        """TRAIN:TEST, each a candle count or a duration (90m, 12h, 20d, 2w) longer than zero (a TEST of 0 never
        moved the next fold on: the search grew until memory ran out)."""
        if not v:  # no walk-forward: one search over the whole window
            return v
        parts = v.split(":")
        if len(parts) != 2 or not all(re.fullmatch(r"\d+|\d+(\.\d+)?[mhdw]", p) and float(p.rstrip("mhdw")) > 0 for p in parts):
            raise ValueError(f"{v!r}: expected TRAIN:TEST, each a candle count or a duration like 20d, 12h, 90m, 2w, above zero")
        return v


class StrategyConfig(_Model):
    name: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="also the prefix of client order ids and a directory name"
    )
    exchange: str = Field("binance", pattern=r"^[a-z][a-z0-9_]*$")
    mode: Literal["live", "paper"] = "live"
    sandbox: bool = True
    confirm_live_trading: bool = Field(False, description="required to trade with sandbox=False in live mode")
    margin: bool = Field(False, description="True: USD-M futures (MarginStrategy); False: spot")
    main_currency: str = "USDT"
    initial_cash: float | None = Field(None, ge=0)
    max_position_size: float | None = Field(None, gt=0, description="max order amount in base units")
    default_leverage: int = Field(1, ge=1, le=125)
    margin_mode: Literal["cross", "isolated"] = Field(
        "cross", description="futures: margin mode set on the exchange before the first order on each asset"
    )
    position_mode: Literal["one_way", "hedge"] = Field(
        "one_way", description="futures: one position per asset, or a long and a short one (hedge mode), set at start-up"
    )
    universe: list[AssetConfig] = Field(default_factory=list)
    timeframes: list[str] = Field(default_factory=lambda: ["1m"])
    startup_sync: StartupSync = Field(default_factory=StartupSync)
    store_root: str = Field(default_factory=lambda: os.environ.get("PLANAR_HOME", "./.planar"))
    balance_watcher: BalanceWatcherConfig = Field(default_factory=BalanceWatcherConfig)
    position_watcher: PositionWatcherConfig = Field(default_factory=PositionWatcherConfig)
    order_monitoring: OrderMonitoring = Field(default_factory=OrderMonitoring)
    ohlcv_watcher: WatcherConfig = Field(default_factory=lambda: WatcherConfig(interval=5.0))
    timeouts: Timeouts = Field(default_factory=Timeouts)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    connection: ConnectionConfig = Field(default_factory=ConnectionConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    optimization: OptimizationConfig = Field(default_factory=OptimizationConfig)
    credentials: Credentials = Field(default_factory=Credentials)
    sandbox_endpoint: SandboxEndpoint = Field(default_factory=SandboxEndpoint)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    event_tracing: EventTracing = Field(default_factory=EventTracing)
    twin_check: TwinCheck = Field(default_factory=TwinCheck)
    dead_mans_switch: DeadMansSwitch = Field(default_factory=DeadMansSwitch)
    alerts: AlertConfig | None = None
    logic: str = Field(
        "planar_core.strategies.ma_cross:MACross",
        description="module:Class or path/to/file.py:Class of the strategy logic; modules and relative paths are looked "
        "for in the config file's folder first",
    )
    logic_params: Json = Field(default_factory=dict)
    tick_interval: float = Field(1.0, gt=0, description="seconds between calls of the logic")
    history_kept: int = Field(
        5000,
        ge=100,
        description="closed orders and trades each asset keeps in memory, the newest (the simulated venue of paper and "
        "backtests keeps as many per account); older ones stay in the trace, so memory does not grow with a long run. "
        "A backtest keeps 500 unless the config sets it",
    )
    logic_errors: Literal["log", "halt", "fail"] = Field(
        "log",
        description="log: an error in a logic callback is recorded and counted, the engine goes on; halt: it also halts "
        "the strategy (no new orders until re-armed); fail: it ends the run (the flow's retries restart it)",
    )

    @field_validator("universe", mode="before")
    @classmethod
    def _symbols_as_strings(cls, v: object) -> object:
        if isinstance(v, list):
            return [{"symbol": x} if isinstance(x, str) else x for x in v]
        if isinstance(v, dict):  # {"BTC/USDT": {"max_position": 0.3}}
            return [{"symbol": k, **(cfg or {})} for k, cfg in v.items()]
        return v

    @property
    def market_type(self) -> Literal["spot", "swap"]:
        """The account section this strategy trades: spot, or USDⓈ-M futures (``swap``) for margin strategies."""
        return "swap" if self.margin else "spot"

    @field_validator("timeframes")
    @classmethod
    def _known_timeframes(cls, v: list[str]) -> list[str]:
        unknown = [tf for tf in v if tf not in KNOWN_TIMEFRAMES]
        if unknown:
            raise ValueError(f"unknown timeframe(s) {unknown}; ccxt's timeframes are {list(KNOWN_TIMEFRAMES)}")
        return v

    @model_validator(mode="after")
    def _universe_unique(self) -> "StrategyConfig":
        symbols = [a.symbol for a in self.universe]
        if len(symbols) != len(set(symbols)):
            raise ValueError("universe lists a symbol twice")
        return self

    def asset(self, symbol: str) -> AssetConfig:
        for a in self.universe:
            if a.symbol == symbol:
                return a
        raise KeyError(symbol)

    _config_dir: Path | None = PrivateAttr(None)

    @property
    def config_dir(self) -> Path | None:
        """The folder of the file this config was loaded from (where ``logic`` is looked for first), if any."""
        return self._config_dir

    @property
    def shared_root(self) -> str:
        """What every worker shares (persisted state, client-order-id sequence): ``<store_root>/<name>``, a path
        or an object-store URL."""
        return f"{self.store_root.rstrip('/')}/{self.name}"

    @property
    def store_path(self) -> Path:
        """This process's own files (intent journal, logs, reports): ``<store_root>/<name>`` on a local root; with
        the store root on object storage, the same under ``$PLANAR_LOCAL_HOME`` (default ``./.planar-local``)."""
        if is_remote(self.store_root):
            return Path(os.environ.get("PLANAR_LOCAL_HOME", "./.planar-local")) / self.name
        return Path(self.store_root) / self.name


def _read_file(path: Path) -> Json:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a table/mapping")
    return data


def _env_values(env: Mapping[str, str]) -> Json:
    """``PLANAR_RISK__MAX_DAILY_LOSS=50`` -> {"risk": {"max_daily_loss": 50}}; only real field names are read."""
    out: Json = {}
    for key, raw in env.items():
        if not key.startswith("PLANAR_"):
            continue
        parts = key[len("PLANAR_") :].lower().split("__")
        if parts[0] not in StrategyConfig.model_fields or parts[0] == "store_root":
            continue
        try:
            value: object = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {p} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _merge(base: Json, top: Mapping[str, object]) -> Json:
    out = dict(base)
    for k, v in top.items():
        below = out.get(k)
        out[k] = _merge(below, v) if isinstance(v, Mapping) and isinstance(below, dict) else v
    return out


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None, **overrides: object) -> StrategyConfig:
    """File < environment (``PLANAR_*``) < keyword overrides; raises ConfigError naming the field.

    ``mode`` is the exception to the layering: the file, the environment and the overrides may each set it, and
    if two of them disagree the config is refused rather than one silently winning."""
    file_data = _read_file(Path(path)) if path else {}
    env_data = _env_values(os.environ if env is None else env)
    modes = {
        src: str(d["mode"]).lower()
        for src, d in (("the config file", file_data), ("PLANAR_MODE", env_data), ("the argument", overrides))
        if d.get("mode") is not None
    }
    if len(set(modes.values())) > 1:
        raise ConfigError("mode: " + " but ".join(f"{src} says {m!r}" for src, m in modes.items()) + "; make them agree")
    data = _merge(file_data, env_data)
    data = _merge(data, {k: v for k, v in overrides.items()})
    try:
        cfg = StrategyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    if path:
        cfg._config_dir = Path(path).resolve().parent
    check_logic(cfg.logic, cfg.logic_params, cfg.config_dir)
    return cfg


def check_logic(spec: str, params: Mapping[str, object], base: Path | None = None) -> type[Logic]:
    """The logic class exists, is a ``Logic`` of this engine's interface version, and its ``Params`` accept
    ``logic_params``: found at load, naming the field, not as a traceback mid-run. Returns the class."""
    from .logic import API_VERSION, Logic

    cls = logic_class(spec, base)
    if not (isinstance(cls, type) and issubclass(cls, Logic)):
        raise ConfigError(f"logic: {spec} is not a planar_core.Logic subclass (see docs/strategies.md)")
    if cls.api_version != API_VERSION:
        raise ConfigError(f"logic: {spec} was written for strategy interface v{cls.api_version}; this engine runs v{API_VERSION}")
    try:
        cls.Params.model_validate(dict(params))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix="logic_params")) from None
    return cls


def logic_class(spec: str, base: Path | None = None) -> object:
    """``module:Class`` or ``path/to/file.py:Class``. ``base`` (the config file's folder) is searched first, as
    Python searches a script's folder first: a module found there, or a relative path, is imported with that folder
    at the front of ``sys.path`` (so the strategy's own helper modules beside it import too); otherwise the module
    is imported from ``sys.path`` as it is. Errors are one ``ConfigError`` line: file, line and message for a
    syntax error, the missing module's name for an import error."""
    import importlib
    import importlib.machinery
    import sys

    target, _, name = spec.rpartition(":")
    folder: Path | None = None  # put first on sys.path for this import
    if not target or not name:
        raise ConfigError(f"logic: expected 'package.module:Class' or 'path/to/file.py:Class', got {spec!r}")
    if target.endswith(".py"):
        file = Path(target) if Path(target).is_absolute() else (base or Path.cwd()) / target
        if not file.is_file():
            raise ConfigError(f"logic: no file {file}")
        folder, module = file.resolve().parent, file.stem
        loaded = sys.modules.get(module)
        if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() != file.resolve():
            raise ConfigError(f"logic: a module named {module!r} is already imported from {loaded.__file__}; rename {file.name}")
    else:
        module = target
        top = module.partition(".")[0]
        found = base is not None and top not in sys.modules and importlib.machinery.PathFinder.find_spec(top, [str(base)]) is not None
        folder = base.resolve() if found and base is not None else None
    if folder is not None and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    try:
        return getattr(importlib.import_module(module), name)
    except SyntaxError as exc:
        raise ConfigError(f"logic: {exc.filename}:{exc.lineno}: {exc.msg}") from None
    except ImportError as exc:
        raise ConfigError(f"logic: cannot import module {module!r} ({exc})") from None
    except AttributeError:
        raise ConfigError(f"logic: module {module!r} has no {name!r}") from None


def format_validation_error(exc: ValidationError, prefix: str | None = None) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in ((prefix,) if prefix else ()) + tuple(err["loc"])) or "config"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid config: " + "; ".join(parts)


FIELD_NOTES = {
    "exchange": "a venue of the registry (exchange/registry.py; today: binance and bybit, both of which the sandbox speaks); checked when the strategy is built",
    "mode": "live: orders go to the exchange; paper: filled locally",
    "sandbox": "True: the configured sandbox endpoint (or the exchange's testnet); False: real money",
    "main_currency": "quote currency for cash, equity and PnL",
    "initial_cash": "paper mode and backtests: starting cash in main_currency",
    "default_leverage": "futures leverage set on each asset at start",
    "universe": "assets traded (see universe[] below)",
    "timeframes": "OHLCV feeds watched per asset, in ccxt's notation; the venue must serve each (binance: 1s to 1M), except 1s, which the engine builds from public trades where the market has none (bybit; binance USD-M)",
    "store_root": "state, journal, logs and traces (PLANAR_HOME); a path or fsspec URL",
    "logic_params": "fields of the logic's Params model (validated at load)",
    "enabled": "run this watcher",
    "retry_count": "retries of one poll",
    "timeout": "seconds (order_monitoring: idle time before the per-asset tasks stop)",
    "max_retries": "reconnection attempts",
    "order_cancellation": "seconds",
    "balance_sync": "seconds",
    "position_sync": "seconds",
    "market_data": "seconds",
    "order_placement": "seconds; also the default waitfor",
    "orders_per_second": "order submissions per second (queued locally)",
    "weight_per_minute": "this process's cap on request weight a minute (pro rata for other intervals), within the exchange's limit",
    "burst_allowance": "orders that may go at once before pacing",
    "correlation_limit": "refuse adding to a position correlated above this (a holding below the market's minimum order is none)",
    "sectors": "base asset -> sector name, for sector_limit",
    "max_volatility_threshold": "realised volatility (per candle) that halves positions",
    "volatility_adjustment": "scale order sizes by target/realised volatility (bounded 0.25..1)",
    "target_volatility": "per-candle volatility target",
    "emergency_stop": "breakers call the emergency stop (else they only halt)",
    "emergency_close_positions": "the emergency stop also closes the strategy's own positions (on a shared account its own part only: docs/engine.md)",
    "monitor_interval": "seconds between risk monitor runs",
    "max_leverage": "gross exposure / equity",
    "api_key_env": "variable holding the API key",
    "api_secret_env": "variable holding the API secret",
    "passphrase_env": "variable holding the passphrase (some exchanges)",
    "api_key": "set by the loader from the environment or a secrets provider; never written in a file",
    "api_secret": "as api_key",
    "passphrase": "as api_key",
    "use_websocket": "watch_* first, polling as fallback",
    "level": "log level",
    "console": "also log human-readable lines to stderr",
    "trace_market_data": "record OHLCV events too (verbose)",
    "trace_api_calls": "record every exchange call (endpoint, latency, result)",
}


def config_reference_markdown() -> str:
    """docs/config.md: every field of StrategyConfig with its type, default and meaning (a test keeps the file current)."""
    from pydantic import BaseModel as _BM

    lines = [
        "# Strategy configuration reference",
        "",
        "Generated from `planar_core/config.py` (`python -c 'from planar_core.config import config_reference_markdown as m; "
        "print(m())' > docs/config.md`). Load order: TOML/YAML file < `PLANAR_*` environment variables "
        "(`PLANAR_RISK__MAX_DAILY_LOSS=50`) < keyword overrides. The example is `examples/ma_cross.toml`.",
        "",
    ]

    def walk(model: type[_BM], prefix: str) -> None:
        rows = []
        nested = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            sub = ann if isinstance(ann, type) and issubclass(ann, _BM) else None
            args = getattr(ann, "__args__", None) or ()
            if sub is None and args:
                subs = [a for a in args if isinstance(a, type) and issubclass(a, _BM)]
                sub = subs[0] if subs and not str(ann).startswith("list") else None
            if sub is not None:
                nested.append((f"{prefix}{name}", sub))
                continue
            default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
            if name == "store_root":
                default = "$PLANAR_HOME or './.planar'"
            typ = str(ann).replace("typing.", "").replace("<class '", "").replace("'>", "").replace(" | ", " or ")
            note = field.description or FIELD_NOTES.get(name, "")
            rows.append(f"| `{prefix}{name}` | `{typ}` | `{default}` | {note} |")
        if rows:
            lines.extend(
                [f"## `{prefix.rstrip('.') or 'top level'}`", "", "| field | type | default | meaning |", "|---|---|---|---|", *rows, ""]
            )
        for path, sub in nested:
            walk(sub, f"{path}.")

    walk(StrategyConfig, "")
    lines += [
        "## `universe[]`",
        "",
        "Each entry: a symbol string or a table with:",
        "",
        "| field | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in AssetConfig.model_fields.items():
        default = "required" if field.is_required() else repr(field.default)
        typ = str(field.annotation).replace("typing.", "").replace("<class '", "").replace("'>", "").replace(" | ", " or ")
        lines.append(f"| `{name}` | `{typ}` | `{default}` | {field.description or ''} |")
    return "\n".join(lines) + "\n"


CONFIG_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def config_files(folder: str | Path) -> list[Path]:
    """The strategy config files of a folder (TOML, YAML, JSON), sorted; a missing folder is a ConfigError."""
    where = Path(folder)
    if not where.is_dir():
        raise ConfigError(f"configs_dir: {where} is not a folder")
    return sorted(p for p in where.iterdir() if p.suffix in CONFIG_SUFFIXES)


def named_configs(folder: str | Path) -> list[tuple[str, Path]]:
    """(strategy name, path) for every config of ``folder``; one that does not load is an error naming it. Read
    without the environment: a name comes from the file, whatever ``PLANAR_*`` says."""
    found = []
    for path in config_files(folder):
        try:
            found.append((load_config(path, env={}).name, path))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return found


def locate_config(strategy: str, config_path: str | None, configs_dir: str | None) -> str | None:
    """The config of ``strategy``: ``config_path`` when it exists, else the config of that name in ``configs_dir``.

    Runs that an automation or a UI click starts (e-stop, resync, re-start) locate their strategy this way, from
    their own deployment's folder, never through a path inside another run's working directory (on a work pool that
    path is a temporary clone, deleted when that run ends). None: no file at all (the environment alone)."""
    if config_path and Path(config_path).is_file():
        return config_path
    if not configs_dir:
        if config_path:
            raise ConfigError(f"config file not found: {config_path}")
        return None
    named = named_configs(configs_dir)
    matches = [path for name, path in named if name == strategy]
    if not matches:
        seen = ", ".join(name for name, _ in named) or "none"
        missing = f"{config_path} does not exist and " if config_path else ""
        raise ConfigError(f"config of {strategy}: {missing}no config in {configs_dir} is named {strategy} (found: {seen})")
    if len(matches) > 1:
        raise ConfigError(f"config of {strategy}: {len(matches)} configs in {configs_dir} carry that name: {[str(p) for p in matches]}")
    return str(matches[0])
