"""Risk management: pre-trade checks, circuit breakers, the risk monitor and the emergency stop."""

from .estop import EStopReport, emergency_stop
from .manager import RiskManager
from .metrics import RiskMetrics

__all__ = ["EStopReport", "RiskManager", "RiskMetrics", "emergency_stop"]
