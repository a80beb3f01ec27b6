"""The runner: drives a started Strategy's ``Logic`` (callbacks on events and ticks) until it should stop."""

from .host import LogicError, RunResult, load_logic, run, status

__all__ = ["LogicError", "RunResult", "load_logic", "run", "status"]
