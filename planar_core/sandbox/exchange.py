"""The sandbox's matching engine: prices, balances, positions, orders and fills.

Everything here is synchronous and runs on the server's event loop, so each
order placement, fill or cancel updates balances and positions atomically
(no await happens in the middle of a state change). The HTTP and websocket
layers (``server.py``, ``streams.py``) translate to and from Binance's wire
format and subscribe to the events emitted here.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from . import conditional, filters
from . import errors as E
from .accounts import CONDITIONAL_TYPES, MARKET_TYPES, ZERO, Account, AlgoOrder, Fill, SandboxOrder
from .book import BookModel, floor_to
from .countdown import Countdowns
from .faults import Faults
from .futures import BRACKETS, COMMISSION_STEP, FUNDING_PERIOD_MS, FuturesAccounting, bracket_for
from .limits import RateLimiter
from .market_data import MarketSpec, PathLibrary, PricePath, default_markets
from .order_lists import OrderList, OrderLists

CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
NUMBER_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
SPOT_TYPES = frozenset({"MARKET", "LIMIT", "LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
FUTURES_TYPES = frozenset({"MARKET", "LIMIT"})  # /fapi/v1/order; conditional types go to the Algo Service
ALGO_TYPES = frozenset({"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"})
LIMIT_TYPES = frozenset({"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
PRICE_PROTECT = Decimal("0.05")  # futures exchangeInfo triggerProtect
Listener = Callable[[Account, str, str, dict], None]  # account, kind, event name, payload


@dataclass
class Market:
    spec: MarketSpec
    path: PricePath
    bounds: filters.Bounds
    shock: float = 1.0  # multiplicative price shift set through the admin API
    basis_bps: float = 2.0  # futures: the amplitude of the mark price's departure from the last price (admin API)

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.kind, self.spec.symbol)


@dataclass
class SandboxExchange(FuturesAccounting, OrderLists):
    """State and rules of the whole exchange (every account, every market)."""

    speed: float = 1.0
    seed: int = 7
    paths: PathLibrary = field(default_factory=PathLibrary)
    book: BookModel = field(default_factory=BookModel)
    taker_fee: Decimal = Decimal("0.001")
    maker_fee: Decimal = Decimal("0.001")
    futures_taker_fee: Decimal = Decimal("0.0005")
    futures_maker_fee: Decimal = Decimal("0.0002")
    default_leverage: int = 20
    specs: list[MarketSpec] = field(default_factory=default_markets)
    faults: Faults = field(default_factory=Faults)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    price_source: Callable[[Market], float] | None = None  # paper trading: live prices instead of the replayed path
    countdowns: Countdowns = field(default_factory=Countdowns)  # USDⓈ-M countdownCancelAll timers (countdown.py)
    clock_ms: Callable[[], int] | None = None  # the simulated venue's clock (backtest: simulated time); None: the machine's
    history_kept: int | None = None  # a simulated venue: closed orders and fills kept per account (None: all, as Binance)

    def __post_init__(self) -> None:
        self._instant: int | None = None
        self._placing_algo = 0  # the algo order whose trigger is placing an order right now
        self._placing_list: OrderList | None = None  # the OCO list whose legs are being booked right now
        self._list_ids = itertools.count(1)
        self._funding_epoch: dict[tuple[str, str], int] = {}  # market -> the last 8-hour funding period settled
        self._funding_passed_until = 0  # pass_funding: nothing to pass before this time
        self.rng = random.Random(self.seed)
        self.markets: dict[tuple[str, str], Market] = {}
        for spec in self.specs:
            path = self.paths.path_for(spec)
            level = None if self.price_source is not None else float(path.prices[0])
            self.markets[(spec.kind, spec.symbol)] = Market(spec, path, filters.Bounds.of(spec, level))
        self.accounts: dict[str, Account] = {}
        self.matching_paused = False  # freeze resting orders (admin: POST /admin/matching)
        self.listeners: list[Listener] = []
        # (kind, symbol) -> (last update id, bids, asks) of the book as the diff-depth stream last published it
        self.depth_published: dict[tuple[str, str], tuple[int, list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]] = {}
        self.depth_streamed: set[tuple[str, str]] = set()  # (kind, symbol) a diff-depth stream publishes now
        self._order_ids = itertools.count(1_000_001)
        self._trade_ids = itertools.count(5_000_001)
        self.wall_anchor_ms = self.now_ms()
        self.data_anchor_ms = {k: m.path.times[0] + 0.3 * m.path.span_ms for k, m in self.markets.items()}

    # ----------------------------------------------------------------- time & prices
    def now_ms(self) -> int:
        """The exchange's clock (the machine's, shifted by the clock-skew fault); one instant while a request is
        answered (``at_one_instant``), so that every number of one answer is priced at the same moment."""
        if self._instant is not None:
            return self._instant
        if self.clock_ms is not None:
            return self.clock_ms()
        return int(time.time() * 1000 + self.faults.clock_offset_ms)

    @contextlib.contextmanager
    def at_one_instant(self) -> Iterator[int]:
        """Hold the clock still while one answer is built (no await may happen inside)."""
        outer = self._instant
        self._instant = self.now_ms()
        try:
            yield self._instant
        finally:
            self._instant = outer

    def data_time(self, key: tuple[str, str], wall_ms: float) -> float:
        return self.data_anchor_ms[key] + (wall_ms - self.wall_anchor_ms) * self.speed

    def listed_ms(self, m: Market) -> int:
        """When the market was listed (wall time): as far back as the looped price path stays within a factor of 100
        of its data (each lap back divides by the lap's growth; klines at 2001 had prices of 1e-200, which no tick
        can quantize: HTTP 500). Binance serves no candle before a symbol's listing: a ``startTime`` before it starts
        there."""
        path = m.path
        growth = abs(math.log(path.prices[-1] / path.prices[0])) if path.prices[0] > 0 and path.prices[-1] > 0 else 0.0
        laps = min(1000.0, math.floor(math.log(100) / growth) if growth > 0 else 1000.0)
        first_data = float(path.times[0]) - laps * path.span_ms
        return math.ceil(self.wall_anchor_ms + (first_data - self.data_anchor_ms[m.key]) / self.speed)

    def funding_time(self, key: tuple[str, str], now_ms: float) -> float:
        """The time funding periods are counted in: the price path's (its data replayed at any speed) on the
        sandbox, the exchange's own clock when prices come from outside (``price_source``: paper's live prices,
        a backtest's history on its simulated clock), so that funding falls at 00:00, 08:00 and 16:00 UTC of that
        time, as on Binance. (A backtest counted the sandbox's data file's time, which has nothing to do with its
        history: funding fell at arbitrary hours.)"""
        return now_ms if self.price_source is not None else self.data_time(key, now_ms)

    def market(self, kind: str, symbol: str | None) -> Market:
        if not symbol or (kind, symbol.upper()) not in self.markets:
            raise E.invalid_symbol()
        return self.markets[(kind, symbol.upper())]

    def mid(self, m: Market, wall_ms: float | None = None) -> float:
        if self.price_source is not None:
            return self.price_source(m) * m.shock
        t = self.now_ms() if wall_ms is None else wall_ms
        return float(m.path.price_at(self.data_time(m.key, t))) * m.shock

    def candle(self, m: Market, open_ms: int, close_ms: int) -> tuple[float, float, float, float, float]:
        t0 = self.data_time(m.key, open_ms)
        t1 = self.data_time(m.key, close_ms)
        o, h, lo, c, v = m.path.ohlcv(t0, max(t1, t0 + 1))
        return o * m.shock, h * m.shock, lo * m.shock, c * m.shock, v

    def last_price(self, m: Market) -> Decimal:
        """The last traded price (the path), what spot stops and futures CONTRACT_PRICE triggers watch."""
        return Decimal(repr(self.mid(m)))

    def last_spot_price(self, symbol: str | None) -> Decimal:
        """``last_price`` of a spot market by its symbol (-1121 when there is none)."""
        return self.last_price(self.market("spot", symbol))

    def band_reference(self, m: Market) -> Decimal:
        """What a limit price is held against: spot's 5-minute average price, futures' mark price."""
        if m.spec.kind == "linear":
            return self.mark(m.spec.symbol)
        return self.average_price(m)

    def average_price(self, m: Market) -> Decimal:
        """Binance's ``avgPrice``: the mean price of the last 5 minutes (the live price in paper trading)."""
        if self.price_source is not None:
            return self.last_price(m)
        now = self.now_ms()
        o, h, lo, c, _ = self.candle(m, now - 300_000, now)
        return Decimal(repr((o + h + lo + c) / 4))

    def best_bid_ask(self, m: Market) -> tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal]]:
        return self.book.best(self.mid(m), m.spec.tick_size, m.spec.step_size)

    # ----------------------------------------------------------------- accounts
    def add_account(self, balances: dict[str, Decimal], api_key: str | None = None, api_secret: str | None = None) -> Account:
        acct = Account.create(balances, api_key, api_secret)
        self.accounts[acct.api_key] = acct
        return acct

    def emit(self, acct: Account, kind: str, event: str, payload: dict) -> None:
        for listener in list(self.listeners):
            listener(acct, kind, event, payload)

    # ----------------------------------------------------------------- order entry
    def place_order(
        self, acct: Account, kind: str, p: dict[str, str], lock_at_trigger: bool = False, validate_only: bool = False
    ) -> tuple[SandboxOrder, list[Fill]]:
        """Validate and book an order as Binance would; returns it with its immediate fills. ``lock_at_trigger``: a
        spot conditional order holds no funds until it triggers (Bybit's ``StopOrder``; Binance locks at once), and
        expires at its trigger when the funds are not there then. ``validate_only``: the checks up to the matching
        engine (parameters, filters, open-order counts) and no more: raises what they refuse, books nothing, sends
        nothing, spends no order id (``POST /api/v3/order/test``); the order returned is not booked."""
        m = self.market(kind, p.get("symbol"))
        spec = m.spec
        side = (p.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise E.ApiError(400, -1117, "Invalid side.") if side else E.mandatory("side")
        otype = (p.get("type") or "").upper()
        if kind == "linear" and otype in ALGO_TYPES:
            raise E.ApiError(400, -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
        if otype not in (SPOT_TYPES if kind == "spot" else FUTURES_TYPES):
            raise E.ApiError(400, -1116, "Invalid orderType.") if otype else E.mandatory("type")
        limit_like = otype in LIMIT_TYPES
        tif = (p.get("timeInForce") or ("GTC" if limit_like else "")).upper()
        if limit_like and otype != "LIMIT_MAKER":
            if "timeInForce" not in p:
                raise E.mandatory("timeInForce")
            if tif not in (("GTC", "IOC", "FOK") if kind == "spot" else ("GTC", "IOC", "FOK", "GTX")):
                raise E.ApiError(400, -1115, "Invalid timeInForce.")
        reduce_only = str(p.get("reduceOnly", "false")).lower() == "true"
        if reduce_only and kind != "linear":
            raise E.ApiError(400, -1106, "Parameter 'reduceOnly' sent when not required.")
        position_side = self._position_side(acct, kind, p, side, reduce_only)
        client_id = self._client_id(acct, kind, p.get("newClientOrderId"), spend=not validate_only)

        price = ZERO
        if limit_like:
            price = self._number(p, "price")
            filters.check_price(spec, m.bounds, price)
            filters.check_band(spec, side, price, self.band_reference(m))
        stop_price, trailing = ZERO, 0
        if otype in CONDITIONAL_TYPES:
            if "trailingDelta" in p:
                trailing = self._int(p, "trailingDelta")
                filters.check_trailing_delta(trailing)
            if "stopPrice" in p or not trailing:
                stop_price = self._number(p, "stopPrice")
                filters.check_price(spec, m.bounds, stop_price)
        quote_qty = ZERO
        if otype == "MARKET" and "quoteOrderQty" in p and "quantity" not in p:
            quote_qty = self._number(p, "quoteOrderQty")
            ask = self.best_bid_ask(m)[1][0]
            qty = floor_to(quote_qty / ask, spec.step_size)
        else:
            qty = self._number(p, "quantity")
        if qty < spec.min_qty or qty > spec.max_qty or (qty - spec.min_qty) % spec.step_size != 0:
            raise E.filter_failure("LOT_SIZE")
        if otype in MARKET_TYPES:
            filters.check_market_qty(spec, m.bounds, qty)
        iceberg = ZERO
        if p.get("icebergQty"):
            if kind != "spot" or otype not in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
                raise E.ApiError(400, -1106, "Parameter 'icebergQty' sent when not required.")
            iceberg = self._number(p, "icebergQty")
            filters.check_iceberg(spec, qty, iceberg)
        ref_price = price if price > 0 else stop_price if stop_price > 0 else Decimal(repr(self.mid(m)))
        if qty * ref_price < spec.min_notional and not reduce_only:
            if kind == "linear":
                raise E.ApiError(
                    400, -4164, f"Order's notional must be no smaller than {spec.min_notional} (unless you choose reduce only)."
                )
            raise E.filter_failure("NOTIONAL")
        if kind == "spot" and otype not in MARKET_TYPES and qty * ref_price > filters.MAX_NOTIONAL:  # applyMaxToMarket false
            raise E.filter_failure("NOTIONAL")
        if iceberg and iceberg >= qty:  # past the filters: the matching engine's own refusals
            raise E.ApiError(400, -2010, "IcebergQty exceeds QTY.")
        if iceberg and tif != "GTC":
            raise E.ApiError(400, -2010, "Unsupported order combination")
        resting = acct.open_orders(kind, spec.symbol)
        filters.check_open_count(kind, len(resting), algo=False)
        if otype in CONDITIONAL_TYPES:
            filters.check_open_count(kind, sum(1 for o in resting if o.is_conditional), algo=True)

        now = self.now_ms()
        order = SandboxOrder(
            0 if validate_only else next(self._order_ids),
            client_id,
            spec.symbol,
            kind,
            side,
            otype,
            tif if limit_like else "GTC",
            price,
            qty,
            now,
            reduce_only=reduce_only,
            updated_ms=now,
            stop_price=stop_price,
            trailing_delta=trailing,
            iceberg_qty=iceberg,
            position_side=position_side,
            algo_id=self._placing_algo,
            quote_qty=quote_qty,
            strategy_id=self._int(p, "strategyId") if kind == "spot" and p.get("strategyId") else None,
            strategy_type=self._int(p, "strategyType") if kind == "spot" and p.get("strategyType") else None,
        )
        if validate_only:
            return order, []
        if order.is_conditional:
            order.working = False
            if conditional.spot_due(order, self.last_price(m)) or conditional.activation_met(order, self.last_price(m)):
                raise E.ApiError(400, -2010, "Stop price would trigger immediately.")
            if not lock_at_trigger and (self._placing_list is None or not self._placing_list.legs_locked):
                self._reserve_spot(acct, m, order, [])  # an OCO's second leg shares the lock its first leg holds
            self._book(acct, order)
            return order, []
        order.working_ms = now
        takes = self._taker_levels(m, order)
        if (otype == "LIMIT_MAKER" or tif == "GTX") and takes:
            raise E.would_take()
        if tif == "FOK" and sum(q for _, q in takes) < qty:
            takes = []  # FOK: all or nothing; it will expire below
        if kind == "spot":
            self._reserve_spot(acct, m, order, takes)
        else:
            self.check_futures(acct, order, order.price if order.price > 0 else takes[-1][0] if takes else self.last_price(m))
        self._book(acct, order)
        return order, self._work(acct, m, order, takes)

    @staticmethod
    def _trim(acct: Account, keep: int) -> None:
        """A simulated venue's bounded history: past twice ``keep``, the oldest closed orders, conditional orders and
        fills go (a year's backtest places tens of thousands; the engine's trace keeps them all)."""
        if len(acct.orders) > 2 * keep:
            for gone in acct.orders.forget_closed(keep):
                if acct.by_client_id.get((gone.kind, gone.client_id)) is gone:
                    del acct.by_client_id[(gone.kind, gone.client_id)]
        if len(acct.fills) > 2 * keep:
            del acct.fills[:-keep]
        if len(acct.algo_orders) > 2 * keep:  # USDⓈ-M conditional orders, kept apart (the Algo Service's book)
            ended = [k for k, a in acct.algo_orders.items() if not a.is_open]
            for k in ended[: len(ended) - keep]:
                del acct.algo_orders[k]

    def _book(self, acct: Account, order: SandboxOrder) -> None:
        acct.orders[order.order_id] = order
        acct.by_client_id[(order.kind, order.client_id)] = order
        if self.history_kept is not None:
            self._trim(acct, self.history_kept)
        if self._placing_list is not None:  # an OCO leg: announced with its list once both legs are booked
            order.order_list_id = -1
            return
        self.emit(acct, order.kind, "order", {"order": order, "exec": "NEW"})
        if order.kind == "spot":  # Binance reports the lock on spot; futures send ACCOUNT_UPDATE only on balance/position changes
            self.emit(acct, order.kind, "account", {"symbol": order.symbol})

    def _work(self, acct: Account, m: Market, order: SandboxOrder, takes: list[tuple[Decimal, Decimal]]) -> list[Fill]:
        """Execute what an order takes now; a market order or IOC/FOK remainder then expires."""
        fills = self._execute(acct, m, order, takes, maker=False)
        if order.is_open and (order.is_market or order.time_in_force in ("IOC", "FOK")):
            reason = {"FOK": "UNFILLED_FOK_ORDER_EXPIRED", "IOC": "UNFILLED_IOC_QUANTITY_EXPIRED"}.get(order.time_in_force)
            self._close(acct, order, "EXPIRED", reason or "INSUFFICIENT_LIQUIDITY")
        return fills

    def _client_id(self, acct: Account, kind: str, wanted: str | None, spend: bool = True) -> str:
        client_id = wanted or (f"sbx-{next(self._order_ids)}" if spend else "sbx-test")
        if not CLIENT_ID_RE.match(client_id):
            raise E.ApiError(
                400, -1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'."
            )
        earlier = acct.by_client_id.get((kind, client_id))
        if earlier is not None and (earlier.is_open or self.faults.strict_client_ids):  # Binance: "a unique id among open orders"
            raise E.duplicate_order(kind)
        return client_id

    def _position_side(self, acct: Account, kind: str, p: dict[str, str], side: str, reduce_only: bool) -> str:
        """``positionSide``: BOTH in one-way mode; LONG or SHORT (required) in hedge mode, where reduceOnly is refused."""
        ps = (p.get("positionSide") or "BOTH").upper()
        if kind != "linear":
            return "BOTH"
        if ps not in ("BOTH", "LONG", "SHORT"):
            raise E.ApiError(400, -1130, "Invalid data sent for a parameter.")
        if (acct.hedge_mode and ps == "BOTH") or (not acct.hedge_mode and ps != "BOTH"):
            raise E.ApiError(400, -4061, "Order's position side does not match user's setting.")
        if acct.hedge_mode and reduce_only:
            raise E.ApiError(400, -1106, "Parameter 'reduceOnly' sent when not required.")
        return ps

    @staticmethod
    def _int(p: dict[str, str], name: str) -> int:
        """An integer parameter (an order, algo or list id); Binance answers -1100 for anything else."""
        try:
            return int(p[name])
        except ValueError:
            raise E.illegal(name) from None

    @staticmethod
    def _number(p: dict[str, str], name: str) -> Decimal:
        raw = p.get(name)
        if raw is None or raw == "":
            raise E.mandatory(name)
        if not NUMBER_RE.match(str(raw)):
            raise E.illegal(name)
        try:
            return Decimal(str(raw))
        except InvalidOperation:  # pragma: no cover - guarded by the regex
            raise E.illegal(name) from None

    def _taker_levels(self, m: Market, order: SandboxOrder) -> list[tuple[Decimal, Decimal]]:
        """The (price, qty) an order takes from the book right now, best first."""
        remaining = order.remaining
        out: list[tuple[Decimal, Decimal]] = []
        for price, qty in self.book.iter_levels(self.mid(m), m.spec.tick_size, m.spec.step_size, order.side):
            if not order.is_market and ((order.side == "BUY" and price > order.price) or (order.side == "SELL" and price < order.price)):
                break
            take = min(qty, remaining)
            out.append((price, take))
            remaining -= take
            if remaining <= 0:
                break
        if order.is_market and remaining > 0 and out:  # walk past the modelled depth at the last level
            price, take = out[-1]
            out[-1] = (price, take + remaining)
        return out

    # ----------------------------------------------------------------- spot balances
    def _reserve_spot(self, acct: Account, m: Market, order: SandboxOrder, takes: list[tuple[Decimal, Decimal]]) -> None:
        spec = m.spec
        if order.side == "BUY":
            if order.is_market and order.working:
                need = sum((p * q for p, q in takes), Decimal(0))
            elif order.is_market:  # a market-style stop waiting for its trigger: the quote it would cost at the trigger
                need = order.qty * (order.stop_price or self.best_bid_ask(m)[1][0])
            else:
                need = order.price * order.qty
            asset = spec.quote
        else:
            need, asset = order.qty, spec.base
        bal = acct.balance(asset)
        if bal[0] < need:
            raise E.insufficient_balance()
        bal[0] -= need
        bal[1] += need
        order.locked, order.locked_asset = need, asset

    def _settle_spot(
        self, acct: Account, m: Market, order: SandboxOrder, price: Decimal, qty: Decimal, fee_rate: Decimal
    ) -> tuple[Decimal, str]:
        spec = m.spec
        base, quote = acct.balance(spec.base), acct.balance(spec.quote)
        cost = price * qty
        if order.side == "BUY":
            release = cost if order.is_market else order.price * qty
            release = min(release, order.locked)
            quote[1] -= release
            order.locked -= release
            if not order.is_market:
                quote[0] += release - cost  # a buy filled below its limit gets the difference back
            fee = (qty * fee_rate).quantize(COMMISSION_STEP)
            base[0] += qty - fee
            return fee, spec.base
        base[1] -= qty
        order.locked -= qty
        fee = (cost * fee_rate).quantize(COMMISSION_STEP)  # Binance keeps commissions to 8 decimals
        quote[0] += cost - fee
        return fee, spec.quote

    def _release_spot(self, acct: Account, order: SandboxOrder) -> None:
        if order.locked > 0:
            bal = acct.balance(order.locked_asset)
            bal[1] -= order.locked
            bal[0] += order.locked
            order.locked = ZERO

    # ----------------------------------------------------------------- futures margin
    def mark(self, symbol: str) -> Decimal:
        """The mark price unrealized PnL, margins, liquidation and MARK_PRICE triggers use: the last price (the
        path) times a basis that swings ``basis_bps`` either way once an hour of path time, so that mark and last
        differ as on Binance (0 in paper trading, whose live mark is not known)."""
        m = self.markets[("linear", symbol)]
        last = self.mid(m)
        if self.price_source is not None or not m.basis_bps:
            return Decimal(repr(last))
        phase = 2 * math.pi * (self.data_time(m.key, self.now_ms()) % 3_600_000) / 3_600_000
        return Decimal(repr(last * (1 + m.basis_bps / 10_000 * math.sin(phase))))

    def cancel_for_liquidation(self, acct: Account, order: SandboxOrder) -> None:
        self._close(acct, order, "CANCELED")

    # ----------------------------------------------------------------- execution
    def _execute(self, acct: Account, m: Market, order: SandboxOrder, takes: list[tuple[Decimal, Decimal]], maker: bool) -> list[Fill]:
        fills = []
        for price, qty in takes:
            if qty <= 0:
                continue
            fills.append(self._fill(acct, m, order, price, qty, maker))
        return fills

    def _fill(self, acct: Account, m: Market, order: SandboxOrder, price: Decimal, qty: Decimal, maker: bool) -> Fill:
        now = self.now_ms()
        realized = ZERO
        if order.kind == "spot":
            fee_rate = self.maker_fee if maker else self.taker_fee
            fee, fee_asset = self._settle_spot(acct, m, order, price, qty, fee_rate)
        else:
            fee_rate = self.futures_maker_fee if maker else self.futures_taker_fee
            fee, realized = self.settle_futures(acct, order, price, qty, fee_rate)
            fee_asset = m.spec.quote
        acct.add_fee(fee_asset, fee)
        order.filled += qty
        order.cum_quote += price * qty
        if order.kind == "spot" and order.filled == qty:  # Binance spot counts unfilled orders: a first fill is off it
            self.limiter.order_filled(acct.api_key, "api", now)
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        order.updated_ms = now
        fill = Fill(
            next(self._trade_ids),
            order.order_id,
            order.client_id,
            order.symbol,
            order.kind,
            order.side,
            price,
            qty,
            fee,
            fee_asset,
            now,
            maker,
            realized,
        )
        acct.fills.append(fill)
        if order.kind == "spot" and order.status == "FILLED":
            self._release_spot(acct, order)  # market buys may have reserved a little more than they spent
        self.emit(acct, order.kind, "order", {"order": order, "exec": "TRADE", "fill": fill})
        self.emit(acct, order.kind, "account", {"symbol": order.symbol})
        if order.status == "FILLED":
            self._order_done(acct, order)
        if order.order_list_id > 0 and order.filled == qty:  # an OCO leg's first fill expires the other leg
            self.sibling_done(acct, order, cancelled=False)
        return fill

    def _close(self, acct: Account, order: SandboxOrder, status: str, reason: str = "") -> None:
        """End an open order (CANCELED, or EXPIRED for ``reason``: Binance's expiry reasons). Spot releases its lock
        and reports the balance; USDⓈ-M sends no ACCOUNT_UPDATE for an order that ends unfilled ("Unfilled orders or
        cancelled orders will not make the event ACCOUNT_UPDATE pushed, since there's no change on positions")."""
        order.status = status
        order.updated_ms = self.now_ms()
        if status == "EXPIRED":
            order.expiry_reason = reason or "EXCHANGE_CANCELED"
        if order.kind == "spot":
            self._release_spot(acct, order)
        self.emit(acct, order.kind, "order", {"order": order, "exec": "CANCELED" if status == "CANCELED" else "EXPIRED"})
        if order.kind == "spot":
            self.emit(acct, order.kind, "account", {"symbol": order.symbol})
        self._order_done(acct, order)

    def visible(self, order: SandboxOrder | AlgoOrder) -> bool:
        """False while the invisibility fault hides a just-accepted order from queries."""
        return self.now_ms() - order.created_ms >= self.faults.invisible_s * 1000

    def find_order(self, acct: Account, kind: str, p: dict[str, str]) -> SandboxOrder:
        self.market(kind, p.get("symbol"))
        order: SandboxOrder | None = None
        if p.get("orderId"):
            order = acct.orders.get(self._int(p, "orderId"))
        elif p.get("origClientOrderId"):
            order = acct.by_client_id.get((kind, p["origClientOrderId"]))
        elif kind == "spot":
            raise E.ApiError(400, -1102, "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!")
        else:
            raise E.mandatory("orderId")
        if order is None or order.kind != kind or order.symbol != p["symbol"].upper() or not self.visible(order):
            raise E.order_not_found()
        if kind == "spot" and p.get("orderId") and p.get("origClientOrderId") and p["origClientOrderId"] != order.client_id:
            # spot: found by orderId, then the client id checked against it (a cancel must not hit another order)
            raise E.ApiError(400, -2039, "Client order ID is not correct for this order ID.")
        return order

    def cancel_order(self, acct: Account, kind: str, p: dict[str, str]) -> SandboxOrder:
        try:
            order = self.find_order(acct, kind, p)
        except E.ApiError as exc:
            if exc.code == -2013:
                raise E.unknown_order() from None
            raise
        if not order.is_open:
            raise E.unknown_order()
        restriction = p.get("cancelRestrictions") if kind == "spot" else None
        if restriction:
            if restriction not in ("ONLY_NEW", "ONLY_PARTIALLY_FILLED"):
                raise E.ApiError(400, -1145, "Invalid cancelRestrictions")
            if order.status != restriction.removeprefix("ONLY_"):
                raise E.ApiError(400, -2011, "Order was not canceled due to cancel restrictions.")
        order.cancel_id = p.get("newClientOrderId") or f"sbxcancel-{next(self._order_ids)}"  # the request's own id
        self._close(acct, order, "CANCELED")
        if order.order_list_id > 0:  # cancelling a leg cancels its list
            self.sibling_done(acct, order, cancelled=True)
        return order

    def cancel_all(self, acct: Account, kind: str, symbol: str) -> list[SandboxOrder]:
        m = self.market(kind, symbol)
        out = []
        cancel_id = f"sbxcancel-{next(self._order_ids)}"  # one request: one client id on every order it cancels
        for order in acct.open_orders(kind, m.spec.symbol):
            if not order.is_open:  # the other leg of a list cancelled a moment ago
                continue
            order.cancel_id = cancel_id
            self._close(acct, order, "CANCELED")
            if order.order_list_id > 0:
                self.sibling_done(acct, order, cancelled=True)
            out.append(order)
        return out

    def set_leverage(self, acct: Account, symbol: str, leverage: int) -> int:
        m = self.market("linear", symbol)
        if not 1 <= leverage <= 125:
            raise E.ApiError(400, -4028, f"Leverage {leverage} is not valid")
        acct.leverage[m.spec.symbol] = leverage
        return leverage

    # ----------------------------------------------------------------- resting orders
    def match_resting(self) -> int:
        """Trigger the conditional orders the price path has reached, then fill the resting limit orders it has
        crossed; returns the number of fills."""
        if self.matching_paused:
            return 0
        self.trigger_conditionals()
        self.settle_futures_accounts()
        n = 0
        ratio = self.faults.partial_fill_ratio
        for acct in list(self.accounts.values()):
            for order in [o for o in acct.orders.open() if o.working and not o.is_market]:
                m = self.markets[(order.kind, order.symbol)]
                (bid, _), (ask, _) = self.best_bid_ask(m)
                crossed = (order.side == "BUY" and ask <= order.price) or (order.side == "SELL" and bid >= order.price)
                if not crossed:
                    continue
                qty = order.remaining
                if ratio > 0:
                    qty = min(qty, max(m.spec.step_size, floor_to(order.qty * Decimal(repr(ratio)), m.spec.step_size)))
                if order.kind == "linear" and (order.reduce_only or order.position_side != "BOTH"):
                    pos = self.position(acct, order.symbol, order.position_side)
                    if order.reduce_only or self.closes(order, pos) or (order.side == "SELL") == (order.position_side == "LONG"):
                        qty = min(qty, abs(pos.amount)) if self.closes(order, pos) else ZERO
                    if qty <= 0:
                        self._close(acct, order, "EXPIRED")
                        continue
                self._fill(acct, m, order, order.price, qty, maker=True)
                n += 1
        if n and any(p.amount for a in self.accounts.values() for p in a.positions.values()):
            self.check_margins()  # a position a fill opened or grew here is judged at this price too
        return n

    def pass_funding(self) -> None:
        """Funding periods that begin while nothing is at stake are passed, not paid later. The simulated venue calls
        this when no order rests and no position is open (it runs no matching then): without it, the first position
        opened after a flat funding time paid that period's funding a candle after it opened. Only for a clock that
        is the exchange's own (``price_source`` set: ``funding_time`` is the time itself)."""
        now = self.now_ms()
        if now < self._funding_passed_until:
            return
        for key, m in self.markets.items():
            if m.spec.kind == "linear":
                self._funding_epoch[key] = int(self.funding_time(key, now) // FUNDING_PERIOD_MS)
        self._funding_passed_until = (int(now) // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS

    def funding_at_clock(self) -> None:
        """The simulated clock reached a time (a candle's close): a funding time it passed is settled now, on what
        is held now, before anything trades at that time (live, an order at 08:00:00 executes after the 08:00
        settlement). Only for a clock that is the exchange's own, as ``pass_funding``."""
        if self.now_ms() >= self._funding_passed_until:
            self._settle_funding_periods()
            self._funding_passed_until = (int(self.now_ms()) // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS

    def _settle_funding_periods(self) -> None:
        now = self.now_ms()
        for key, m in self.markets.items():
            if m.spec.kind != "linear":
                continue
            epoch = int(self.funding_time(key, now) // FUNDING_PERIOD_MS)
            if epoch > self._funding_epoch.setdefault(key, epoch):
                self._funding_epoch[key] = epoch
                for acct in list(self.accounts.values()):
                    self.settle_funding(acct, m.spec.symbol, now)

    def settle_futures_accounts(self) -> None:
        """Funding every 8 hours (at 00:00, 08:00 and 16:00 of the clock ``funding_time`` reads), a MARGIN_CALL for
        positions newly at risk, then liquidation of the positions whose margin has run out."""
        self._settle_funding_periods()
        self.check_margins()

    def check_margins(self) -> None:
        """A MARGIN_CALL for positions newly at risk, then liquidation of the positions whose margin has run out."""
        for acct in list(self.accounts.values()):
            groups = self.margin_groups(acct)  # one pass over the positions serves both checks
            called = self.margin_calls(acct, groups)
            if called:
                self.emit(acct, "linear", "margin_call", {"positions": called})
            for symbol, side in self.liquidation_due(groups):
                self.liquidate(acct, symbol, side)

    # ----------------------------------------------------------------- conditional orders
    def trigger_conditionals(self) -> None:
        """Spot stops and take-profits on the last price; futures algo orders on their working type's price."""
        for acct in list(self.accounts.values()):
            for order in [o for o in acct.orders.open() if not o.working]:
                m = self.markets[(order.kind, order.symbol)]
                due = conditional.spot_due(order, self.last_price(m), update=True)
                if order.trail_ref and not order.trail_ms:
                    order.trail_ms = self.now_ms()
                if due:
                    self._trigger_spot(acct, m, order)
            for algo in [a for a in acct.algo_orders.values() if a.is_open]:
                m = self.markets[("linear", algo.symbol)]
                last, mark = self.last_price(m), self.mark(algo.symbol)
                if not conditional.algo_due(algo, mark if algo.working_type == "MARK_PRICE" else last, update=True):
                    continue
                if algo.price_protect and abs(mark - last) > mark * PRICE_PROTECT:
                    continue  # Binance holds a protected trigger while last and mark are further apart than triggerProtect
                self._trigger_algo(acct, m, algo)

    def _trigger_spot(self, acct: Account, m: Market, order: SandboxOrder) -> None:
        now = self.now_ms()
        order.working, order.working_ms, order.updated_ms = True, now, now
        if order.order_list_id > 0:  # an OCO leg triggers: the other leg expires and hands over the lock they shared
            self.sibling_done(acct, order, cancelled=False)
        self.emit(acct, "spot", "order", {"order": order, "exec": "NEW"})  # the same order, now working (isWorking true)
        takes = self._taker_levels(m, order)
        # lock what it needs now: a market buy's lock at placement was an estimate, an OCO stop leg had none of its own
        if (order.is_market and order.side == "BUY") or not order.locked:
            self._release_spot(acct, order)
            try:
                self._reserve_spot(acct, m, order, takes)
            except E.ApiError:
                self._close(acct, order, "EXPIRED", "REJECTED")
                return
        self._work(acct, m, order, takes)

    def place_algo_order(self, acct: Account, p: dict[str, str]) -> AlgoOrder:
        """``POST /fapi/v1/algoOrder`` (algoType CONDITIONAL): validated as Binance does, held until its trigger."""
        m = self.market("linear", p.get("symbol"))
        spec = m.spec
        if (p.get("algoType") or "").upper() != "CONDITIONAL":
            raise E.ApiError(400, -1130, "Invalid data sent for a parameter.") if p.get("algoType") else E.mandatory("algoType")
        side = (p.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise E.ApiError(400, -1117, "Invalid side.") if side else E.mandatory("side")
        otype = (p.get("type") or "").upper()
        if otype not in ALGO_TYPES:
            raise E.ApiError(400, -1116, "Invalid orderType.") if otype else E.mandatory("type")
        close_position = str(p.get("closePosition", "false")).lower() == "true"
        reduce_only = str(p.get("reduceOnly", "false")).lower() == "true"
        position_side = self._position_side(acct, "linear", p, side, reduce_only)
        if close_position:
            if otype not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
                raise E.ApiError(400, -1106, "Parameter 'closePosition' sent when not required.")
            for name in ("quantity", "reduceOnly"):
                if p.get(name) not in (None, "", "false"):
                    raise E.ApiError(400, -1106, f"Parameter '{name}' sent when not required.")
        working_type = (p.get("workingType") or "CONTRACT_PRICE").upper()
        if working_type not in ("MARK_PRICE", "CONTRACT_PRICE"):
            raise E.ApiError(400, -1130, "Invalid data sent for a parameter.")
        price = ZERO
        tif = (p.get("timeInForce") or "GTC").upper()
        if otype in ("STOP", "TAKE_PROFIT"):
            if tif not in ("GTC", "IOC", "FOK", "GTX"):
                raise E.ApiError(400, -1115, "Invalid timeInForce.")
            price = self._number(p, "price")
            filters.check_price(spec, m.bounds, price)
        trigger, rate = ZERO, ZERO
        if otype == "TRAILING_STOP_MARKET":
            rate = self._number(p, "callbackRate")
            if not Decimal("0.1") <= rate <= 10:
                raise E.ApiError(400, -1130, "Invalid data sent for a parameter.")
            if p.get("activatePrice"):
                trigger = self._number(p, "activatePrice")
                filters.check_price(spec, m.bounds, trigger)
        else:
            trigger = self._number(p, "triggerPrice")
            filters.check_price(spec, m.bounds, trigger)
        qty = ZERO
        if not close_position:
            qty = self._number(p, "quantity")
            if qty < spec.min_qty or qty > spec.max_qty or (qty - spec.min_qty) % spec.step_size != 0:
                raise E.filter_failure("LOT_SIZE")
            if otype.endswith("MARKET"):
                filters.check_market_qty(spec, m.bounds, qty)
        client_id = p.get("clientAlgoId") or f"sbxalgo-{next(self._order_ids)}"
        if not CLIENT_ID_RE.match(client_id):
            raise E.illegal("clientAlgoId")
        if any(a.client_algo_id == client_id and a.is_open for a in acct.algo_orders.values()):
            raise E.duplicate_order("linear")
        filters.check_open_count("linear", sum(1 for a in acct.algo_orders.values() if a.is_open and a.symbol == spec.symbol), algo=True)
        now = self.now_ms()
        algo = AlgoOrder(
            next(self._order_ids),
            client_id,
            spec.symbol,
            side,
            position_side,
            otype,
            tif,
            qty,
            price,
            trigger,
            working_type,
            str(p.get("priceProtect", "false")).lower() == "true",
            close_position,
            reduce_only,
            rate,
            now,
            updated_ms=now,
        )
        source = self.mark(spec.symbol) if working_type == "MARK_PRICE" else self.last_price(m)
        if otype != "TRAILING_STOP_MARKET" and conditional.algo_due(algo, source):
            raise E.ApiError(400, -2021, "Order would immediately trigger.")
        acct.algo_orders[algo.algo_id] = algo
        if self.history_kept is not None:
            self._trim(acct, self.history_kept)
        self.emit(acct, "linear", "algo", {"algo": algo})
        return algo

    def _trigger_algo(self, acct: Account, m: Market, algo: AlgoOrder) -> None:
        """Place the algo order's ordinary order in the matching engine (same client id); if Binance would refuse it
        (reduce-only with nothing to reduce, margin, filters), the algo order ends REJECTED with the reason."""
        now = self.now_ms()
        algo.status, algo.trigger_ms, algo.updated_ms = "TRIGGERED", now, now
        params = {
            "symbol": algo.symbol,
            "side": algo.side,
            "type": "LIMIT" if algo.price else "MARKET",
            "positionSide": algo.position_side,
            "newClientOrderId": algo.client_algo_id,
        }
        qty = algo.qty
        if algo.close_position:
            pos = self.position(acct, algo.symbol, algo.position_side)
            closes = pos.amount > 0 if algo.side == "SELL" else pos.amount < 0
            qty = abs(pos.amount) if closes else ZERO
        if algo.price:
            params.update(price=str(algo.price), timeInForce=algo.time_in_force)
        if (algo.reduce_only or algo.close_position) and algo.position_side == "BOTH":
            params["reduceOnly"] = "true"
        try:
            if not qty:
                raise E.reduce_only_rejected()
            params["quantity"] = str(qty)
            order, _ = self._place_triggered(acct, params, algo)
        except E.ApiError as exc:
            algo.status, algo.reason = "REJECTED", exc.msg
            self.emit(acct, "linear", "algo", {"algo": algo})
            return
        algo.actual_order_id = order.order_id
        self.emit(acct, "linear", "algo", {"algo": algo})  # TRIGGERED: its order is in the matching engine (ai, aq)
        if not order.is_open:  # and already done (a market order fills at once): FINISHED after it, as Binance says
            algo.status, algo.updated_ms = "FINISHED", self.now_ms()
            self.emit(acct, "linear", "algo", {"algo": algo})

    def _place_triggered(self, acct: Account, params: dict[str, str], algo: AlgoOrder) -> tuple[SandboxOrder, list[Fill]]:
        """An algo order's trigger places its order like any other, tagged with the algo id."""
        self._placing_algo = algo.algo_id
        try:
            return self.place_order(acct, "linear", params)
        finally:
            self._placing_algo = 0

    def find_algo(self, acct: Account, p: dict[str, str]) -> AlgoOrder:
        algo: AlgoOrder | None = None
        if p.get("algoId"):
            algo = acct.algo_orders.get(self._int(p, "algoId"))
        elif p.get("clientAlgoId"):
            algo = next((a for a in reversed(acct.algo_orders.values()) if a.client_algo_id == p["clientAlgoId"]), None)
        else:
            raise E.mandatory("algoId")
        if algo is None:
            raise E.order_not_found()
        return algo

    def cancel_algo(self, acct: Account, p: dict[str, str]) -> AlgoOrder:
        algo = self.find_algo(acct, p)
        if not algo.is_open:
            raise E.unknown_order()
        self._close_algo(acct, algo, "CANCELED")
        return algo

    def cancel_all_algo(self, acct: Account, symbol: str | None) -> list[AlgoOrder]:
        sym = self.market("linear", symbol).spec.symbol
        out = [a for a in acct.algo_orders.values() if a.is_open and a.symbol == sym]
        for algo in out:
            self._close_algo(acct, algo, "CANCELED")
        return out

    def _close_algo(self, acct: Account, algo: AlgoOrder, status: str) -> None:
        algo.status, algo.updated_ms = status, self.now_ms()
        self.emit(acct, "linear", "algo", {"algo": algo})

    def _order_done(self, acct: Account, order: SandboxOrder) -> None:
        """An order a trigger placed has ended: its algo order is FINISHED."""
        algo = acct.algo_orders.get(order.algo_id) if order.algo_id else None
        if algo is not None and algo.status == "TRIGGERED" and algo.actual_order_id:  # not while the trigger places it
            algo.status, algo.updated_ms = "FINISHED", self.now_ms()
            self.emit(acct, "linear", "algo", {"algo": algo})

    # ----------------------------------------------------------------- snapshot
    def snapshot(self) -> dict:
        """Full state of every account, as plain JSON values (strings for decimals)."""
        out: dict = {"time": self.now_ms(), "accounts": {}}
        for key, acct in self.accounts.items():
            margins = self.futures_margins(acct)
            out["accounts"][key] = {
                "spot_balances": {a: {"free": str(b[0]), "locked": str(b[1])} for a, b in acct.spot.items()},
                "futures": {
                    "wallet": str(acct.futures_wallet),
                    "available": str(margins["available"]),
                    "unrealized_pnl": str(margins["upnl"]),
                    "positions": {
                        (sym if side == "BOTH" else f"{sym}:{side}"): {
                            "amount": str(p.amount),
                            "entry_price": str(p.entry_price),
                            "leverage": self.leverage_of(acct, sym),
                            "isolated_wallet": str(p.isolated_wallet),
                        }
                        for sym, side, p in self.open_positions(acct)
                    },
                },
                "open_orders": [order_json(o) for o in acct.orders.open()],
                "algo_orders": [
                    {
                        "algo_id": a.algo_id,
                        "client_algo_id": a.client_algo_id,
                        "symbol": a.symbol,
                        "side": a.side,
                        "position_side": a.position_side,
                        "type": a.type,
                        "status": a.status,
                        "qty": str(a.qty),
                        "trigger_price": str(a.trigger_price),
                        "reduce_only": a.reduce_only or a.close_position,
                        "actual_order_id": a.actual_order_id,
                    }
                    for a in acct.algo_orders.values()
                ],
                "orders": [order_json(o) for o in acct.orders.values()],
                "fills": [fill_json(f) for f in acct.fills],
                "fees_paid": {a: str(v) for a, v in acct.fees_paid.items()},
                "countdowns": self.countdowns.of(key),  # symbol -> when its countdownCancelAll timer lapses (ms)
            }
        return out


def order_json(o: SandboxOrder) -> dict:
    conditional = {"stop_price": str(o.stop_price), "working": o.working} if o.is_conditional else {}
    return conditional | {
        "order_id": o.order_id,
        "client_order_id": o.client_id,
        "symbol": o.symbol,
        "kind": o.kind,
        "side": o.side,
        "type": o.type,
        "time_in_force": o.time_in_force,
        "price": str(o.price),
        "qty": str(o.qty),
        "filled": str(o.filled),
        "cum_quote": str(o.cum_quote),
        "status": o.status,
        "reduce_only": o.reduce_only,
        "created": o.created_ms,
        "updated": o.updated_ms,
    }


def fill_json(f: Fill) -> dict:
    return {
        "trade_id": f.trade_id,
        "order_id": f.order_id,
        "client_order_id": f.client_id,
        "symbol": f.symbol,
        "kind": f.kind,
        "side": f.side,
        "price": str(f.price),
        "qty": str(f.qty),
        "commission": str(f.commission),
        "commission_asset": f.commission_asset,
        "time": f.time_ms,
        "maker": f.is_maker,
        "realized_pnl": str(f.realized_pnl),
    }


__all__ = ["BRACKETS", "Market", "SandboxExchange", "bracket_for", "fill_json", "order_json"]
