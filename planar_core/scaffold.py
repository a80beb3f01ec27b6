"""``planar new NAME``: a new strategy in three files that work as written.

``NAME.py`` (a small ``Logic``: buy a fixed value when a closed candle dips), ``NAME.toml`` (its config, which
``planar run`` takes as it is: sandbox, the logic found beside it as ``logic = "NAME:Class"``) and
``test_NAME.py`` (its unit tests on ``planar_core.testing``, which pass). A user starts from something that runs,
type-checks (``mypy --strict NAME.py``) and is tested, and changes it, rather than from a blank page and the
engine's internals. Nothing is ever written over an existing file.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from pathlib import Path
from string import Template

NAME_RULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TEMPLATE_NAMES = {"Logic", "LogicParams", "Candle", "OrderType", "Side", "StrategyContext", "AssetView", "OrderView", "TradeView", "Field"}


class ScaffoldError(ValueError):
    """A name ``planar new`` cannot use, or a file it would have to overwrite: one line, nothing written."""


STRATEGY = Template('''"""${cls}: buy a fixed value of an asset when a closed candle falls more than `drop` below the previous close.

Written by `planar new ${name}`. Its tests: `python -m pytest test_${name}.py`; its config: ${name}.toml (`planar run
${name}.toml`). Writing a strategy: docs/strategies.md; testing one: docs/testing.md.
"""

from __future__ import annotations

from pydantic import Field

from planar_core.logic import Logic, LogicParams
from planar_core.model import Candle, OrderType, Side
from planar_core.model.context import StrategyContext
from planar_core.model.views import AssetView, OrderView, TradeView


class ${cls}(Logic):
    """Buy `order_value` of quote currency at market when a candle closes `drop` or more below the one before it."""

    class Params(LogicParams):
        drop: float = Field(0.01, gt=0, lt=1, description="fall from the previous close that makes a dip (0.01: 1 %)")
        order_value: float = Field(100.0, gt=0, description="quote value of each buy")
        timeframe: str = Field("1m", description="the candles it reads")

    params: Params  # typed: self.params.drop is a float to your editor and to mypy

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if timeframe != self.params.timeframe:
            return
        closes = ai.ohlcv[timeframe].closed[:, 4]  # the closed candles' closes, oldest first (this bar is the last)
        if len(closes) < 2:
            return
        if bar.close <= float(closes[-2]) * (1 - self.params.drop):
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=self.params.order_value / bar.close)
            # the answer: a TradeView (filled), PENDING, UNKNOWN (its verdict comes to on_order_update) or None
            # (refused, nothing booked: the trace and the log say why)

    async def on_fill(self, ctx: StrategyContext, order: OrderView, trade: TradeView) -> None:
        ctx.alert(f"${cls}: bought {trade.amount} {order.symbol} at {trade.price}", "info")
''')

CONFIG = Template("""# ${cls} (${name}.py beside this file), written by `planar new ${name}`; every field: docs/config.md.
# On the local sandbox: `planar sandbox serve --port 8765` in one terminal, then, with the key and secret it prints in
# PLANAR_DEMO_API_KEY and PLANAR_DEMO_API_SECRET, `planar run ${name}.toml --duration 60`.
name = "${name}"
exchange = "binance"
mode = "live"
sandbox = true
main_currency = "USDT"
universe = ["BTC/USDT"]
timeframes = ["1m"]
logic = "${name}:${cls}"
logic_params = { drop = 0.01, order_value = 100.0, timeframe = "1m" }

[credentials]
api_key_env = "PLANAR_DEMO_API_KEY"
api_secret_env = "PLANAR_DEMO_API_SECRET"

[sandbox_endpoint]
url = "http://127.0.0.1:8765"
ws_url = "ws://127.0.0.1:8765"

[risk]
max_daily_loss = 200.0
max_drawdown = 0.05
emergency_stop = true
""")

TEST = Template('''"""Unit tests of ${cls} (${name}.py) on planar_core.testing's exchange in memory: no network, milliseconds each.

