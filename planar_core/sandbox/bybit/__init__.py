"""Bybit v5's wire dialect over the sandbox's exchange core (REST ``rest.py``, answers ``wire.py``, websockets
``streams.py``, errors ``errors.py``, rate limits ``limits.py``)."""

from .rest import BybitServer

__all__ = ["BybitServer"]
