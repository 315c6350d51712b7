"""The bot added to or removed from a Telegram group: `my_chat_member` -> `BotMembershipChanged`,
on recorded updates and end to end through the Bot API emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.app import build_dispatcher
from bot.telegram_adapter.adapter import TelegramAdapter, TelegramSettings
from bot.telegram_adapter.translate import translate
from handlers.core.clock import SystemClock
from handlers.core.context import Services
from handlers.core.events import BotMembershipChanged, MemberJoined, MemberLeft, Platform
from storage.models import Community
from tests.telegram_emulator.fixture import (  # noqa: F401 - the fixture is used by name
    TelegramEmulator,
    telegram_api,
)
from tests.test_telegram_translate import ME, NOW, POLLS, SG, load


def events(name: str) -> list:
    return translate(load(name), ME, poll_chats=POLLS, now=NOW)


def test_the_bot_removed_from_a_group_is_a_membership_change():
    [event] = events("my_chat_member_removed")
    assert isinstance(event, BotMembershipChanged) and not event.present
    assert event.chat.chat_id == event.chat.community_id == SG
    assert event.chat.platform is Platform.TELEGRAM
    assert event.actor.user_id == "5012345678"  # who removed it
    assert event.at.timestamp() == 1763956540


def test_the_bot_kicked_by_an_admin_is_removed_too():
    [event] = events("my_chat_member_kicked")
    assert isinstance(event, BotMembershipChanged) and not event.present
    assert event.actor.user_id == "6123456789"


def test_the_bot_added_to_a_group_is_present_and_no_member_joined():
    [event] = events("my_chat_member_added")
    assert isinstance(event, BotMembershipChanged) and event.present
    assert not any(
        isinstance(e, (MemberJoined, MemberLeft)) for e in events("my_chat_member_added")
    )


def test_promoting_the_bot_changes_nothing():
    assert events("my_chat_member_promoted") == []


def test_a_member_blocking_the_bot_in_private_is_no_community_change():
    assert events("my_chat_member_private_blocked") == []


def test_removed_and_added_the_same_minute_have_different_keys():
    removed, added = events("my_chat_member_removed")[0], events("my_chat_member_added")[0]
    assert removed.key != added.key


# --- end to end -------------------------------------------------------------------------------

GROUP = -1001234


@pytest.fixture
def clock() -> SystemClock:
    """The emulator stamps updates with the real time."""
    return SystemClock()


@pytest.fixture
async def running(
    telegram_api: TelegramEmulator,  # noqa: F811
    services: Services,
) -> AsyncIterator[TelegramAdapter]:
    adapter = TelegramAdapter(
        TelegramSettings(
            token=telegram_api.token,
            api_base_url=telegram_api.base_url,
            api_base_file_url=telegram_api.base_file_url,
            poll_timeout=1,
        )
    )
    await adapter.start(build_dispatcher(services))
    try:
        yield adapter
    finally:
        await adapter.shutdown()


async def removed_at(services: Services) -> list:
    async with services.db.session() as session:
        query = select(Community.removed_at).where(Community.external_id == str(GROUP))
        return list((await session.execute(query)).scalars())


async def wait_until(check, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_removing_and_re_adding_the_bot_marks_and_unmarks_the_community(
    running: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
    services: Services,
) -> None:
    bot = {
        "id": telegram_api.bot_id,
        "is_bot": True,
        "first_name": "commops",
        "username": telegram_api.bot_username,
    }
    admin = TelegramEmulator.user(104, "Boss", "boss")
    await telegram_api.chat_member_update(bot, "member", "left", actor=admin, my=True)

    async def marked() -> bool:
        return any(at is not None for at in await removed_at(services))

    await wait_until(marked, "the community to be marked removed")
    await telegram_api.chat_member_update(bot, "left", "member", actor=admin, my=True)

    async def unmarked() -> bool:
        return await removed_at(services) == [None]

    await wait_until(unmarked, "the community to be served again")
    assert await telegram_api.sent_messages(GROUP) == []  # nothing said about it in the group
