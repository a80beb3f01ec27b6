"""Backtests: a strategy's ``Logic`` over history on a simulated clock, through the full engine (``run.py``), with
the simulated venue's fill model (``walk.py``) and the summary read back from the trace (``summary.py``)."""
