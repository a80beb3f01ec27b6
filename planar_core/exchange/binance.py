"""Everything Binance-specific the engine relies on, behind one ``Venue``.

The engine speaks ccxt's unified API; what ccxt leaves to the exchange (how an order is named by its client
id, which error codes mean what, the weight header, the API-key permission endpoint, the kline "closed"
flag, the sandbox URLs) is here, with a capability table in the manner of freqtrade's per-exchange
``_ft_has``. A second exchange is a second module with its own ``Venue``, not an edit of the engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ccxt
import ccxt.pro as ccxtpro

from ..config import StrategyConfig
from ..model.types import Json
from . import errors as E
from .endpoints import point_at_sandbox
from .limiter import ccxt_rate_options

_CODE_RE = re.compile(r'"code"\s*:\s*(-?\d+)')


@dataclass(frozen=True)
class Capabilities:
    """What the venue offers beyond ccxt's unified minimum (the engine branches on these, never on a name)."""

    client_id_param: str  # the parameter that names an order by its client id in fetch/cancel
    kline_closed_flag: bool  # the kline stream says when a candle is final (else: once a later candle exists)
    api_permissions: bool  # the key's permissions can be read (withdrawal check at start)
    used_weight_header: str | None  # response header with the weight used in the current minute
    order_types: frozenset[str] = field(default_factory=frozenset)  # OrderType values the venue takes
    trailing_percent: dict[str, tuple[float, float]] = field(default_factory=dict)  # market type -> (min, max) %
    native_oco: frozenset[str] = frozenset()  # market types with a one-cancels-other order list
    hedge_mode: bool = False  # futures positions may be held long and short at once
    margin_modes: frozenset[str] = frozenset()


class StrictBinance(ccxtpro.binance):
    """ccxt.pro's binance, except that an answer that starts like JSON but does not parse raises ``BadResponse``,
    and the kline stream's "closed" flag (``k.x``, dropped by ccxt's unified candles) is kept.

    ccxt returns None for an unparsable body and its methods then parse an empty answer, so a truncated
    open-orders list reads as "nothing open" and an emergency stop would report clean with every order live."""

    def __init__(self, config: Json) -> None:
        super().__init__(config)
        self.closed_klines: dict[tuple[str, str], int] = {}  # (symbol, timeframe) -> opening time of the newest closed kline

    def parse_json(self, http_response: Any) -> Any:
        if self.is_json_encoded_object(http_response):
            try:
                return self.on_json_response(http_response)
            except ValueError as exc:
                raise ccxt.BadResponse(f"{self.id} malformed JSON answer ({len(http_response)} bytes): {http_response[:80]!r}") from exc
        return None

    def handle_ohlcv(self, client: Any, message: Json) -> None:
        kline = message.get("k")
        if isinstance(kline, dict) and kline.get("x") is True and isinstance(kline.get("t"), int):
            market_type = "spot" if self.is_spot_url(client) else "contract"
            symbol = self.safe_symbol(kline.get("s"), None, None, market_type)
            self.closed_klines[(symbol, self.find_timeframe(kline.get("i")))] = int(kline["t"])
        super().handle_ohlcv(client, message)


