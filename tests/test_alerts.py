"""Alerts reach real local receivers (an SMTP server and an HTTP server on loopback)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from planar_core.alerts import AlertConfig, AlertConfigError, AlertDispatcher, send_alert

from .conftest import wait_for

BOT_TOKEN = "123456:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ"
SMTP_PASSWORD = "smtp-Pa55word-zzq"
DISCORD_TOKEN = "discordTOKENabcdef0123456789"


class Receiver:
    """Loopback HTTP server standing in for Telegram, Discord and a Slack-compatible webhook."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append(
            {"method": request.method, "path": request.path, "body": body, "json": json.loads(body) if body.startswith("{") else None}
        )
        if request.path.startswith("/hang"):
            await asyncio.sleep(4)
        if request.path.startswith("/fail"):
            return web.Response(status=500, text="boom")
        if "/bot" in request.path:
            return web.json_response({"ok": True, "result": {"message_id": 1}})
        return web.Response(status=204 if "/webhooks/" in request.path else 200, text="ok")

    async def start(self) -> "Receiver":
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts" and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    assert r.runner is not None
    await r.runner.cleanup()


@pytest.fixture
def smtp() -> Any:
    box = Mailbox()
    ctl = Controller(box, hostname="127.0.0.1", port=_free_port(), authenticator=_auth, auth_require_tls=False)
    ctl.start()
    yield ctl, box
    ctl.stop()


def full_env(receiver: Receiver, smtp_port: int) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_CHAT_ID": "4242",
        "TELEGRAM_API_BASE": receiver.url,
        "SMTP_SERVER": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_USERNAME": "alerts",
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SMTP_SECURITY": "insecure",
        "ALERT_EMAIL": "desk@example.test",
        "DISCORD_WEBHOOK_URL": f"{receiver.url}/api/webhooks/987/{DISCORD_TOKEN}",
        "ALERT_WEBHOOK_URL": f"{receiver.url}/hook/slack",
    }


async def test_alert_reaches_every_channel_with_the_right_shape(receiver: Receiver, smtp: Any) -> None:
    ctl, box = smtp
    cfg = AlertConfig.from_env(full_env(receiver, ctl.port), channel_timeout_s=5)
    d = AlertDispatcher(cfg)
    assert send_alert(d, "Daily loss limit exceeded: -51.20", "error")
    await asyncio.wait_for(d.drain(), 20)
    await d.stop()
    assert d.failed == {} and set(d.sent) == {"telegram", "email", "discord", "webhook"}
    tg = next(r for r in receiver.requests if r["path"] == f"/bot{BOT_TOKEN}/sendMessage")
    assert tg["method"] == "POST" and tg["json"]["chat_id"] == 4242 and "Daily loss limit exceeded" in tg["json"]["text"]
    assert "[error]" in tg["json"]["text"]
    dc = next(r for r in receiver.requests if r["path"] == f"/api/webhooks/987/{DISCORD_TOKEN}")
    assert "Daily loss limit exceeded" in dc["json"]["content"]
    hook = next(r for r in receiver.requests if r["path"] == "/hook/slack")
    assert set(hook["json"]) == {"text"} and "Daily loss limit exceeded" in hook["json"]["text"]
    await wait_for(lambda: len(box.messages) == 1, 10)
    assert "Daily loss limit exceeded" in box.messages[0] and "desk@example.test" in box.messages[0]


async def test_failing_and_hanging_channels_are_isolated(receiver: Receiver) -> None:
    cfg = AlertConfig(
        webhook_url=f"{receiver.url}/hang",
        discord_webhook_url=f"{receiver.url}/fail/api/webhooks/1/tok",
        telegram_bot_token=BOT_TOKEN,
        telegram_chat_id="7",
        telegram_api_base=receiver.url,
        channel_timeout_s=1,
    )
    d = AlertDispatcher(cfg)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert d.submit("breaker tripped", "critical")
    assert loop.time() - t0 < 0.5  # the caller never waits on delivery
    await asyncio.wait_for(d.drain(), 10)
    assert loop.time() - t0 < 5  # the hanging channel was cut at its timeout
    assert d.sent == {"telegram": 1} and d.failed == {"webhook": 1, "discord": 1}
    await d.stop()


async def test_identical_alerts_are_deduplicated(receiver: Receiver) -> None:
    d = AlertDispatcher(AlertConfig(webhook_url=f"{receiver.url}/hook", dedupe_window_s=60))
    assert d.submit("flapping", "warning") and not d.submit("flapping", "warning")
    assert d.submit("flapping", "error")  # another level is another alert
    await asyncio.wait_for(d.drain(), 10)
    await d.stop()
    assert receiver.paths().count("/hook") == 2


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TELEGRAM_BOT_TOKEN": BOT_TOKEN}, "TELEGRAM_CHAT_ID"),
        ({"SMTP_SERVER": "127.0.0.1", "ALERT_EMAIL": "a@b.c", "SMTP_PORT": "smtp"}, "SMTP_PORT"),
        ({"SMTP_SERVER": "127.0.0.1"}, "ALERT_EMAIL"),
        ({"SMTP_SERVER": "h", "ALERT_EMAIL": "a@b.c", "SMTP_USERNAME": "u"}, "SMTP_PASSWORD"),
        ({"SMTP_SERVER": "h", "ALERT_EMAIL": "not-an-address"}, "ALERT_EMAIL"),
        ({"DISCORD_WEBHOOK_URL": "discord.com/x"}, "DISCORD_WEBHOOK_URL"),
    ],
)
def test_bad_environment_fails_at_startup_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(AlertConfigError, match=named):
        AlertConfig.from_env(env)


def test_secrets_stay_out_of_repr() -> None:
    cfg = AlertConfig(telegram_bot_token=BOT_TOKEN, telegram_chat_id="1", smtp_password=SMTP_PASSWORD)
    assert BOT_TOKEN not in repr(cfg) and SMTP_PASSWORD not in repr(cfg) and SMTP_PASSWORD not in str(cfg.model_dump())


def test_alert_config_from_prefect_secret_blocks(monkeypatch) -> None:
    from prefect.blocks.system import Secret
    from prefect.testing.utilities import prefect_test_harness

    from tasks.blocks import alert_config_from_blocks

    for var in AlertConfig.ENV.values():
        monkeypatch.delenv(var, raising=False)
    with prefect_test_harness():
        Secret(value=BOT_TOKEN).save("planar-telegram-bot-token", overwrite=True)
        Secret(value="4242").save("planar-telegram-chat-id", overwrite=True)
        cfg = alert_config_from_blocks()
    assert cfg.telegram_bot_token is not None and cfg.telegram_bot_token.get_secret_value() == BOT_TOKEN
    assert cfg.telegram_chat_id == "4242" and cfg.smtp_server is None
