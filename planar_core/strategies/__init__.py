"""Strategy logic: what to trade, called by the runner on every tick."""
