"""commops on Telegram end to end: our adapter and dispatcher, unmodified python-telegram-bot,
real HTTP to the Bot API emulator on 127.0.0.1, the real database underneath."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import build_dispatcher
from bot.telegram_adapter.adapter import TelegramAdapter, TelegramSettings
from handlers.core.clock import SystemClock
from handlers.core.context import HandlerContext, Services
from handlers.core.events import ButtonPressed, PollVote
from handlers.core.outgoing import Button, Image, OutgoingMessage, OutgoingPoll
from handlers.core.router import Dispatcher, Router
from storage.models import CommunityDay, Membership
from tests.telegram_emulator.fixture import (  # noqa: F401 - the fixture is used by name
    TelegramEmulator,
    telegram_api,
)

GROUP = -1001234
ALICE = TelegramEmulator.user(101, "Alice", "alice")
BOB = TelegramEmulator.user(102, "Bob", "bob")
CAROL = TelegramEmulator.user(103, "Carol <script>", "carol")
BOSS = TelegramEmulator.user(104, "Boss", "boss")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

seen: list[Any] = []


@pytest.fixture
def clock() -> SystemClock:
    """The emulator stamps updates with the real time, so /stats must read the real clock."""
    return SystemClock()


def e2e_router() -> Router:
    """A test feature with a button and a poll, to drive those paths through the adapter."""
    router = Router("e2e")

    @router.command("petpoll")
    async def petpoll(event: Any, ctx: HandlerContext) -> OutgoingMessage:
        await ctx.gateway.send_poll(event.chat, OutgoingPoll("Best pet?", ("Cat", "Dog")))
        return OutgoingMessage("Pick one:", buttons=((Button("Cat 🐱", "e2e:cat"),),))

    @router.command("chart")
    async def chart(event: Any, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage("**Daily** chart", image=Image(PNG, "chart.png"))

    @router.button("e2e:")
    async def pressed(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
        seen.append(event)
        return OutgoingMessage(f"{event.actor.display_name} chose {event.data}")

    @router.button("secret:")
    async def secret(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage("🤫 Only you can see this", private=True)

    @router.on(PollVote)
    async def voted(event: PollVote, ctx: HandlerContext) -> None:
        seen.append(event)

    return router


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, limit: float = 10) -> Any:
    """Poll the emulator until `check` returns something truthy (I/O wait, not a timing test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def dispatcher_with_e2e(services: Services) -> Dispatcher:
    seen.clear()
    dispatcher = build_dispatcher(services)
    dispatcher.include(e2e_router())
    return dispatcher


def _settings(api: TelegramEmulator, **kwargs: Any) -> TelegramSettings:
    return TelegramSettings(
        token=api.token,
        api_base_url=api.base_url,
        api_base_file_url=api.base_file_url,
        poll_timeout=1,
        **kwargs,
    )


@pytest.fixture
async def running_bot(
    telegram_api: TelegramEmulator,  # noqa: F811
    dispatcher_with_e2e: Dispatcher,
) -> AsyncIterator[TelegramAdapter]:
    await telegram_api.set_admins(GROUP, [BOSS], owner=ALICE)
    adapter = TelegramAdapter(_settings(telegram_api))
    await adapter.start(dispatcher_with_e2e)
    try:
        yield adapter
    finally:
        await adapter.shutdown()


async def replies(api: TelegramEmulator, count: int) -> list[Any]:
    return await wait_for(
        lambda: _at_least(api.sent_messages(GROUP), count), f"{count} replies in the group"
    )


async def _at_least(calls: Awaitable[list[Any]], count: int) -> list[Any] | None:
    found = await calls
    return found if len(found) >= count else None


async def test_help_and_stats_in_a_supergroup(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
    services: Services,
) -> None:
    await telegram_api.send_text(ALICE, "hello everyone")
    await telegram_api.send_text(BOB, "hi Alice", reply_to=None)
    await telegram_api.send_text(CAROL, "I'm new here")
    await telegram_api.send_command(BOB, "help", mention_bot=True)
    [help_reply] = await replies(telegram_api, 1)
    assert help_reply.parse_mode == "HTML"
    assert "<b>Commands</b>" in help_reply.text and "/stats" in help_reply.text
    assert help_reply.message["reply_to_message"]["from"]["id"] == BOB["id"]
    await telegram_api.send_command(CAROL, "stats")
    stats = (await replies(telegram_api, 2))[1]
    assert "Test Community — activity" in stats.message["text"]
    assert "💬 Messages: 5 · yesterday 0 (+5)" in stats.message["text"]
    assert "🙋 Active members: 3" in stats.message["text"]


async def test_commands_for_other_bots_are_ignored_but_counted(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
    services: Services,
) -> None:
    await telegram_api.send_command(ALICE, "help", mention_bot="SomeOtherBot")
    await telegram_api.send_command(ALICE, "stats")
    [stats] = await replies(telegram_api, 1)
    assert "💬 Messages: 2" in stats.message["text"]


async def test_manager_commands_are_checked_with_telegram(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    await telegram_api.send_command(CAROL, "settings", "timezone Asia/Shanghai")
    refused = (await replies(telegram_api, 1))[0]
    assert refused.message["text"] == "🔒 Only the community's managers can use /settings timezone."
    await telegram_api.send_command(BOSS, "settings", "timezone Asia/Shanghai")
    allowed = (await replies(telegram_api, 2))[1]
    assert "Time zone changed from UTC to Asia/Shanghai" in allowed.message["text"]
    admin_lookups = await telegram_api.calls("getChatAdministrators")
    assert len(admin_lookups) == 1  # cached between the two commands


async def test_a_join_via_chat_member_is_recorded_once(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
    services: Services,
) -> None:
    await telegram_api.member_joined(CAROL)
    await telegram_api.send_command(ALICE, "stats")
    [stats] = await replies(telegram_api, 1)
    assert "➕ Joined: 1" in stats.message["text"]
    async with services.db.session() as session:
        day = (await session.execute(select(CommunityDay))).scalar_one()
        joined = (await session.execute(select(Membership.joined_at))).scalars().all()
    assert day.joins == 1 and any(joined)


async def test_button_press_poll_answer_and_chart(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    await telegram_api.send_command(ALICE, "petpoll")
    [poll] = await wait_for(lambda: telegram_api.sent_polls(GROUP), "the poll")
    [prompt] = await replies(telegram_api, 1)
    keyboard = prompt.reply_markup["inline_keyboard"]
    assert keyboard[0][0]["callback_data"] == "e2e:cat"
    await telegram_api.press_button(BOB, prompt.message, "e2e:cat")
    answer = (await replies(telegram_api, 2))[1]
    assert answer.message["text"] == "Bob chose e2e:cat"
    await wait_for(telegram_api.callback_answers, "the button to be acknowledged")
    await telegram_api.answer_poll(CAROL, poll.message["poll"]["id"], [1])
    await wait_for(lambda: _async([e for e in seen if isinstance(e, PollVote)]), "the vote")
    vote = next(e for e in seen if isinstance(e, PollVote))
    assert (vote.option_ids, vote.actor.user_id, vote.chat.chat_id) == ((1,), "103", str(GROUP))
    await telegram_api.send_command(ALICE, "chart")
    [photo] = await wait_for(lambda: telegram_api.sent_photos(GROUP), "the chart")
    assert photo.caption == "<b>Daily</b> chart"


async def test_member_names_are_escaped_for_telegram_html(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    await telegram_api.send_command(CAROL, "petpoll")
    prompt = (await replies(telegram_api, 1))[0]
    await telegram_api.press_button(CAROL, prompt.message, "e2e:cat")
    answer = (await replies(telegram_api, 2))[1]
    # The emulator refuses malformed HTML, so arriving at all proves the escaping.
    assert answer.message["text"] == "Carol <script> chose e2e:cat"
    assert "&lt;script&gt;" in answer.text


async def test_command_menu_is_published_per_scope_and_language(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    menus = await telegram_api.my_commands()
    by_scope = {
        (c.params.get("scope", {}).get("type"), c.params.get("language_code")): c for c in menus
    }
    admins = by_scope[("all_chat_administrators", None)].params["commands"]
    members = by_scope[("all_group_chats", None)].params["commands"]
    assert {"help", "stats", "settings"} <= {c["command"] for c in admins}
    assert "settings" not in {c["command"] for c in members}
    assert ("all_group_chats", "zh") in by_scope


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_webhook_mode_accepts_only_the_right_secret(
    telegram_api: TelegramEmulator,  # noqa: F811
    dispatcher_with_e2e: Dispatcher,
) -> None:
    port = _free_port()
    settings = _settings(
        telegram_api,
        mode="webhook",
        webhook_url=f"http://127.0.0.1:{port}/hook",
        listen="127.0.0.1",
        port=port,
        secret_token="s3cret-token",
    )
    adapter = TelegramAdapter(settings)
    await adapter.start(dispatcher_with_e2e)
    try:
        hook = await telegram_api.webhook()
        assert hook is not None and hook["secret_token"] == "s3cret-token"
        assert "chat_member" in hook["allowed_updates"]
        wrong = await telegram_api.send_command(ALICE, "stats", secret_token="nope")
        assert wrong["delivery"]["status"] == 403
        missing = await telegram_api.send_command(ALICE, "stats", omit_secret=True)
        assert missing["delivery"]["status"] == 403
        assert await telegram_api.sent_messages(GROUP) == []
        right = await telegram_api.send_command(ALICE, "stats")
        assert right["delivery"]["status"] == 200
        [stats] = await replies(telegram_api, 1)
        assert "💬 Messages: 1" in stats.message["text"]
    finally:
        await adapter.shutdown()


async def _async(value: Any) -> Any:
    return value


async def test_commops_run_serves_a_group_with_a_token_from_the_environment(
    telegram_api: TelegramEmulator,  # noqa: F811
    tmp_path: Any,
) -> None:
    """As an operator runs it: token in the environment, `commops run`, SIGTERM to stop."""
    import os
    import signal
    import sys

    (tmp_path / "commops.toml").write_text(
        f'[telegram]\napi_base_url = "{telegram_api.base_url}"\n'
        f'api_base_file_url = "{telegram_api.base_file_url}"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "COMMOPS_TELEGRAM_TOKEN": telegram_api.token}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run",
        cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_for(telegram_api.my_commands, "the bot to start", limit=30)
        await telegram_api.send_text(ALICE, "hello")
        await telegram_api.send_command(BOB, "stats")
        [stats] = await replies(telegram_api, 1)
        assert "💬 Messages: 2" in stats.message["text"]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    log = err.decode()
    assert proc.returncode == 0, log
    assert "adapters telegram" in log and "activity written: 2" in log
    assert telegram_api.token not in log  # the token never reaches the logs


async def test_a_promotion_takes_effect_at_once(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    await telegram_api.send_command(CAROL, "settings")
    assert "Only the community's managers" in (await replies(telegram_api, 1))[0].message["text"]
    # The owner promotes Carol: Telegram's admin list changes and a chat_member update arrives.
    await telegram_api.set_admins(GROUP, [BOSS, CAROL], owner=ALICE)
    await telegram_api.chat_member_update(CAROL, "member", "administrator", actor=ALICE)
    await telegram_api.send_command(CAROL, "settings")
    shown = (await replies(telegram_api, 2))[1].message["text"]
    assert "Settings for Test Community" in shown  # not waiting for the cache to expire


async def test_each_group_is_its_own_community(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    other = -1005555
    await telegram_api.set_admins(other, [CAROL])
    await telegram_api.send_text(ALICE, "hi", chat_id=other)
    await telegram_api.send_command(CAROL, "settings", "language zh", chat_id=other)
    await wait_for(lambda: _at_least(telegram_api.sent_messages(other), 1), "the zh switch")
    await telegram_api.send_command(BOB, "stats", chat_id=other)
    await telegram_api.send_command(BOB, "stats")
    [_, zh_stats] = await wait_for(
        lambda: _at_least(telegram_api.sent_messages(other), 2), "stats in the other group"
    )
    [en_stats] = await replies(telegram_api, 1)
    assert "💬 消息：3" in zh_stats.message["text"]
    assert "💬 Messages: 1 · yesterday 0" in en_stats.message["text"]


async def test_a_group_upgraded_to_a_supergroup_keeps_its_history(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    old, new = -4242, -1004242
    old_chat = {"id": old, "type": "group", "title": "Old Group"}
    await telegram_api.send_text(ALICE, "before the upgrade", chat=old_chat)
    await telegram_api.send_text(BOB, "me too", chat=old_chat)
    # Telegram announces the upgrade in the old group, then the supergroup carries on.
    await telegram_api.inject(
        {"message": {"chat": old_chat, "from": ALICE, "migrate_to_chat_id": new}}
    )
    await telegram_api.send_command(ALICE, "stats", chat_id=new)
    [stats] = await wait_for(lambda: telegram_api.sent_messages(new), "stats after the upgrade")
    assert "💬 Messages: 3 · yesterday 0" in stats.message["text"]


async def test_a_private_reply_to_a_button_is_a_toast_only_the_member_sees(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    await telegram_api.send_command(ALICE, "petpoll")
    [prompt] = await replies(telegram_api, 1)
    await telegram_api.press_button(BOB, prompt.message, "secret:1")
    [answer] = await wait_for(telegram_api.callback_answers, "the button answer")
    assert answer.params["text"] == "🤫 Only you can see this"
    assert len(await telegram_api.sent_messages(GROUP)) == 1  # nothing posted in the group


async def test_a_giveaway_with_button_entry_a_toast_and_a_mentioned_winner(
    running_bot: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
    services: Services,
) -> None:
    services.gateways.register(running_bot.gateway)
    await telegram_api.send_command(BOSS, "giveaway", "start 2h 1 A sticker pack")
    [announcement] = await replies(telegram_api, 1)
    assert "Giveaway #1: A sticker pack" in announcement.text
    keyboard = announcement.reply_markup["inline_keyboard"]
    assert keyboard[0][0]["callback_data"] == "giveaway:enter:1"
    await telegram_api.press_button(BOB, announcement.message, "giveaway:enter:1")
    [toast] = await wait_for(telegram_api.callback_answers, "the entry answer")
    assert "You're in giveaway #1" in toast.params["text"]
    await telegram_api.send_command(BOSS, "giveaway", "end 1")
    result = (await replies(telegram_api, 2))[1]
    assert "Seed:" in result.text and result.parse_mode == "HTML"
    assert '<a href="tg://user?id=102">Bob</a>' in result.text
    assert result.params.get("reply_to_message_id") or result.params.get("reply_parameters")
