"""Polls on Discord end to end: our adapter and dispatcher, unmodified discord.py, SimCord's
simulated Discord (native polls, vote adds and removals, ending a poll), the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import pytest
from sqlalchemy import select

from bot.app import build_dispatcher
from bot.discord_adapter.adapter import DiscordAdapter, DiscordSettings, intents
from handlers.core.context import Services
from handlers.core.router import Dispatcher
from storage.models import Poll, PollVote
from tests.discord_sim.harness import DiscordSim, button_ids

pytest_plugins = ["tests.discord_sim.harness"]


class SimulatedDiscordClock:
    """commops reads SimCord's simulated clock, the one it stamps every event with."""

    def __init__(self) -> None:
        self.env: Any = None

    def now(self) -> datetime:
        return self.env.now() if self.env is not None else datetime.now(UTC)


@pytest.fixture
def clock() -> SimulatedDiscordClock:
    return SimulatedDiscordClock()


@pytest.fixture
async def bot(
    discord_sim: DiscordSim, services: Services, clock: SimulatedDiscordClock
) -> DiscordAdapter:
    dispatcher: Dispatcher = build_dispatcher(services)
    settings = DiscordSettings(token="unused", sync_state_file=None)
    client = discord.Client(
        intents=intents(settings), allowed_mentions=discord.AllowedMentions.none()
    )
    adapter = DiscordAdapter(settings, client=client)
    adapter.attach(dispatcher)
    clock.env = await discord_sim.start(adapter.client)
    return adapter


async def votes(services: Services) -> dict[str, list[int]]:
    async with services.db.session() as session:
        rows = (await session.execute(select(PollVote))).scalars().all()
    return {row.user_id: row.option_ids for row in rows}


async def polls(services: Services) -> list[Poll]:
    async with services.db.session() as session:
        return list((await session.execute(select(Poll).order_by(Poll.id))).scalars().all())


async def test_a_native_poll_with_vote_changes_and_a_result_chart(
    bot: DiscordAdapter, discord_sim: DiscordSim, services: Services, clock: SimulatedDiscordClock
) -> None:
    made = await discord_sim.slash(
        "boss",
        "general",
        "poll new",
        text="Lunch? | Pizza | Sushi | Ramen",
        closes="tomorrow 20:00",
    )
    assert made.ephemeral and "Poll #1 is up" in made.response.content
    message = next(m for m in discord_sim.bot_messages("general") if m.poll is not None)
    assert [a.text for a in message.poll.answers] == ["Pizza", "Sushi", "Ramen"]
    [poll] = await polls(services)
    assert poll.native and poll.native_poll_id == str(message.id)
    assert poll.closes_at is not None and poll.closes_at - clock.now() < timedelta(days=2)
    await discord_sim.vote("alice", message, 1)
    await discord_sim.vote("bob", message, 2)
    await discord_sim.vote("carol", message, 2)
    # Bob changes his mind: Discord reports the removal and the new answer separately.
    await discord_sim.unvote("bob", message, 2)
    await discord_sim.vote("bob", message, 3)
    await discord_sim.unvote("carol", message, 2)  # Carol takes her vote back
    alice, bob, carol = (discord_sim.member(n).user.id for n in ("alice", "bob", "carol"))
    assert await votes(services) == {str(alice): [0], str(bob): [2]}
    assert str(carol) not in await votes(services)

    closed = await discord_sim.slash("boss", "general", "poll close", id=1)
    assert closed.acknowledged
    ended = discord_sim.channel("general").history()
    refreshed = next(m for m in ended if m.id == message.id)
    assert refreshed.poll is not None and refreshed.poll.is_finalised()
    result = discord_sim.last_bot_message("general")
    [embed] = result.embeds  # a report: the bold title line is the embed title
    assert embed.title == "📊 Result — poll #1: Lunch?"
    assert "A tie between **Pizza** and **Ramen**" in (embed.description or "")
    [chart] = result.attachments
    assert chart.filename == "poll-1.png"
    [row] = await polls(services)
    assert row.status == "closed" and row.result_message_id == str(result.id)


async def test_an_anonymous_poll_uses_buttons_because_discord_shows_voters(
    bot: DiscordAdapter, discord_sim: DiscordSim, services: Services
) -> None:
    await discord_sim.slash(
        "boss", "general", "poll new", text="Secret? | yes | no", anonymous=True
    )
    message = discord_sim.last_bot_message("general")
    assert message.poll is None and button_ids(message) == ["poll:vote:1:0", "poll:vote:1:1"]
    pressed = await discord_sim.press("alice", message, "poll:vote:1:1")
    assert pressed.ephemeral and "You voted **no** in poll #1" in pressed.response.content
    too_long = await discord_sim.slash(
        "boss", "general", "poll new", text="Q | a | b", closes="40d"
    )
    assert too_long.ephemeral and "at most 32 days" in too_long.response.content
    assert len(await polls(services)) == 1
