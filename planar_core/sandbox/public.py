"""Public market-data endpoints of the sandbox (exchangeInfo, klines, depth, trades, tickers)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from . import filters
from .errors import ApiError, invalid_symbol
from .exchange import Market, SandboxExchange
from .fmt import px, qx, s
from .market_data import MarketSpec
from .wire import OTHER_MARGIN_ASSETS

INTERVAL_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}


def exchange_info(ex: SandboxExchange, kind: str) -> dict:
    """``exchangeInfo`` of a market kind: spot ``/api/v3``, USDⓈ-M ``/fapi/v1``, COIN-M ``/dapi/v1`` (``inverse``) or
    options ``/eapi/v1`` (``option``). The sandbox lists no COIN-M contract and no option: those two answer Binance's
    shape with empty lists (what ccxt's mainnet ``load_markets`` fetches, see docs/sandbox.md)."""
    lim = ex.limiter.limits
    if kind == "option":  # Binance's options exchangeInfo has its own layout
        return {
            "timezone": "UTC",
            "serverTime": ex.now_ms(),
            "optionContracts": [],
            "optionAssets": [],
            "optionSymbols": [],
            "rateLimits": lim.rate_limits(kind),
        }
    symbols = []
    for m in ex.markets.values():
        spec = m.spec
        if spec.kind != kind:
            continue
        row = {
            "symbol": spec.symbol,
            "status": "TRADING",
            "baseAsset": spec.base,
            "quoteAsset": spec.quote,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "filters": filters.declared(spec, m.bounds),
        }
        if kind == "spot":
            row.update(
                {
                    "quoteAssetPrecision": 8,
                    "amendAllowed": False,
                    "pegInstructionsAllowed": False,
                    "opoAllowed": False,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "otoAllowed": False,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": False,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
                }
            )
        else:
            row.update(
                {
                    "pair": spec.symbol.split("_")[0],
                    "contractType": spec.contract_type,
                    "deliveryDate": spec.delivery_ms,
                    "onboardDate": 1569398400000,
                    "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000",
                    "marginAsset": "USDT",
                    "pricePrecision": spec.price_precision,
                    "quantityPrecision": spec.qty_precision,
                    "underlyingType": "COIN",
                    "underlyingSubType": [],
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "settlePlan": 0,
                    "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                }
            )
        symbols.append(row)
    return {
        "timezone": "UTC",
        "serverTime": ex.now_ms(),
        "rateLimits": lim.rate_limits(kind),
        "exchangeFilters": [],
        "symbols": symbols,
        **(
            {
                "futuresType": "U_MARGINED",
                "assets": [
                    {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000" if a == "USDT" else "0"}
                    for a in ("USDT", *OTHER_MARGIN_ASSETS)
                ],
            }
            if kind == "linear"
            else {}
        ),
    }


def interval_ms(kind: str, interval: str) -> int | None:
    """The length of a kline interval a market of ``kind`` serves (None: not served; USDⓈ-M has no 1s klines)."""
    return None if kind == "linear" and interval == "1s" else INTERVAL_MS.get(interval)


def klines(ex: SandboxExchange, kind: str, p: dict[str, str]) -> list[list]:
    m = ex.market(kind, p.get("symbol"))
    step = interval_ms(kind, p.get("interval", ""))
    if step is None:
        raise ApiError(400, -1120, "Invalid interval.")
    limit = max(1, min(int(p.get("limit") or 500), 1500))
    now = ex.now_ms()
    last_open = now - now % step
    if p.get("endTime"):
        end = int(p["endTime"])
        last_open = min(last_open, end - end % step)
    first_open = last_open - (limit - 1) * step
    listed = ex.listed_ms(m)
    listed += -listed % step  # the first whole candle after the listing
    if p.get("startTime"):  # Binance: the candles opening at or after startTime, oldest first, at most limit of them
        start = max(int(p["startTime"]), listed)
        first_open = start - start % step + (step if start % step else 0)
        last_open = min(last_open, first_open + (limit - 1) * step)
    first_open = max(first_open, listed)  # nothing before the listing (an endTime before it: no candle)
    rows = []
    for open_ms in range(first_open, last_open + 1, step):
        close_ms = min(open_ms + step, now + 1)
        o, h, lo, c, v = ex.candle(m, open_ms, close_ms)
        q = v * (o + c) / 2
        qp = m.spec.wire_qty_places
        rows.append(
            [
                open_ms,
                _p(m, o),
                _p(m, h),
                _p(m, lo),
                _p(m, c),
                f"{v:.{qp}f}",
                open_ms + step - 1,
                f"{q:.8f}",
                max(1, int(v)),
                f"{v / 2:.{qp}f}",
                f"{q / 2:.8f}",
                "0",
            ]
        )
    return rows


def _p(m: Market, price: float) -> str:
    return px(m.spec, Decimal(repr(price)).quantize(m.spec.tick_size))


def levels(spec: MarketSpec, rows: list[tuple[Decimal, Decimal]]) -> list[list[str]]:
    """Book levels as Binance prints them: [price, quantity] strings with the market's fixed decimals."""
    return [[px(spec, p), qx(spec, q)] for p, q in rows]


def book_levels(ex: SandboxExchange, m: Market) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """(bids, asks) of the synthetic book now, best first."""
    mid = ex.mid(m)
    return (
        ex.book.levels_for(mid, m.spec.tick_size, m.spec.step_size, "SELL"),
        ex.book.levels_for(mid, m.spec.tick_size, m.spec.step_size, "BUY"),
    )


def depth(ex: SandboxExchange, kind: str, p: dict[str, str]) -> dict:
    """The book snapshot. While a diff-depth stream publishes the symbol, the snapshot is the book as of that
    stream's last update (``lastUpdateId`` = its ``u``), so a client that applies the stream's diffs on top of it
    (as Binance documents, and ccxt does) holds exactly the published book."""
    m = ex.market(kind, p.get("symbol"))
    limit = int(p.get("limit") or 100)
    now = ex.now_ms()
    key = (kind, m.spec.symbol)
    published = ex.depth_published.get(key)
    if published is not None and key in ex.depth_streamed:
        last_id, bids, asks = published
    else:  # recorded, so that a diff stream starting now continues from exactly this snapshot
        last_id = max(now, published[0] + 1) if published is not None else now
        bids, asks = book_levels(ex, m)
        ex.depth_published[key] = (last_id, bids, asks)
    out = {"lastUpdateId": last_id, "bids": levels(m.spec, bids[:limit]), "asks": levels(m.spec, asks[:limit])}
    return out if kind == "spot" else {"lastUpdateId": last_id, "E": now, "T": now, **out}  # futures add the event times


def prints(ex: SandboxExchange, m: Market, after_ms: int, through_ms: int) -> list[dict]:
    """The market's synthetic public prints in (``after_ms``, ``through_ms``], oldest first: one at the start of each
    second of the path (its id the second), the same whether a client lists them (``trades``) or streams them."""
    out = []
    for second in range(after_ms // 1000 + 1, through_ms // 1000 + 1):
        t = second * 1000
        price = ex.mid(m, t)
        qty = max(float(m.spec.step_size), round(1000.0 / price, m.spec.qty_precision))
        row = {
            "id": second,
            "price": _p(m, price),
            "qty": f"{qty:.{m.spec.wire_qty_places}f}",
            "quoteQty": f"{qty * price:.8f}",
            "time": t,
            "isBuyerMaker": second % 2 == 0,
        }
        out.append({**row, "isBestMatch": True} if m.spec.kind == "spot" else {**row, "isRPITrade": False})
    return out


def prints_since(ex: SandboxExchange, m: Market, published: dict[str, int], key: str, now: int) -> list[dict]:
    """The prints a trade stream ``key`` has not published yet (``published``: stream -> time published through,
    updated): each once; a new stream starts with the last second's, and one idle for long with the last minute's."""
    after = max(published.get(key, now - 1000), now - 60_000)
    published[key] = now
    return prints(ex, m, after, now)


def recent_trades(ex: SandboxExchange, kind: str, p: dict[str, str]) -> list[dict]:
    """``trades``: the last ``limit`` synthetic public prints (``prints``), newest last."""
    m = ex.market(kind, p.get("symbol"))
    limit = max(1, min(int(p.get("limit") or 500), 1000))
    now = ex.now_ms()
    return prints(ex, m, now - now % 1000 - limit * 1000, now)


def book_ticker(ex: SandboxExchange, m: Market) -> dict:
    """Spot's book ticker has no ``time``; futures' has ``time`` (ccxt tells the two apart by it)."""
    (bid, bq), (ask, aq) = ex.best_bid_ask(m)
    sp = m.spec
    out: dict[str, object] = {
        "symbol": sp.symbol,
        "bidPrice": px(sp, bid),
        "bidQty": qx(sp, bq),
        "askPrice": px(sp, ask),
        "askQty": qx(sp, aq),
    }
    if m.spec.kind == "linear":
        out["time"] = ex.now_ms()
    return out


def agg_trades(ex: SandboxExchange, kind: str, p: dict[str, str]) -> list[dict]:
    """``aggTrades``: the synthetic prints of ``trades`` as Binance's aggregate-trade rows."""
    return [
        {
            "a": r["id"],
            "p": r["price"],
            "q": r["qty"],
            **({"M": True} if kind == "spot" else {"nq": r["qty"]}),
            "f": r["id"],
            "l": r["id"],
            "T": r["time"],
            "m": r["isBuyerMaker"],
        }
        for r in recent_trades(ex, kind, p)
    ]


def funding_rates(ex: SandboxExchange, p: dict[str, str]) -> list[dict]:
    """``/fapi/v1/fundingRate``: one settlement every 8 hours of the clock, a constant 0.01 %."""
    m = ex.market("linear", p.get("symbol"))
    limit = max(1, min(int(p.get("limit") or 100), 1000))
    step = 8 * 3_600_000
    end = int(p.get("endTime") or ex.now_ms())
    start = max(int(p.get("startTime") or end - limit * step), ex.listed_ms(m))  # none before the listing
    first = start - start % step + (step if start % step else 0)
    return [
        {"symbol": m.spec.symbol, "fundingTime": t, "fundingRate": "0.00010000", "markPrice": _p(m, ex.mid(m, t))}
        for t in range(first, min(end, first + (limit - 1) * step) + 1, step)
    ]


def ticker_24h(ex: SandboxExchange, m: Market) -> dict:
    """The rolling 24 h window, from the listing when that is more recent (as for a symbol listed today). Read
    from before the listing, a fast clock (``--speed 3600``: 24 h is years of path) met the path's extrapolation
    (prices of 1e-75 and 1e23) and the answer failed with HTTP 500 (an outside trial)."""
    now = ex.now_ms()
    start = max(now - 86_400_000, ex.listed_ms(m))
    o, h, lo, c, v = ex.candle(m, start, now)
    (bid, bq), (ask, aq) = ex.best_bid_ask(m)
    out = {
        "symbol": m.spec.symbol,
        "priceChange": _p(m, c - o),
        "priceChangePercent": f"{(c / o - 1) * 100:.3f}",
        "weightedAvgPrice": _p(m, (h + lo + c) / 3),
        "prevClosePrice": _p(m, o),
        "lastPrice": _p(m, c),
        "lastQty": qx(m.spec, Decimal(1)),
        "bidPrice": px(m.spec, bid),
        "bidQty": qx(m.spec, bq),
        "askPrice": px(m.spec, ask),
        "askQty": qx(m.spec, aq),
        "openPrice": _p(m, o),
        "highPrice": _p(m, h),
        "lowPrice": _p(m, lo),
        "volume": f"{v:.{m.spec.wire_qty_places}f}",
        "quoteVolume": f"{v * c:.8f}",
        "openTime": start,
        "closeTime": now,
        "firstId": 1,
        "lastId": max(1, int(v)),
        "count": max(1, int(v)),
    }
    if m.spec.kind == "linear":  # USD-M futures' 24hr ticker carries no book and no previous close (clients tell them apart by it)
        for k in ("prevClosePrice", "bidPrice", "bidQty", "askPrice", "askQty"):
            del out[k]
    return out


def per_symbol(ex: SandboxExchange, kind: str, p: dict[str, str], fn: Callable[[SandboxExchange, Market], dict]) -> dict | list[dict]:
    """Binance answers one object with ``symbol``, a list without it."""
    if p.get("symbol"):
        return fn(ex, ex.market(kind, p["symbol"]))
    return [fn(ex, m) for m in ex.markets.values() if m.spec.kind == kind]


def price_ticker(ex: SandboxExchange, m: Market) -> dict:
    """Spot's price ticker has no ``time``; futures' has it."""
    out: dict[str, object] = {"symbol": m.spec.symbol, "price": _p(m, ex.mid(m))}
    if m.spec.kind == "linear":
        out["time"] = ex.now_ms()
    return out


def premium_index(ex: SandboxExchange, m: Market) -> dict:
    """Mark price (``SandboxExchange.mark``), index price (the path: the last price) and the funding rate."""
    mark = s(ex.mark(m.spec.symbol))
    index = s(ex.last_price(m))
    now = ex.now_ms()
    return {
        "symbol": m.spec.symbol,
        "markPrice": mark,
        "indexPrice": index,
        "estimatedSettlePrice": mark,
        "lastFundingRate": "0.00010000",
        "interestRate": "0.00010000",
        "nextFundingTime": now - now % 28_800_000 + 28_800_000,
        "time": now,
    }


__all__ = [
    "INTERVAL_MS",
    "book_ticker",
    "depth",
    "exchange_info",
    "invalid_symbol",
    "klines",
    "per_symbol",
    "premium_index",
    "price_ticker",
    "prints",
    "prints_since",
    "recent_trades",
    "ticker_24h",
]
