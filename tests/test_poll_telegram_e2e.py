"""Polls on Telegram end to end: the real adapter and dispatcher, unmodified python-telegram-bot,
real HTTP to the Bot API emulator (sendPoll, poll answers, stopPoll, sendPhoto), real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import build_dispatcher
from bot.telegram_adapter.adapter import TelegramAdapter, TelegramSettings
from handlers.core.clock import SystemClock
from handlers.core.context import Services
from handlers.core.router import Dispatcher
from storage.models import Poll, PollVote
from tests.telegram_emulator.fixture import (  # noqa: F401 - the fixture is used by name
    TelegramEmulator,
    telegram_api,
)

GROUP = -1001234
ALICE = TelegramEmulator.user(101, "Alice", "alice")
BOB = TelegramEmulator.user(102, "Bob", "bob")
CAROL = TelegramEmulator.user(103, "Carol", "carol")
BOSS = TelegramEmulator.user(104, "Boss", "boss")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def clock() -> SystemClock:
    """The emulator stamps updates with the real time."""
    return SystemClock()


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, limit: float = 10) -> Any:
    """Poll until `check` returns something truthy (I/O wait, not a timing test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _settings(api: TelegramEmulator) -> TelegramSettings:
    return TelegramSettings(
        token=api.token,
        api_base_url=api.base_url,
        api_base_file_url=api.base_file_url,
        poll_timeout=1,
    )


@pytest.fixture
def dispatcher(services: Services) -> Dispatcher:
    return build_dispatcher(services)


@pytest.fixture
async def adapter(
    telegram_api: TelegramEmulator,  # noqa: F811
    dispatcher: Dispatcher,
) -> AsyncIterator[TelegramAdapter]:
    await telegram_api.set_admins(GROUP, [BOSS], owner=ALICE)
    running = TelegramAdapter(_settings(telegram_api))
    await running.start(dispatcher)
    try:
        yield running
    finally:
        await running.shutdown()


async def votes(services: Services) -> dict[str, list[int]]:
    async with services.db.session() as session:
        rows = (await session.execute(select(PollVote))).scalars().all()
    return {row.user_id: row.option_ids for row in rows}


async def poll_rows(services: Services) -> list[Poll]:
    async with services.db.session() as session:
        return list((await session.execute(select(Poll).order_by(Poll.id))).scalars().all())


def equals(expected: Any, read: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await read() == expected

    return check


async def test_a_native_poll_survives_a_restart_and_closes_with_a_chart(
    adapter: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
    dispatcher: Dispatcher,
    services: Services,
) -> None:
    await telegram_api.send_command(BOSS, "poll", "Lunch? | Pizza | Sushi | Ramen --multi")
    [sent] = await wait_for(lambda: telegram_api.sent_polls(GROUP), "the poll")
    assert sent.params["question"] == "Lunch?" and sent.params["allows_multiple_answers"]
    assert not sent.params["is_anonymous"] and "close_date" not in sent.params
    poll_id = sent.message["poll"]["id"]
    await wait_for(lambda: poll_rows(services), "the poll row")
    await telegram_api.answer_poll(ALICE, poll_id, [0, 2])
    await telegram_api.answer_poll(BOB, poll_id, [1])
    await telegram_api.answer_poll(BOB, poll_id, [])  # Bob retracts his vote
    await wait_for(equals({"101": [0, 2]}, lambda: votes(services)), "Alice's votes only")

    # A restart forgets which chat the poll is in; the database still knows.
    await adapter.shutdown()
    restarted = TelegramAdapter(_settings(telegram_api))
    await restarted.start(dispatcher)
    try:
        assert restarted.poll_chats == {}
        await telegram_api.answer_poll(CAROL, poll_id, [2])
        await wait_for(equals({"101": [0, 2], "103": [2]}, lambda: votes(services)), "Carol's vote")
        await telegram_api.send_command(BOSS, "poll", "close 1")
        [photo] = await wait_for(lambda: telegram_api.sent_photos(GROUP), "the result chart")
        [stopped] = await telegram_api.stopped_polls(GROUP)
        assert stopped.params["message_id"] == sent.message["message_id"]
    finally:
        await restarted.shutdown()
    caption = photo.message["caption"]  # as members see it (the HTML comes back plain)
    assert caption.startswith("📊 Result — poll #1: Lunch?") and "<b>" in photo.caption
    assert "3. Ramen — 2 votes (67%) 🏆" in caption and "Winner: Ramen" in caption
    assert "2 members voted (3 votes in all)" in caption
    assert photo.files["photo"]["size"] > 1000
    [row] = await poll_rows(services)
    assert row.status == "closed" and row.result_message_id == str(photo.message["message_id"])


async def test_an_anonymous_poll_counts_what_telegram_reports(
    adapter: TelegramAdapter,
    telegram_api: TelegramEmulator,  # noqa: F811
    services: Services,
) -> None:
    await telegram_api.send_command(BOSS, "poll", "Secret? | yes | no --anonymous --closes 5m")
    [sent] = await wait_for(lambda: telegram_api.sent_polls(GROUP), "the poll")
    assert sent.params["is_anonymous"]
    # Five minutes is within Telegram's own auto-close range: it shows a countdown too.
    assert sent.params["close_date"]
    poll = sent.message["poll"]
    options = [{**o, "voter_count": n} for o, n in zip(poll["options"], (2, 1), strict=True)]
    counts = {**poll, "options": options, "total_voter_count": 3}
    await telegram_api.inject({"poll": counts})
    await wait_for(
        equals([2, 1, 3], lambda: _first_totals(services)), "the platform's counts to be kept"
    )
    await telegram_api.send_command(BOSS, "poll", "results 1")
    [photo] = await wait_for(lambda: telegram_api.sent_photos(GROUP), "the results")
    caption = photo.message["caption"]
    assert "Votes so far" in caption and "1. yes — 2 votes (67%) 🏆" in caption
    assert "3 members voted." in caption


async def _first_totals(services: Services) -> list[int] | None:
    rows = await poll_rows(services)
    return rows[0].native_totals if rows else None
