"""The live engine: Strategy, the order call, watchers, sync, health."""

from .strategy import Live, Paper, Strategy, strategy

__all__ = ["Live", "Paper", "Strategy", "strategy"]
