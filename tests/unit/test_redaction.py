"""Secrets never leave the process (alerts/redact.py), and alert settings fail at load naming the variable
(alerts/config.py ``AlertConfig.from_env``)."""

from __future__ import annotations

import logging
import sys

import pytest

from planar_core.alerts.config import AlertConfig, AlertConfigError
from planar_core.alerts.redact import MASK, RedactingFilter, Redactor

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def test_a_configured_secret_is_masked_wherever_it_appears() -> None:
    r = Redactor([KEY])
    assert r(f"GET /api?x=1 key {KEY} and again{KEY}") == f"GET /api?x=1 key {MASK} and again{MASK}"


def test_a_longer_secret_that_contains_a_shorter_one_is_masked_whole() -> None:
    r = Redactor(["abcd", "abcdefgh"])
    assert r("abcdefgh") == MASK


def test_values_of_credential_keys_are_masked_even_when_never_configured() -> None:
    r = Redactor()
    text = 'apiKey=AAAA1111&signature=deadbeef&symbol=BTCUSDT {"api_secret": "zzz", "token": \'t0k\', "password":p4ss}'
    out = r(text)
    for secret in ("AAAA1111", "deadbeef", "zzz", "t0k", "p4ss"):
        assert secret not in out
    assert "symbol=BTCUSDT" in out and f"signature={MASK}" in out


def test_tokens_inside_urls_are_masked() -> None:
    r = Redactor()
    assert r("https://api.telegram.org/bot123456:AAH-x_y/sendMessage") == f"https://api.telegram.org/bot{MASK}/sendMessage"
    assert r("https://discord.com/api/webhooks/42/abc-DEF_1") == f"https://discord.com/api/webhooks/42/{MASK}"
    assert r("https://hooks.slack.com/services/T0/B0/xyz123") == f"https://hooks.slack.com/services/T0/B0/{MASK}"


def test_secrets_shorter_than_four_characters_are_not_masked_in_ordinary_text() -> None:
    r = Redactor(["abc", ""])
    r.add(None)
    assert r("abcdef") == "abcdef"


def test_nested_values_are_redacted_by_key_and_by_content() -> None:
    r = Redactor([SECRET])
    out = r.value({"apiKey": "plain", "params": [f"s={SECRET}", ("x", 1)], "n": 2.5, "ok": True, "note": None})
    assert out == {"apiKey": MASK, "params": [f"s={MASK}", ("x", 1)], "n": 2.5, "ok": True, "note": None}


def test_the_logging_filter_redacts_message_args_extras_and_exception() -> None:
    f = RedactingFilter(Redactor([KEY]))
    try:
        raise ValueError(f"bad key {KEY}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "sent %s", (KEY,), exc_info)
    vars(record)["request"] = {"headers": {"X-MBX-APIKEY": KEY}}  # an extra, as logging's extra= sets it
    assert f.filter(record)
    assert record.getMessage() == f"sent {MASK}"
    assert vars(record)["request"] == {"headers": {"X-MBX-APIKEY": MASK}}
    assert record.exc_text is not None and KEY not in record.exc_text and "ValueError" in record.exc_text


def test_a_record_whose_format_fails_is_still_logged_redacted() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%d items for %s", ("x", KEY), None)
    RedactingFilter(Redactor([KEY])).filter(record)
    assert KEY not in record.getMessage() and MASK in record.getMessage()


# ------------------------------------------------------------------ alert settings
def test_from_env_reads_only_the_documented_variables_and_exposes_secrets_for_the_redactor() -> None:
    env = {"TELEGRAM_BOT_TOKEN": "123:abc-token", "TELEGRAM_CHAT_ID": "42", "ALERT_WEBHOOK_URL": "https://h/x", "OTHER": "1"}
    cfg = AlertConfig.from_env(env)
    assert cfg.telegram_chat_id == "42" and sorted(cfg.secrets()) == ["123:abc-token", "https://h/x"]
    assert "abc-token" not in repr(cfg) and "abc-token" not in cfg.model_dump_json()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TELEGRAM_BOT_TOKEN": "1:x"}, "TELEGRAM_CHAT_ID: required"),
        ({"TELEGRAM_CHAT_ID": "42"}, "TELEGRAM_BOT_TOKEN: required"),
        ({"SMTP_SERVER": "mail"}, "SMTP_SERVER and ALERT_EMAIL"),
        ({"SMTP_SERVER": "mail", "ALERT_EMAIL": "ops", "SMTP_USERNAME": "u", "SMTP_PASSWORD": "p"}, "ALERT_EMAIL: not an email address"),
        ({"SMTP_SERVER": "mail", "ALERT_EMAIL": "o@x", "SMTP_USERNAME": "u"}, "SMTP_PASSWORD: required"),
        ({"DISCORD_WEBHOOK_URL": "discord.com/api/webhooks/1/x"}, "DISCORD_WEBHOOK_URL: must be an http(s) URL"),
        ({"SMTP_PORT": "70000", "SMTP_SERVER": "m", "ALERT_EMAIL": "o@x"}, "SMTP_PORT: "),
        ({"SMTP_SECURITY": "tls"}, "SMTP_SECURITY: "),
    ],
)
def test_an_incomplete_or_malformed_setting_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(AlertConfigError) as info:
        AlertConfig.from_env(env)
    assert str(info.value).startswith(message)


def test_empty_variables_count_as_unset() -> None:
    assert AlertConfig.from_env({"TELEGRAM_BOT_TOKEN": "", "SMTP_SERVER": ""}).secrets() == []
