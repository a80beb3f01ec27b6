"""The one name for a ccxt exchange object in this package's signatures.

ccxt ships no type information, so a ccxt exchange (or anything standing in for one: the simulated exchange's
in-process client, a test's fake) is unchecked by mypy whatever it is called. Naming it once here keeps that hole in one
place and says what the value is; everything the engine sees of it goes through the ``Venue`` protocol.
"""

from typing import Any, TypeAlias

CcxtExchange: TypeAlias = Any
