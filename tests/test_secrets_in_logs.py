"""Secrets (bot tokens, the webhook secret, the database password) never reach the logs or
the chat: the scrubber on its own, then the real app on the Telegram emulator at DEBUG level,
where python-telegram-bot and httpx log every API URL with the token in it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot import app as app_module
from bot.app import CommopsApp
from bot.config import LoggingSection, parse_config
from bot.logging_setup import (
    REDACTED,
    JsonFormatter,
    SecretScrubber,
    secret_variants,
    setup_logging,
)
from handlers.core.context import HandlerContext
from handlers.core.events import CommandEvent
from handlers.core.router import Router
from tests.telegram_emulator.fixture import TelegramEmulator, start_emulator

TOKEN = "987654321:AAH-fake_Secret-Token_for-commops-tests"
TOKEN_SECRET = TOKEN.split(":", 1)[1]
WEBHOOK = "whsec-0123456789abcdef"
DB_PASSWORD = "p@ss w/rd:42"
SECRETS = (TOKEN, WEBHOOK, DB_PASSWORD)


@pytest.fixture(autouse=True)
def _library_log_levels() -> Any:
    """`setup_logging` sets the libraries' loggers; give them back as they were."""
    names = ("httpx", "apscheduler", "aiosqlite", "asyncio", "alembic")
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def leaked(text: str) -> list[str]:
    """Every form of a secret that shows in `text` (none may)."""
    return [form for form in secret_variants(SECRETS) if form in text]


