"""What the adapters add for polls: Telegram's count updates and close dates, Discord's poll
duration and multi-word options, and what each platform says its polls can do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from telegram import Update

from bot.discord_adapter.adapter import command_arguments
from bot.discord_adapter.gateway import POLL_DURATION, DiscordGateway, poll_duration
from bot.telegram_adapter.gateway import TelegramGateway, native_close_date
from bot.telegram_adapter.translate import BotIdentity, poll_id_of, translate
from handlers.core.events import ChatRef, Platform, PollTotals
from handlers.core.gateway import GatewayError
from handlers.core.outgoing import OutgoingPoll
from handlers.core.recording import activity_record
from handlers.polls.commands import router as poll_router
from tests.test_telegram_gateway import FakeBot

ME = BotIdentity(999, "commops_bot")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
GROUP = ChatRef(Platform.TELEGRAM, "-1001", "-1001", "Club")
POLL_ID = "5436288457237299207"


def poll_update(poll_id: str = POLL_ID, *, closed: bool = False) -> Update:
    """A `poll` update as the Bot API sends it for a poll the bot sent."""
    update = Update.de_json(
        {
            "update_id": 7,
            "poll": {
                "id": poll_id,
                "question": "Secret?",
                "options": [
                    {"text": "yes", "voter_count": 4, "persistent_id": "a"},
                    {"text": "no", "voter_count": 1, "persistent_id": "b"},
                ],
                "total_voter_count": 5,
                "is_closed": closed,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
                "allows_revoting": True,
                "members_only": False,
            },
        },
        None,
    )
    assert update is not None
    return update


def test_a_telegram_poll_update_becomes_the_poll_totals():
    [event] = translate(poll_update(), ME, poll_chats={POLL_ID: GROUP}, now=NOW)
    assert isinstance(event, PollTotals)
    assert (event.chat, event.poll_id, event.totals, event.voters) == (GROUP, POLL_ID, (4, 1), 5)
    assert (event.at, event.key, event.closed) == (NOW, f"p:{POLL_ID}:7", False)
    assert event.actor.user_id == GROUP.chat_id and not event.actor.is_bot
    assert activity_record(event) is None  # counts are not anyone's activity
    assert poll_id_of(poll_update()) == POLL_ID


def test_counts_of_polls_the_bot_did_not_send_give_nothing():
    assert translate(poll_update("other"), ME, poll_chats={POLL_ID: GROUP}, now=NOW) == []


def test_telegram_closes_a_poll_itself_only_within_ten_minutes():
    assert native_close_date(None, NOW) is None
    assert native_close_date(NOW + timedelta(seconds=4), NOW) is None
    assert native_close_date(NOW + timedelta(minutes=5), NOW) == NOW + timedelta(minutes=5)
    assert native_close_date(NOW + timedelta(seconds=600), NOW) == NOW + timedelta(seconds=600)
    assert native_close_date(NOW + timedelta(minutes=11), NOW) is None


async def test_the_telegram_gateway_passes_the_close_date():
    bot = FakeBot()
    gateway = TelegramGateway(bot, backoff=0, now=lambda: NOW)  # type: ignore[arg-type]
    soon = OutgoingPoll("Q?", ("a", "b"), closes_at=NOW + timedelta(minutes=2))
    later = OutgoingPoll("Q?", ("a", "b"), closes_at=NOW + timedelta(hours=2))
    await gateway.send_poll(GROUP, soon)
    await gateway.send_poll(GROUP, later)
    assert [kw["close_date"] for _, kw in bot.calls] == [NOW + timedelta(minutes=2), None]
    with pytest.raises(GatewayError, match="too long"):
        await gateway.send_poll(GROUP, OutgoingPoll("Q" * 301, ("a", "b")))
    assert len(bot.calls) == 2
    caps = gateway.capabilities
    assert caps.anonymous_polls and caps.max_poll_option_length == 100
    assert caps.max_poll_duration is None


def test_discord_polls_last_whole_hours_until_the_close_and_at_most_32_days():
    assert poll_duration(None, NOW) == POLL_DURATION == timedelta(days=32)
    assert poll_duration(NOW + timedelta(minutes=10), NOW) == timedelta(hours=1)
    assert poll_duration(NOW + timedelta(hours=5, minutes=1), NOW) == timedelta(hours=6)
    assert poll_duration(NOW + timedelta(days=40), NOW) == POLL_DURATION
    assert poll_duration(NOW - timedelta(hours=1), NOW) == timedelta(hours=1)
    caps = DiscordGateway.capabilities
    assert not caps.anonymous_polls and caps.max_poll_duration == POLL_DURATION
    assert caps.max_poll_option_length == 55


async def test_the_discord_gateway_refuses_to_trim_a_long_answer():
    gateway = DiscordGateway(client=None)  # type: ignore[arg-type]
    with pytest.raises(GatewayError, match="too long"):
        await gateway.send_poll(GROUP, OutgoingPoll("Q?", ("a", "b" * 56)))


def test_slash_options_with_spaces_reach_the_parser_whole():
    [spec] = [s for s in poll_router.commands if s.name == "poll new"]
    values: dict[str, Any] = {"text": "Q? | a | b", "closes": "tomorrow 20:00", "multi": True}
    assert command_arguments(spec, values) == "Q? | a | b --multi --closes tomorrow 20:00"
    values["closes"] = "2h"
    assert command_arguments(spec, values) == "Q? | a | b --multi --closes=2h"
