"""Market data for backtests: candles downloaded through ccxt (``download.py``) into a Parquet store
(``store.py``), checked for gaps and duplicates (``check.py``). docs/data.md."""
