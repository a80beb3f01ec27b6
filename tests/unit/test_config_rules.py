"""StrategyConfig's validators (config.py), one rule each: an invalid config fails at load with pydantic's error
naming the field, and credentials never leave as text. No file, no environment of the process: ``env={}``."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from planar_core.config import ConfigError, Credentials, DeadMansSwitch, StrategyConfig, _env_values, load_config


def cfg(**fields: object) -> StrategyConfig:
    return StrategyConfig.model_validate({"name": "unit", **fields})


def field_error(**fields: object) -> tuple[str, str]:
    """(dotted location, message) of the single error the config raises."""
    with pytest.raises(ValidationError) as info:
        cfg(**fields)
    [err] = info.value.errors()
    return ".".join(str(x) for x in err["loc"]), err["msg"]


# ------------------------------------------------------------------ universe
def test_a_universe_may_be_symbols_tables_or_a_mapping() -> None:
    listed = cfg(universe=["BTC/USDT", {"symbol": "ETH/USDT", "max_position": 0.2}])
    mapped = cfg(universe={"BTC/USDT": None, "ETH/USDT": {"max_position": 0.2}})
    assert listed.universe == mapped.universe
    assert mapped.asset("ETH/USDT").max_position == 0.2 and mapped.asset("BTC/USDT").max_position is None


def test_a_symbol_listed_twice_is_refused() -> None:
    loc, msg = field_error(universe=["BTC/USDT", {"symbol": "BTC/USDT", "max_position": 0.1}])
    assert loc == "" and "universe lists a symbol twice" in msg  # a rule over the whole model


def test_a_symbol_shorter_than_three_characters_is_refused() -> None:
    assert field_error(universe=["BT"])[0] == "universe.0.symbol"


@pytest.mark.parametrize(("name", "value"), [("max_position", 0), ("max_position", 1.01), ("risk_per_trade", -0.1), ("risk_per_trade", 2)])
def test_per_asset_fractions_are_of_equity_above_zero_up_to_one(name: str, value: float) -> None:
    assert field_error(universe=[{"symbol": "BTC/USDT", name: value}])[0] == f"universe.0.{name}"


def test_an_unknown_asset_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        cfg(universe=["BTC/USDT"]).asset("ETH/USDT")


# ------------------------------------------------------------------ timeframes, name
def test_an_unknown_timeframe_is_named_with_the_known_ones() -> None:
    loc, msg = field_error(timeframes=["1m", "7m", "2d"])
    assert loc == "timeframes" and "['7m', '2d']" in msg and "'1M'" in msg


@pytest.mark.parametrize("name", ["", "a b", "a/b", "x" * 65, "dot.name"])
def test_a_strategy_name_is_a_safe_directory_and_id_prefix(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        StrategyConfig.model_validate({"name": name})
    assert info.value.errors()[0]["loc"] == ("name",)


# ------------------------------------------------------------------ risk, rate limits, numbers
@pytest.mark.parametrize(
    ("section", "name", "value"),
    [
        ("risk", "max_drawdown", 1.0),  # a drawdown of 100 % is no limit
        ("risk", "max_drawdown", 0),
        ("risk", "position_limit", 1.5),
        ("risk", "correlation_limit", 0),
        ("risk", "max_daily_loss", -50),
        ("risk", "estop_budget_s", 3601),
        ("rate_limits", "budget_headroom", 1.2),
        ("rate_limits", "burst_allowance", -1),
        ("rate_limits", "requests_per_minute", 0),
        ("default_leverage", None, 126),
    ],
)
def test_limits_out_of_range_name_their_field(section: str, name: str | None, value: float) -> None:
    fields = {section: value} if name is None else {section: {name: value}}
    assert field_error(**fields)[0] == (section if name is None else f"{section}.{name}")


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_infinity_and_nan_are_never_a_limit(value: float) -> None:
    assert field_error(risk={"max_daily_loss": value})[0] == "risk.max_daily_loss"


def test_a_misspelt_field_inside_a_section_is_refused() -> None:
    assert field_error(risk={"max_daly_loss": 5})[0] == "risk.max_daly_loss"


def test_assignment_is_validated_too() -> None:
    c = cfg()
    with pytest.raises(ValidationError):
        c.rate_limits.orders_per_second = 0


# ------------------------------------------------------------------ dead man's switch, sandbox endpoint
def test_the_heartbeat_must_be_at_most_a_third_of_the_countdown() -> None:
    assert DeadMansSwitch(heartbeat_s=40, countdown_s=120).heartbeat_s == 40
    loc, msg = field_error(dead_mans_switch={"heartbeat_s": 40.1, "countdown_s": 120})
    assert loc == "dead_mans_switch" and "at most a third of countdown_s" in msg


def test_the_countdown_is_at_least_a_second() -> None:
    assert field_error(dead_mans_switch={"heartbeat_s": 0.1, "countdown_s": 0.5})[0] == "dead_mans_switch.countdown_s"


@pytest.mark.parametrize("url", ["127.0.0.1:9000", "ftp://127.0.0.1", "localhost"])
def test_a_sandbox_endpoint_must_be_an_http_or_ws_url(url: str) -> None:
    assert field_error(sandbox_endpoint={"url": url})[0] == "sandbox_endpoint.url"


def test_a_sandbox_endpoint_may_be_a_remote_testnet() -> None:
    """Not loopback-only: the field is the sandbox's REST base *or the exchange's testnet*."""
    c = cfg(sandbox_endpoint={"url": "https://testnet.binance.vision", "ws_url": "wss://testnet.binance.vision/ws"})
    assert c.sandbox_endpoint.url == "https://testnet.binance.vision"


# ------------------------------------------------------------------ credentials
def test_credentials_never_appear_in_repr_str_or_a_dump() -> None:
    key, secret = "AKIA-unit-key-7f3e", "s3cr3t-unit-value-91c2"
    c = cfg(credentials={"api_key": key, "api_secret": secret})
    for text in (repr(c), str(c), c.model_dump_json(), str(c.model_dump()), repr(c.credentials)):
        assert key not in text and secret not in text
    assert c.credentials.secret_values() == [key, secret]


def test_credentials_come_from_the_provider_first_then_the_environment_and_never_overwrite() -> None:
    env = {"EXCHANGE_API_KEY": "env-key-0000", "EXCHANGE_API_SECRET": "env-secret-0000"}
    provided = Credentials().resolved(env, provider=lambda name: "vault-key-1111" if name == "EXCHANGE_API_KEY" else None)
    assert provided.secret_values() == ["vault-key-1111", "env-secret-0000"]
    given = Credentials(api_key="given-key-2222").resolved(env)
    assert given.secret_values() == ["given-key-2222", "env-secret-0000"]


# ------------------------------------------------------------------ environment layer
def test_environment_variables_nest_by_double_underscore_and_parse_json() -> None:
    env = {"PLANAR_RISK__MAX_DAILY_LOSS": "50", "PLANAR_TIMEFRAMES": '["1m","5m"]', "PLANAR_MODE": "paper"}
    assert _env_values(env) == {"risk": {"max_daily_loss": 50}, "timeframes": ["1m", "5m"], "mode": "paper"}


def test_unknown_and_store_root_variables_are_not_config() -> None:
    assert _env_values({"PLANAR_HOME": "/x", "PLANAR_STORE_ROOT": "/y", "PLANAR_NOPE": "1", "RISK__X": "1"}) == {}


def test_a_variable_that_nests_under_a_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="PLANAR_NAME__X__Y: name is a value, not a section"):
        _env_values({"PLANAR_NAME": "a", "PLANAR_NAME__X__Y": "1"})


def test_modes_that_disagree_are_refused_naming_both() -> None:
    with pytest.raises(ConfigError, match="PLANAR_MODE says 'paper' but the argument says 'live'"):
        load_config(env={"PLANAR_MODE": "paper"}, name="unit", mode="live")


def test_a_bad_logic_spec_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match=re.escape("logic: expected 'package.module:Class'")):
        load_config(env={}, name="unit", logic="planar_core.strategies.ma_cross")
