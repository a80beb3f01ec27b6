"""The ``Venue`` (model/venue.py) over ccxt: Binance spot and USDⓈ-M today, and paper trading (a ccxt-shaped
local account behind the same calls).

Every request goes through ``ExchangeClient.call`` (pacing, retries with backoff, typed errors, the ``api_call``
trace); every answer is turned into the domain's reports here (``exchange/reports.py``), so nothing above this
layer sees ccxt or a raw payload.
"""

from __future__ import annotations

from .client import ExchangeClient


class CcxtVenue(ExchangeClient):
    """A ccxt exchange as a ``Venue``. The venue's dialect (``self.venue``: Binance's parameters, error codes and
    payload fields) supplies what ccxt leaves to each exchange."""