Run them with `python -m pytest test_${name}.py` (pytest and pytest-asyncio). The harness: docs/testing.md.
"""

from __future__ import annotations

import pytest

from planar_core.model import OrderStatus, OrderType, RefusalReason, Side
from planar_core.testing import LogicTest

from ${name} import ${cls}

pytestmark = pytest.mark.asyncio  # the tests are coroutines: pytest-asyncio runs them

SYMBOL = "BTC/USDT"
PARAMS = {"drop": 0.01, "order_value": 100.0}


async def test_a_dip_buys_at_market_and_the_fill_reaches_the_balance() -> None:
    async with LogicTest(${cls}, PARAMS, symbols=[SYMBOL], balances={"USDT": 1_000.0}) as t:
        t.history(SYMBOL, [100.0, 101.0, 100.5, 101.0])  # warm-up candles: no callback
        await t.bar(SYMBOL, close=99.0)  # 2 % below the previous close: on_bar buys, the market order fills
        (order,) = t.placed(SYMBOL)
        assert (order.side, order.type, order.status) == (Side.BUY, OrderType.MARKET, OrderStatus.CLOSED)
        assert order.filled == pytest.approx(100.0 / 99.0, rel=1e-3)
        assert t.ctx.cash("BTC").total == pytest.approx(order.filled)  # the balances include the fill
        assert t.ctx.cash("USDT").total == pytest.approx(1_000.0 - order.filled * 99.0)
        ((level, message),) = t.alerts  # on_fill ran, once
        assert level == "info" and "bought" in message


async def test_no_dip_no_order() -> None:
    async with LogicTest(${cls}, PARAMS, symbols=[SYMBOL]) as t:
        t.history(SYMBOL, [100.0, 101.0])
        await t.bars(SYMBOL, [100.5, 100.2, 101.3])  # every fall is smaller than 1 %
        assert t.callbacks["on_bar"] == 3
        assert t.placed() == []


async def test_a_dip_the_cash_cannot_pay_for_is_refused_and_nothing_is_sent() -> None:
    async with LogicTest(${cls}, PARAMS, symbols=[SYMBOL], balances={"USDT": 50.0}) as t:
        t.history(SYMBOL, [100.0, 101.0])
        await t.bar(SYMBOL, close=95.0)
        assert t.placed() == [] and t.sent == []
        (refused,) = t.refusals()
        assert refused.reason is RefusalReason.INSUFFICIENT_FUNDS
''')


def class_name(name: str) -> str:
    """``buy_the_dip`` -> ``BuyTheDip``; a name the template imports gets ``Strategy`` after it."""
    cls = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Strategy"
    if not cls[0].isalpha():
        cls = "S" + cls
    return cls + "Strategy" if cls in TEMPLATE_NAMES else cls


def check_name(name: str) -> None:
    """A module name Python imports as the strategy's own (``logic = "NAME:Class"`` and the test's import): an
    identifier, not a keyword, and not the name of a module it would hide or be hidden by."""
    if not NAME_RULE.match(name):
        raise ScaffoldError(f"{name!r} is not a strategy name: use letters, digits and '_', starting with a letter (at most 64)")
    if keyword.iskeyword(name):
        raise ScaffoldError(f"{name!r} is a Python keyword: it cannot name a module")
    taken = name in sys.stdlib_module_names
    try:
        taken = taken or importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        taken = True
    if taken:
        raise ScaffoldError(f"{name!r} is the name of an installed module: {name}.py would hide it or be hidden by it; choose another")


def write_strategy(name: str, directory: Path) -> list[Path]:
    """Write ``NAME.py``, ``NAME.toml`` and ``test_NAME.py`` into ``directory`` (created if missing); returns the
    paths. Raises ``ScaffoldError`` (nothing written) for a bad name or a file that exists already."""
    check_name(name)
    values = {"name": name, "cls": class_name(name)}
    files = {
        directory / f"{name}.py": STRATEGY.substitute(values),
        directory / f"{name}.toml": CONFIG.substitute(values),
        directory / f"test_{name}.py": TEST.substitute(values),
    }
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise ScaffoldError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: planar new writes over nothing")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            with path.open("x", encoding="utf-8") as f:  # "x": never over a file that appeared meanwhile
                f.write(text)
    except OSError as exc:
        raise ScaffoldError(f"cannot write into {directory}: {exc.strerror or exc}") from None
    return list(files)
