"""The strategy's ``Params`` searched by backtest (``search.py``), over a space parsed from the command line or the
config (``space.py``), in-sample or walk-forward. docs/optimize.md."""
