"""StrategyConfig: file, environment and overrides; invalid input names the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from planar_core.config import ConfigError, load_config
from planar_core.engine import Live, strategy

TOML = """
name = "swing"
universe = ["BTC/USDT", { symbol = "ETH/USDT", max_position = 0.25, risk_per_trade = 0.015 }]
timeframes = ["1m", "5m", "15m"]
[timeouts]
order_placement = 12
[rate_limits]
orders_per_second = 4
[risk]
max_daily_loss = 50
"""


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(TOML)
    env = {"PLANAR_TIMEOUTS__ORDER_PLACEMENT": "20", "PLANAR_RATE_LIMITS__ORDERS_PER_SECOND": "6", "PLANAR_HOME": "/x", "OTHER": "1"}
    cfg = load_config(path, env=env, rate_limits={"orders_per_second": 8})
    assert cfg.name == "swing" and [a.symbol for a in cfg.universe] == ["BTC/USDT", "ETH/USDT"]
    assert cfg.asset("ETH/USDT").max_position == 0.25 and cfg.risk.max_daily_loss == 50
    assert cfg.timeouts.order_placement == 20  # env beats file
    assert cfg.rate_limits.orders_per_second == 8  # override beats env
    assert cfg.timeframes == ["1m", "5m", "15m"]


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: y\nuniverse:\n  BTC/USDT: {max_position: 0.3}\nmargin: false\n")
    assert load_config(path, env={}).asset("BTC/USDT").max_position == 0.3


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"bogus": 1}, "bogus"),
        ({"rate_limits": {"orders_per_second": -1}}, "rate_limits.orders_per_second"),
        ({"timeouts": {"order_placement": 0}}, "timeouts.order_placement"),
        ({"timeframes": ["7m"]}, "timeframes"),
        ({"universe": [{"symbol": "BTC/USDT", "max_position": 2}]}, "universe.0.max_position"),
        ({"risk": {"max_drawdown": 1.5}}, "risk.max_drawdown"),
        ({"order_monitoring": {"timeout": -5}}, "order_monitoring.timeout"),
    ],
)
def test_invalid_config_names_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(env={}, name="x", **overrides)


def test_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("name = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", env={})


def test_live_without_sandbox_needs_confirmation(tmp_path: Path) -> None:
    env = {"EXCHANGE_API_KEY": "k" * 20, "EXCHANGE_API_SECRET": "s" * 20}
    with pytest.raises(ConfigError, match="confirm_live_trading"):
        strategy("real", mode=Live(), sandbox=False, env=env, universe=["BTC/USDT"], store_root=str(tmp_path))
    s = strategy("real", mode=Live(), sandbox=False, env=env, universe=["BTC/USDT"], store_root=str(tmp_path), confirm_live_trading=True)
    assert s.config.confirm_live_trading


def test_credentials_from_named_variables_and_provider(tmp_path: Path) -> None:
    env = {"BINANCE_SCALPING_KEY": "scalp-key-123456", "BINANCE_SCALPING_SECRET": "scalp-secret-abcdef"}
    s = strategy(
        "scalping",
        env=env,
        universe=["BTC/USDT"],
        store_root=str(tmp_path),
        credentials={"api_key_env": "BINANCE_SCALPING_KEY", "api_secret_env": "BINANCE_SCALPING_SECRET"},
    )
    assert s.config.credentials.api_key.get_secret_value() == "scalp-key-123456"
    asked: list[str] = []

    def provider(name: str) -> str | None:
        asked.append(name)
        return {"EXCHANGE_API_KEY": "p-key-0000", "EXCHANGE_API_SECRET": "p-secret-1111"}.get(name)

    provided = strategy("swing", env={}, universe=["BTC/USDT"], store_root=str(tmp_path), secrets_provider=provider)
    assert provided.config.credentials.api_secret.get_secret_value() == "p-secret-1111"
    # only what Binance asks for: a passphrase lookup (a Prefect Secret block read, ~10 s without a Prefect API) is not made
    assert sorted(set(asked)) == ["EXCHANGE_API_KEY", "EXCHANGE_API_SECRET"], asked
    for text in (repr(s), str(s.config), repr(s.config), str(s.config.model_dump())):
        assert "scalp-key-123456" not in text and "scalp-secret-abcdef" not in text
    with pytest.raises(ConfigError, match="EXCHANGE_API_KEY"):
        strategy("nokeys", env={}, universe=["BTC/USDT"], store_root=str(tmp_path))


def test_docs_config_md_is_current() -> None:
    from planar_core.config import config_reference_markdown

    path = Path(__file__).resolve().parents[2] / "docs" / "config.md"
    # its first lines' command (print) ends the file with one more newline: the content is what must match
    assert path.read_text().rstrip("\n") == config_reference_markdown().rstrip("\n"), "regenerate docs/config.md (see its first lines)"
