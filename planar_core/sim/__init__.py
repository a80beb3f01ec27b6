"""The simulated venue (paper trading and backtests): the sandbox exchange's rules behind the ``Venue`` protocol,
in process (``sim/venue.py``; the in-process transport: ``sim/local.py``)."""
