"""The Telegram Bot API emulator, exercised by unmodified python-telegram-bot over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator

import pytest
import telegram
from telegram import (
    BotCommand,
    BotCommandScopeAllChatAdministrators,
    ChatMember,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.constants import ChatType, ParseMode
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes

from tests.telegram_emulator.fixture import (
    DEFAULT_GROUP_ID,
    TelegramEmulator,
    start_emulator,
    telegram_api,  # noqa: F401
)

GROUP = DEFAULT_GROUP_ID
ALICE = TelegramEmulator.user(101, "Alice", "alice")
BOB = TelegramEmulator.user(102, "Bob")


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
async def bot(telegram_api: TelegramEmulator) -> AsyncIterator[telegram.Bot]:  # noqa: F811
    async with telegram.Bot(
        telegram_api.token,
        base_url=telegram_api.base_url,
        base_file_url=telegram_api.base_file_url,
    ) as b:
        yield b


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_starts_fast_and_stops_cleanly() -> None:
    started = time.monotonic()
    with start_emulator() as emulator:
        assert time.monotonic() - started < 3
        proc = emulator.process
        assert proc.poll() is None
    assert proc.poll() is not None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", emulator.port), 0.5):
        pass


async def test_get_me_and_unknown_method_and_bad_token(
    bot: telegram.Bot,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    me = await bot.get_me()
    assert me.is_bot is True
    assert me.id == telegram_api.bot_id
    assert me.username == telegram_api.bot_username
    assert me.can_read_all_group_messages is True
    with pytest.raises(telegram.error.EndPointNotFound):
        await bot.do_api_request("noSuchMethod", api_kwargs={"chat_id": GROUP})
    wrong = telegram.Bot(
        "999:WRONG", base_url=telegram_api.base_url, base_file_url=telegram_api.base_file_url
    )
    with pytest.raises(telegram.error.InvalidToken):
        await wrong.get_me()
    await wrong.shutdown()


async def test_send_message_html_with_inline_keyboard(
    bot: telegram.Bot,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Join", callback_data="join:1")]])
    sent = await bot.send_message(
        GROUP, "<b>Welcome</b> &lt;all&gt;", parse_mode=ParseMode.HTML, reply_markup=keyboard
    )
    assert sent.chat.id == GROUP
    assert sent.chat.type == ChatType.SUPERGROUP
    assert abs(sent.date.timestamp() - time.time()) < 60  # seconds, not milliseconds
    assert sent.reply_markup == keyboard
    assert sent.from_user.id == telegram_api.bot_id
    # As on Telegram, the stored text is plain and the markup became entities.
    assert sent.text == "Welcome <all>"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 7)]

    [call] = await telegram_api.sent_messages(GROUP)
    assert call.text == "<b>Welcome</b> &lt;all&gt;"
    assert call.parse_mode == "HTML"
    assert call.reply_markup == {"inline_keyboard": [[{"text": "Join", "callback_data": "join:1"}]]}
    assert call.message_id == sent.message_id
    assert await telegram_api.sent_messages(-1009999) == []


async def test_long_polling_with_offset_loses_and_duplicates_nothing(
    bot: telegram.Bot,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    # Nothing pending: the request waits for the timeout (long poll), it does not spin.
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 3
    assert len(await telegram_api.calls("getUpdates")) == 1

    # An update injected while a long poll is waiting wakes it up immediately.
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.2)
    await telegram_api.send_text(ALICE, "one")
    started = time.monotonic()
    first = await poll
    assert time.monotonic() - started < 2
    assert [u.message.text for u in first] == ["one"]

    await telegram_api.send_text(BOB, "two")
    await telegram_api.send_command(ALICE, "help")
    seen: list[Update] = list(first)
    offset = first[-1].update_id + 1
    while len(seen) < 3:
        batch = await bot.get_updates(offset=offset, timeout=2)
        assert batch, "an injected update was lost"
        seen.extend(batch)
        offset = batch[-1].update_id + 1
    assert [u.message.text for u in seen] == ["one", "two", "/help"]
    assert len({u.update_id for u in seen}) == 3
    cmd = seen[2].message
    assert cmd.chat.type == ChatType.SUPERGROUP and cmd.chat.id == GROUP
    assert cmd.from_user.id == ALICE["id"]
    assert cmd.entities[0].type == "bot_command"
    # Confirmed updates are gone: no duplicates after the last offset.
    assert await bot.get_updates(offset=offset, timeout=0) == ()

    # A second bot instance polling ends the first one's long poll with 409, as Telegram does.
    first_poller = asyncio.create_task(bot.get_updates(offset=offset, timeout=5))
    await asyncio.sleep(0.2)
    async with telegram.Bot(
        telegram_api.token,
        base_url=telegram_api.base_url,
        base_file_url=telegram_api.base_file_url,
    ) as second:
        assert await second.get_updates(offset=offset, timeout=0) == ()
    with pytest.raises(telegram.error.Conflict, match="other getUpdates"):
        await first_poller


async def test_allowed_updates_filters_and_chat_member_round_trip(
    bot: telegram.Bot,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    await telegram_api.member_joined(BOB)
    # Telegram's default allowed_updates excludes chat_member.
    assert await bot.get_updates(timeout=0) == ()

    await telegram_api.member_joined(BOB)
    await telegram_api.member_left(ALICE)
    updates = await bot.get_updates(timeout=0, allowed_updates=Update.ALL_TYPES)
    assert len(updates) == 2
    joined, left = (u.chat_member for u in updates)
    assert joined.chat.id == GROUP and joined.chat.type == ChatType.SUPERGROUP
    assert joined.new_chat_member.user.id == BOB["id"]
    assert joined.old_chat_member.status == ChatMember.LEFT
    assert joined.new_chat_member.status == ChatMember.MEMBER
    assert left.new_chat_member.status == ChatMember.LEFT
    assert left.from_user.id == ALICE["id"]


async def test_callback_query_answer_and_edit(
    bot: telegram.Bot,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Vote", callback_data="vote")]])
    await bot.send_message(GROUP, "Pick", reply_markup=keyboard)
    [sent] = await telegram_api.sent_messages(GROUP)
    await telegram_api.press_button(BOB, sent.message, "vote")

    [update] = await bot.get_updates(timeout=1)
    query = update.callback_query
    assert query.data == "vote"
    assert query.from_user.id == BOB["id"]
    assert query.chat_instance
    assert query.message.message_id == sent.message_id

    assert await bot.answer_callback_query(query.id, text="Counted") is True
    edited = await bot.edit_message_text("Picked!", chat_id=GROUP, message_id=sent.message_id)
    assert isinstance(edited, telegram.Message)
    assert edited.text == "Picked!"
    assert edited.edit_date is not None
    assert edited.reply_markup is None

    [answer] = await telegram_api.callback_answers()
    assert answer.params["callback_query_id"] == query.id
    assert answer.params["text"] == "Counted"
    [edit] = await telegram_api.edits(GROUP)
    assert edit.text == "Picked!" and edit.message_id == sent.message_id
    with pytest.raises(telegram.error.BadRequest, match="not modified"):
        await bot.edit_message_text("Picked!", chat_id=GROUP, message_id=sent.message_id)


async def test_send_photo_with_caption(
    bot: telegram.Bot,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    png = tiny_png(3, 2)
    message = await bot.send_photo(GROUP, png, caption="Weekly activity")
    assert message.caption == "Weekly activity"
    assert message.photo[-1].width == 3 and message.photo[-1].height == 2
    [call] = await telegram_api.sent_photos(GROUP)
    assert call.caption == "Weekly activity"
    assert call.files["photo"]["size"] == len(png)


async def test_poll_answer_and_stop_poll(
    bot: telegram.Bot,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    sent = await bot.send_poll(GROUP, "Meetup day?", ["Sat", "Sun"], is_anonymous=False)
    assert sent.poll.question == "Meetup day?"
    assert [o.text for o in sent.poll.options] == ["Sat", "Sun"]
    [call] = await telegram_api.sent_polls(GROUP)
    assert call.message["poll"]["id"] == sent.poll.id

    await telegram_api.answer_poll(ALICE, sent.poll.id, [1])
    [update] = await bot.get_updates(timeout=1)
    assert update.poll_answer.poll_id == sent.poll.id
    assert update.poll_answer.user.id == ALICE["id"]
    assert update.poll_answer.option_ids == (1,)

    stopped = await bot.stop_poll(GROUP, sent.message_id)
    assert stopped.is_closed is True and stopped.id == sent.poll.id
    assert len(await telegram_api.stopped_polls(GROUP)) == 1
    with pytest.raises(telegram.error.BadRequest):
        await bot.stop_poll(GROUP, sent.message_id)


async def test_reaction_update(
    bot: telegram.Bot,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    sent = await bot.send_message(GROUP, "Nice news")
    await telegram_api.react(BOB, sent.message_id, new=["🔥"])
    [update] = await bot.get_updates(timeout=1, allowed_updates=["message_reaction"])
    reaction = update.message_reaction
    assert reaction.message_id == sent.message_id
    assert reaction.user.id == BOB["id"]
    assert reaction.new_reaction[0].emoji == "🔥"


async def test_chat_administrators_and_commands(
    bot: telegram.Bot,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    assert await bot.get_chat_administrators(GROUP) == ()
    await telegram_api.set_admins(GROUP, [BOB], owner=ALICE)
    admins = await bot.get_chat_administrators(GROUP)
    assert [(a.user.id, a.status) for a in admins] == [
        (ALICE["id"], ChatMember.OWNER),
        (BOB["id"], ChatMember.ADMINISTRATOR),
    ]
    member = await bot.get_chat_member(GROUP, 555)
    assert member.status == ChatMember.MEMBER

    commands = [BotCommand("help", "Show help"), BotCommand("stats", "Group statistics")]
    assert await bot.set_my_commands(commands) is True
    assert await bot.set_my_commands(
        commands[:1], scope=BotCommandScopeAllChatAdministrators(), language_code="zh"
    )
    assert await bot.get_my_commands() == tuple(commands)
    calls = await telegram_api.my_commands()
    assert calls[0].params["commands"] == [
        {"command": "help", "description": "Show help"},
        {"command": "stats", "description": "Group statistics"},
    ]
    assert calls[1].params["scope"] == {"type": "all_chat_administrators"}
    assert calls[1].params["language_code"] == "zh"


async def test_application_polling_answers_a_group_command(
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    async def help_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_html(f"Help for <b>{update.effective_chat.title}</b>")

    app = (
        ApplicationBuilder()
        .token(telegram_api.token)
        .base_url(telegram_api.base_url)
        .base_file_url(telegram_api.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("help", help_cmd))
    async with app:
        await app.start()
        await app.updater.start_polling(timeout=1, allowed_updates=Update.ALL_TYPES)
        await telegram_api.send_command(ALICE, "help", mention_bot=True)
        for _ in range(100):
            if await telegram_api.sent_messages(GROUP):
                break
            await asyncio.sleep(0.05)
        await app.updater.stop()
        await app.stop()
    [reply] = await telegram_api.sent_messages(GROUP)
    assert reply.text == "Help for <b>Test Community</b>"
    assert reply.parse_mode == "HTML"
    assert reply.message["reply_to_message"]["from"]["id"] == ALICE["id"]


async def test_webhook_delivery_checks_secret_token(
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    port = free_port()
    app: Application = (
        ApplicationBuilder()
        .token(telegram_api.token)
        .base_url(telegram_api.base_url)
        .base_file_url(telegram_api.base_file_url)
        .build()
    )
    async with app:
        await app.updater.start_webhook(
            listen="127.0.0.1",
            port=port,
            url_path="tg-hook",
            webhook_url=f"http://127.0.0.1:{port}/tg-hook",
            secret_token="s3cret-token",
            allowed_updates=Update.ALL_TYPES,
        )
        try:
            hook = await telegram_api.webhook()
            assert hook["url"] == f"http://127.0.0.1:{port}/tg-hook"
            assert hook["secret_token"] == "s3cret-token"

            good = await telegram_api.send_text(ALICE, "via webhook")
            assert good["delivery"]["status"] == 200
            update = await asyncio.wait_for(app.update_queue.get(), 5)
            assert isinstance(update, Update)
            assert update.message.text == "via webhook"
            assert update.update_id == good["update_id"]

            wrong = await telegram_api.send_text(ALICE, "forged", secret_token="nope")
            assert wrong["delivery"]["status"] == 403
            missing = await telegram_api.send_text(ALICE, "forged", omit_secret=True)
            assert missing["delivery"]["status"] == 403
            await asyncio.sleep(0.1)
            assert app.update_queue.empty()

            # getUpdates is refused while a webhook is set, as on Telegram.
            with pytest.raises(telegram.error.Conflict):
                await app.bot.get_updates(timeout=0)
        finally:
            await app.updater.stop()


# PTB itself reads the deprecated int `RetryAfter.retry_after` while building the error message.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_telegram_errors_the_bot_must_handle(
    bot: telegram.Bot,
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    # Unescaped member input in HTML is refused, like the real API does.
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(GROUP, "Top: <script>", parse_mode=ParseMode.HTML)
    with pytest.raises(telegram.error.BadRequest, match="too long"):
        await bot.send_message(GROUP, "x" * 4097)

    # A member who never started the bot cannot be messaged privately.
    with pytest.raises(telegram.error.Forbidden, match="initiate conversation"):
        await bot.send_message(ALICE["id"], "psst")
    await telegram_api.send_text(ALICE, "/start", chat_id=ALICE["id"])
    assert (await bot.send_message(ALICE["id"], "hello")).chat.type == ChatType.PRIVATE
    await telegram_api.start_private_chat(BOB)
    await bot.send_message(BOB["id"], "hello")

    # Flood control: the next sendMessage to the group answers 429 with retry_after.
    await telegram_api.fail_next("sendMessage", retry_after=3, chat_id=GROUP)
    with pytest.raises(telegram.error.RetryAfter, match="Retry in 3"):
        await bot.send_message(GROUP, "busy")
    await bot.send_message(GROUP, "later")
    assert [m.text for m in await telegram_api.sent_messages(GROUP)] == ["later"]