def capture(fmt: str = "text") -> tuple[logging.Logger, io.StringIO]:
    """A logger writing through the scrubber into a buffer, as `setup_logging` wires it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(message)s")
    )
    handler.addFilter(SecretScrubber(SECRETS))
    logger = logging.getLogger(f"commops.test.secrets.{fmt}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


# --- the scrubber -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_in_messages_arguments_and_exceptions_are_scrubbed(fmt: str):
    logger, out = capture(fmt)
    logger.debug("HTTP Request: POST https://api.telegram.org/bot%s/getUpdates", TOKEN)
    logger.info("webhook secret is " + WEBHOOK)
    logger.warning("connect to %s failed", "postgresql://commops:p%40ss%20w%2Frd%3A42@db/commops")
    logger.info("form post: password=%s", "p%40ss+w%2Frd%3A42")
    logger.info("just the secret half: %s", TOKEN_SECRET)
    try:
        try:
            raise ConnectionError(f"GET https://api.telegram.org/bot{TOKEN}/getMe refused")
        except ConnectionError as inner:
            raise RuntimeError(f"wrapped, password {DB_PASSWORD!r}") from inner
    except RuntimeError:
        logger.exception("request failed")
    logger.info("stack", stack_info=True)
    text = out.getvalue()
    assert leaked(text) == []
    assert text.count(REDACTED) >= 7
    assert "https://api.telegram.org/bot***/getUpdates" in text
    assert "ConnectionError" in text and "RuntimeError" in text  # the traceback is still there
    if fmt == "json":
        assert all(json.loads(line)["level"] for line in text.splitlines() if line.startswith("{"))


def test_a_record_seen_by_another_handler_after_the_scrubber_stays_scrubbed():
    logger, out = capture()
    other = io.StringIO()
    plain = logging.StreamHandler(other)  # no filter of its own
    plain.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(plain)
    try:
        raise ValueError(TOKEN)
    except ValueError:
        logger.exception("token %s", TOKEN)
    assert leaked(out.getvalue()) == [] and leaked(other.getvalue()) == []
    assert "ValueError" in other.getvalue()


def test_a_malformed_record_is_scrubbed_not_lost():
    logger, out = capture()
    logger.info("two args %s %s", TOKEN)  # a bug elsewhere must not leak the token
    assert leaked(out.getvalue()) == [] and "two args" in out.getvalue()


def test_short_or_missing_secrets_blank_out_nothing():
    scrubber = SecretScrubber(["", "abc", None or ""])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "abc and more", None, None)
    assert scrubber.filter(record) and record.getMessage() == "abc and more"


def test_the_config_names_every_secret_it_was_given():
    config = parse_config(
        {"database": {"password_env": "COMMOPS_DB_PASSWORD"}},
        source="test",
        env={
            "COMMOPS_TELEGRAM_TOKEN": TOKEN,
            "COMMOPS_TELEGRAM_WEBHOOK_SECRET": WEBHOOK,
            "COMMOPS_DISCORD_TOKEN": "discord-token-0123456789",
            "COMMOPS_DB_PASSWORD": DB_PASSWORD,
        },
    )
    assert set(config.secrets()) == {*SECRETS, "discord-token-0123456789"}
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(LoggingSection(level="DEBUG"), config.secrets())
        [handler] = root.handlers
        handler.stream = out  # type: ignore[attr-defined]
        logging.getLogger("httpx").debug("POST https://discord.com/api %s", config.secrets())
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    assert leaked(out.getvalue()) == [] and "discord-token" not in out.getvalue()


# --- the real app on the Telegram emulator ----------------------------------------------------

ALICE = TelegramEmulator.user(101, "Alice", "alice")
GROUP = -1001234


def leaky_router() -> Router:
    """A feature that fails the way a library might: with the secrets in its exception."""
    router = Router("leaky")

    @router.command("leak")
    async def leak(event: CommandEvent, ctx: HandlerContext) -> None:
        raise RuntimeError(f"upstream said: bad token {TOKEN}, secret {WEBHOOK}, pw {DB_PASSWORD}")

    return router


async def until(check: Any, what: str, limit: float = 15) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not (result := await check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return result


async def serve(app: CommopsApp, api: TelegramEmulator) -> list[Any]:
    await app.start()
    assert app.dispatcher is not None
    app.dispatcher.include(leaky_router())
    stop = asyncio.Event()
    running = asyncio.create_task(app.run(stop))
    try:
        await until(lambda: api.calls("getUpdates"), "the bot to poll")
        await api.send_command(ALICE, "help", mention_bot=True)
        await api.send_command(ALICE, "leak", mention_bot=True)
        await api.send_command(ALICE, "stats", mention_bot=True)
        return await until(
            lambda: _at_least(api.sent_messages(GROUP), 3), "three replies in the group"
        )
    finally:
        stop.set()
        await running
        await app.stop()


async def _at_least(calls: Any, count: int) -> Any:
    found = await calls
    return found if len(found) >= count else None


def test_the_running_bot_logs_no_secret_and_says_none(
    tmp_path: Path, cli_sandbox: Path, monkeypatch: pytest.MonkeyPatch
):
    log_file = tmp_path / "commops.log"
    real_adapter = app_module.telegram_adapter

    def quick_to_stop(config: Any) -> Any:
        """The adapter as configured, with a short long-poll so the test stops quickly."""
        adapter = real_adapter(config)
        adapter.settings = replace(adapter.settings, poll_timeout=1)
        return adapter

    monkeypatch.setattr(app_module, "telegram_adapter", quick_to_stop)
    with start_emulator(TOKEN) as api:
        config = parse_config(
            {
                "bot": {"adapters": ["telegram"]},
                "database": {"url": f"sqlite:///{tmp_path / 'commops.db'}"},
                "logging": {"level": "DEBUG", "file": str(log_file)},
                "telegram": {"api_base_url": api.base_url, "api_base_file_url": api.base_file_url},
            },
            source="test",
            env={"COMMOPS_TELEGRAM_TOKEN": TOKEN, "COMMOPS_TELEGRAM_WEBHOOK_SECRET": WEBHOOK},
        )
        setup_logging(config.logging, [*config.secrets(), DB_PASSWORD])
        replies = asyncio.run(serve(CommopsApp(config), api))
    logged = log_file.read_text(encoding="utf-8")
    # The libraries did log the API URLs, and the failing handler its exception: scrubbed.
    assert "HTTP Request: POST http://127.0.0.1" in logged and "/bot***/getUpdates" in logged
    assert "handler failed" in logged and "upstream said: bad token ***" in logged
    assert leaked(logged) == []
    # Nor does the chat see them: the apology names an error id, never the exception.
    texts = [call.text or "" for call in replies]
    assert any("something went wrong" in t for t in texts)
    assert all(leaked(t) == [] and "upstream said" not in t for t in texts)