class BinanceVenue:
    """Binance spot and USDⓈ-M futures as the engine needs them."""

    name = "binance"
    caps = Capabilities(
        client_id_param="origClientOrderId",
        kline_closed_flag=True,
        api_permissions=True,
        used_weight_header="X-MBX-USED-WEIGHT-1M",
        order_types=frozenset(
            {
                "market",
                "gtc",
                "ioc",
                "fok",
                "post_only",
                "stop_market",
                "stop_limit",
                "take_profit_market",
                "take_profit_limit",
                "trailing_stop",
            }
        ),
        # spot trailingDelta 10-2000 basis points; USD-M callbackRate 0.1-10 %
        trailing_percent={"spot": (0.1, 20.0), "swap": (0.1, 10.0)},
        native_oco=frozenset({"spot"}),
        hedge_mode=True,
        margin_modes=frozenset({"isolated", "cross"}),
    )

    def build(self, cfg: StrategyConfig, markets_type: str | None = None) -> StrictBinance:
        """A ccxt.pro binance configured from the strategy: credentials, limits, sandbox endpoint."""
        creds = cfg.credentials
        options: Json = {
            "defaultType": markets_type or ("swap" if cfg.margin else "spot"),
            "fetchMarkets": {"types": ["spot", "linear"]},
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            "adjustForTimeDifference": True,
        }  # sign with the exchange's clock, measured at load_markets
        conf: Json = {
            "timeout": int(max(cfg.timeouts.order_placement, cfg.timeouts.balance_sync) * 1000),
            "options": options,
            **ccxt_rate_options(cfg.rate_limits),
        }
        if creds.api_key is not None:
            conf["apiKey"] = creds.api_key.get_secret_value()
        if creds.api_secret is not None:
            conf["secret"] = creds.api_secret.get_secret_value()
        if creds.passphrase is not None:
            conf["password"] = creds.passphrase.get_secret_value()
        exchange = StrictBinance(conf)
        if cfg.sandbox:
            ep = cfg.sandbox_endpoint
            if ep.url:
                point_at_sandbox(exchange, ep.url, ep.ws_url or ep.url.replace("http", "ws", 1))
            else:
                exchange.set_sandbox_mode(True)
        return exchange

    def by_client_id(self, client_order_id: str, waiting_trigger: bool = False) -> Json:
        """ccxt params that name an order by its client order id (fetch_order / cancel_order with id None).
        ``waiting_trigger``: a USD-M conditional order not triggered yet, which lives in the Algo Service under its
        ``clientAlgoId`` (once triggered, its order in the book carries the same client id)."""
        if waiting_trigger:
            return {"trigger": True, "clientAlgoId": client_order_id}
        return {self.caps.client_id_param: client_order_id}

    @staticmethod
    def trigger_params(contract: bool, waiting_trigger: bool) -> Json:
        """ccxt params for fetch/cancel by exchange id of a conditional order still waiting (futures: the algo id)."""
        return {"trigger": True} if contract and waiting_trigger else {}

    @staticmethod
    def conditional_params(trigger: str, contract: bool, trigger_price: float | None, trailing_percent: float | None) -> Json:
        """ccxt's unified parameters for a conditional order (``trigger``: "stop", "take", "trailing").

        ccxt turns them into spot ``STOP_LOSS[_LIMIT]`` / ``TAKE_PROFIT[_LIMIT]`` (trailing: ``trailingDelta`` on a
        stop-loss) and USD-M ``STOP[_MARKET]`` / ``TAKE_PROFIT[_MARKET]`` / ``TRAILING_STOP_MARKET`` on the Algo
        Service."""
        if trigger == "stop":
            return {"stopLossPrice": trigger_price}
        if trigger == "take":
            return {"takeProfitPrice": trigger_price}
        out: Json = {"trailingPercent": trailing_percent}
        if not contract:
            out["stopLossOrTakeProfit"] = "stopLoss"
        if trigger_price is not None:
            out["trailingTriggerPrice"] = trigger_price
        return out

    @staticmethod
    def trigger_phase(raw: Json) -> str | None:
        """Where a conditional order stands: "waiting" for its trigger, "triggered" (its order is on the book or
        done), or None when the answer does not say (a plain order, or a cancel's short answer).

        USD-M conditional orders are Algo Service records (``algoStatus`` over REST, ``X`` in ``ALGO_UPDATE``) until
        they trigger; spot conditional orders say ``isWorking`` (REST) / ``w`` (user stream)."""
        info = raw.get("info")
        if not isinstance(info, dict):
            return None
        algo = info.get("algoStatus") if "algoId" in info else info.get("X") if "aid" in info else None
        if isinstance(algo, str):
            return "waiting" if algo == "NEW" else "triggered" if algo in ("TRIGGERING", "TRIGGERED", "FINISHED") else None
        working = info.get("isWorking", info.get("w"))
        if isinstance(working, bool) and str(info.get("type", info.get("o", ""))).startswith(("STOP_LOSS", "TAKE_PROFIT")):
            return "triggered" if working else "waiting"
        return None

    @staticmethod
    def triggered_order_id(raw: Json) -> str | None:
        """The id of the order a USD-M conditional order placed when it triggered."""
        info = raw.get("info")
        if not isinstance(info, dict):
            return None
        oid = info.get("actualOrderId", info.get("ai"))
        return str(oid) if oid not in (None, "", 0, "0") else None

    @staticmethod
    def is_algo_record(raw: Json) -> bool:
        info = raw.get("info")
        return isinstance(info, dict) and ("algoId" in info or "aid" in info)

    @staticmethod
    def oco_request(market_id: str, side: str, amount: str, take_profit: str, stop: str, above_cid: str, below_cid: str) -> Json:
        """``POST /api/v3/orderList/oco`` parameters of an exit list: a LIMIT_MAKER at the take-profit and a STOP_LOSS
        at the stop (a sell list has the limit above, a buy list below); the client ids go above, then below."""
        limit = {"Type": "LIMIT_MAKER", "Price": take_profit}
        stop_leg = {"Type": "STOP_LOSS", "StopPrice": stop}
        above, below = (limit, stop_leg) if side == "sell" else (stop_leg, limit)
        out: Json = {"symbol": market_id, "side": side.upper(), "quantity": amount, "newOrderRespType": "RESULT"}
        for pos, leg, cid in (("above", above, above_cid), ("below", below, below_cid)):
            out.update({f"{pos}{k}": v for k, v in leg.items()})
            out[f"{pos}ClientOrderId"] = cid
        return out

    @staticmethod
    async def create_oco(ex: Any, request: Json) -> Json:
        answer: Json = await ex.privatePostOrderListOco(request)
        return answer

    @staticmethod
    def has_countdown(market: Json) -> bool:
        """Whether the market has an exchange-side dead-man's switch: USDⓈ-M futures ``countdownCancelAll``
        (spot has none)."""
        return bool(market.get("contract")) and bool(market.get("linear"))

    @staticmethod
    async def countdown_cancel_all(ex: Any, market_id: str, countdown_ms: int) -> Json:
        """``POST /fapi/v1/countdownCancelAll``: the exchange cancels the symbol's open orders ``countdown_ms`` after
        the last call (0 stops the timer); ccxt has it only as an implicit method."""
        answer: Json = await ex.fapiPrivatePostCountdownCancelAll({"symbol": market_id, "countdownTime": countdown_ms})
        return answer

    @staticmethod
    def reports_funding(raw: Json) -> bool:
        """A balance update the exchange sent because a funding payment was booked (``ACCOUNT_UPDATE`` reason)."""
        info = raw.get("info")
        a = info.get("a") if isinstance(info, dict) else None
        return isinstance(a, dict) and a.get("m") == "FUNDING_FEE"

    @staticmethod
    def forced_close(raw: Json) -> str | None:
        """ "liquidation" or "adl" when the order is the exchange's forced close of a position (Binance names them
        ``autoclose-*`` and ``adl_autoclose``; the order type is LIQUIDATION), else None."""
        cid = str(raw.get("clientOrderId") or "")
        info = raw.get("info")
        otype = info.get("o", info.get("type")) if isinstance(info, dict) else None
        if cid.startswith("adl_autoclose"):
            return "adl"
        if cid.startswith("autoclose-") or otype == "LIQUIDATION":
            return "liquidation"
        return None

    def closed_through(self, ex: object, symbol: str, timeframe: str) -> int | None:
        if not self.caps.kline_closed_flag:
            return None
        closed = getattr(ex, "closed_klines", None)
        return closed.get((symbol, timeframe)) if isinstance(closed, dict) else None

    async def can_withdraw(self, ex: Any) -> bool | None:
        """Whether the API key may withdraw (None: not readable)."""
        restrictions = await ex.sapiGetAccountApiRestrictions()
        return bool(restrictions.get("enableWithdrawals")) if isinstance(restrictions, dict) else None

    def used_weight(self, headers: dict[str, str] | None) -> int | None:
        name = self.caps.used_weight_header
        if not headers or name is None:
            return None
        raw = headers.get(name) or headers.get(name.lower())
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    @staticmethod
    def error_code(exc: BaseException) -> int | None:
        """Binance's numeric error code (ccxt puts the raw body in the message)."""
        m = _CODE_RE.search(str(exc))
        return int(m.group(1)) if m else None

    def refine_error(self, exc: BaseException) -> E.ExchangeOpError | None:
        """The codes ccxt leaves generic, mapped to the engine's typed errors (None: ccxt's class decides)."""
        code = self.error_code(exc)
        text = str(exc)
        kind: type[E.ExchangeOpError] | None = None
        if code == -4116 or (code == -2010 and "Duplicate" in text):
            kind = E.DuplicateOrder
        elif code == -2019:
            kind = E.InsufficientFunds
        elif code in (-2022, -4164, -1013):
            kind = E.InvalidOrder
        elif code == -1021:
            kind = E.ClockSkew
        return kind(text, code, exc) if kind is not None else None

    def already_set(self, exc: BaseException) -> bool:
        """The exchange refused a margin-mode or position-mode change because that mode is already set."""
        return self.error_code(exc) in (-4046, -4059) or "No need to change" in str(exc)

    def map_error(self, exc: BaseException) -> E.ExchangeOpError:
        return E.map_error(exc, self.refine_error, self.error_code)


BINANCE = BinanceVenue()
VENUES: dict[str, Callable[[], BinanceVenue]] = {"binance": lambda: BINANCE}
