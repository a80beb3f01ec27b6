"""Fault injection settings of the sandbox, changeable at runtime via ``POST /admin/faults``."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    """What goes wrong, and how often. ``{}`` means nothing goes wrong."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0.0, ge=0, description="fixed delay added to every REST request")
    latency_jitter_ms: float = Field(0.0, ge=0, description="extra uniform random delay in [0, jitter]")
    error_rate: float = Field(0.0, ge=0, le=1, description="probability of an HTTP 503 before handling")
    rate_limit_rate: float = Field(0.0, ge=0, le=1, description="probability of an HTTP 429 before handling")
    ban: bool = Field(False, description="answer every request with HTTP 418 while set")
    timeout_rate: float = Field(0.0, ge=0, le=1, description="probability that a request hangs for hang_s then fails")
    hang_s: float = Field(15.0, ge=0, description="how long a timed-out request hangs")
    answer_delay_ms: float = Field(
        0.0, ge=0, description="delay between handling a request and sending its answer (the user stream's reports of it go first)"
    )
    lost_ack_rate: float = Field(0.0, ge=0, le=1, description="probability that an accepted order's response is dropped")
    ws_drop_every_s: float = Field(0.0, ge=0, description="close every websocket this often (0: never)")
    partial_fill_ratio: float = Field(0.0, ge=0, le=1, description="if > 0, resting orders fill at most this fraction per tick")
    malformed_rate: float = Field(0.0, ge=0, le=1, description="probability of a truncated JSON body")
    user_trade_events: bool = Field(True, description="send TRADE executions on the user stream and serve myTrades")
    private_api: bool = Field(True, description="serve signed endpoints (False: -2015 for all of them)")
    paused_user_stream: bool = Field(
        False,
        description="drop every user-stream event while set: the websocket stays open and says nothing, as a user "
        "stream that died silently (no error, no close; only REST tells what happened)",
    )
    paused_market_stream: bool = Field(
        False,
        description="drop every public market-data websocket message while set (a stalled feed: the connection stays "
        "open and says nothing; what it would have said is lost, as after a reconnect)",
    )
    absurd_values: bool = Field(False, description="answer account and ticker requests with negative balances and zero prices")
    invisible_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="a new order is answered -2013 'Order does not exist' by GET "
        "order/openOrders/allOrders (and hidden from myTrades) for this many seconds after it was accepted, "
        "as Binance does while its engine is behind",
    )
    clock_offset_ms: float = Field(
        0.0,
        ge=-3_600_000,
        le=3_600_000,
        description="the exchange's clock runs this far ahead (+) "
        "or behind (-) of the machine's; requests signed with the machine's clock then get -1021",
    )
    listen_key_ttl_s: float = Field(
        3600.0,
        gt=0,
        le=86400,
        description="a listen key expires this long after its last "
        "keepalive (Binance: 60 minutes); its streams get listenKeyExpired and are closed",
    )
    keepalive_failures: int = Field(0, ge=0, le=1000, description="the next N listen-key keepalives are answered 503")
    ws_max_age_s: float = Field(
        86_400.0,
        gt=0,
        le=86_400,
        description="every websocket is disconnected this long after "
        "it connected (Binance: 24 hours); WS-API user-data subscriptions get eventStreamTerminated first",
    )
    strict_client_ids: bool = Field(
        False,
        description="refuse every reuse of a client order id, also of closed orders "
        "(stricter than Binance, which refuses only the ids of open orders)",
    )

    def roll(self, rng: random.Random, rate: float) -> bool:
        return rate > 0 and rng.random() < rate

    def delay_s(self, rng: random.Random) -> float:
        return (self.latency_ms + (rng.uniform(0, self.latency_jitter_ms) if self.latency_jitter_ms else 0.0)) / 1000.0
