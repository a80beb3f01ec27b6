"""The runner: drives a started Strategy's ``Logic`` (callbacks on events and ticks) until it should stop."""

from .account import account_emergency_stop_standalone
from .host import LogicError, RunResult, load_logic, run, status
from .standalone import emergency_stop_standalone, open_for_estop

__all__ = [
    "LogicError",
    "RunResult",
    "account_emergency_stop_standalone",
    "emergency_stop_standalone",
    "load_logic",
    "open_for_estop",
    "run",
    "status",
]
