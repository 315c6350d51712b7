"""commops on Discord end to end: our adapter and dispatcher, unmodified discord.py, SimCord's
simulated Discord (strict command sync on), the real database underneath."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import discord
import pytest
from sqlalchemy import select

from bot.app import CommopsApp, build_dispatcher
from bot.config import parse_config
from bot.discord_adapter.adapter import (
    REQUIRED_PERMISSIONS,
    DiscordAdapter,
)
from handlers.core.context import HandlerContext, Services
from handlers.core.events import BotMembershipChanged, ButtonPressed, PollVote
from handlers.core.gateway import PrivateMessageUnavailable
from handlers.core.outgoing import Button, Image, OutgoingMessage, OutgoingPoll
from handlers.core.router import Dispatcher, Router
from storage.models import CommunityDay
from tests.discord_sim.commops import SimulatedDiscordClock, new_adapter
from tests.discord_sim.harness import DiscordSim, shown

pytest_plugins = ["tests.discord_sim.harness"]

seen: list[Any] = []
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def clock() -> SimulatedDiscordClock:
    return SimulatedDiscordClock()


def e2e_router() -> Router:
    """A test feature with a button and a poll, to drive those paths through the adapter."""
    router = Router("e2e")

    @router.command("petpoll")
    async def petpoll(event: Any, ctx: HandlerContext) -> OutgoingMessage:
        await ctx.gateway.send_poll(event.chat, OutgoingPoll("Best pet?", ("Cat", "Dog")))
        return OutgoingMessage("Pick one:", buttons=((Button("Cat", "e2e:cat"),),))

    @router.button("e2e:")
    async def pressed(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
        seen.append(event)
        return OutgoingMessage(f"You chose {event.data}", private=True)

    @router.command("chart")
    async def chart(event: Any, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage("**Daily** chart", image=Image(PNG, "chart.png", "A chart"))

    @router.command("whisper")
    async def whisper(event: Any, ctx: HandlerContext) -> None:
        try:
            await ctx.gateway.send_private(event.actor, OutgoingMessage("psst"))
            seen.append("dm sent")
        except PrivateMessageUnavailable:
            seen.append("dm closed")

    @router.on(PollVote)
    async def voted(event: PollVote, ctx: HandlerContext) -> None:
        seen.append(event)

    return router


@pytest.fixture
def dispatcher_e2e(services: Services) -> Dispatcher:
    seen.clear()
    dispatcher = build_dispatcher(services)
    dispatcher.include(e2e_router())
    return dispatcher


@pytest.fixture
async def bot(
    discord_sim: DiscordSim, dispatcher_e2e: Dispatcher, clock: SimulatedDiscordClock
) -> DiscordAdapter:
    adapter = new_adapter(dispatcher_e2e)
    clock.env = await discord_sim.start(adapter.client)
    return adapter


async def test_slash_help_and_stats(bot: DiscordAdapter, discord_sim: DiscordSim) -> None:
    await discord_sim.say("alice", "general", "hello everyone")
    await discord_sim.say("bob", "general", "hi alice")
    result = await discord_sim.slash("carol", "general", "help")
    assert not result.ephemeral
    # A report: embeds titled by its bold first line (a long list continues in follow-ups).
    [listing] = result.response.embeds
    assert listing.title == "Commands" and "/stats" in (listing.description or "")
    assert not result.response.content
    more = [e for f in result.followups for e in f.embeds]
    assert all(e.title is None and e.colour == listing.colour for e in more)
    text = "\n".join(e.description or "" for e in [listing, *more])
    assert "/giveaway" in text and "_Send /help followed by a command name" in text
    stats = await discord_sim.slash("carol", "general", "stats")
    text = shown(stats.response)
    assert stats.response.embeds[0].title == "📊 Pixel Club — activity"
    assert "Pixel Club — activity" in text
    assert "💬 Messages: **4** · yesterday 0 (+4)" in text  # two messages and two commands
    assert "🙋 Active members: **3**" in text


async def test_a_member_is_refused_a_manager_command_ephemerally(
    bot: DiscordAdapter, discord_sim: DiscordSim
) -> None:
    refused = await discord_sim.slash("alice", "general", "settings timezone", zone="Asia/Tokyo")
    assert refused.ephemeral
    assert (
        refused.response.content == "🔒 Only the community's managers can use /settings timezone."
    )
    allowed = await discord_sim.slash("boss", "general", "settings timezone", zone="Asia/Tokyo")
    assert "Time zone changed from UTC to **Asia/Tokyo**" in allowed.response.content
    settings = await discord_sim.slash("boss", "general", "settings show")
    assert "Asia/Tokyo" in shown(settings.response)


async def test_bad_arguments_get_an_ephemeral_explanation(
    bot: DiscordAdapter, discord_sim: DiscordSim
) -> None:
    result = await discord_sim.slash("boss", "general", "settings timezone", zone="Mars/Base")
    assert result.ephemeral
    assert "isn't a time zone I know" in result.response.content


async def test_member_join_is_recorded(
    bot: DiscordAdapter, discord_sim: DiscordSim, services: Services
) -> None:
    await discord_sim.join("dora")
    stats = await discord_sim.slash("alice", "general", "stats")
    assert "➕ Joined: **1**" in shown(stats.response)
    async with services.db.session() as session:
        day = (await session.execute(select(CommunityDay))).scalar_one()
    assert day.joins == 1


async def test_native_poll_votes_and_a_button_that_survives_a_restart(
    bot: DiscordAdapter, discord_sim: DiscordSim, dispatcher_e2e: Dispatcher
) -> None:
    await discord_sim.slash("alice", "general", "petpoll")
    poll_message = next(m for m in discord_sim.bot_messages("general") if m.poll is not None)
    assert [a.text for a in poll_message.poll.answers] == ["Cat", "Dog"]
    await discord_sim.vote("bob", poll_message, 1)
    vote = next(e for e in seen if isinstance(e, PollVote))
    assert (vote.option_ids, vote.actor.display_name) == ((0,), "bob")  # answer 1 = option 0
    prompt = next(m for m in discord_sim.bot_messages("general") if m.components)
    pressed = await discord_sim.press("carol", prompt, "e2e:cat")
    assert pressed.ephemeral and pressed.response.content == "You chose e2e:cat"
    # A new process: the same button on the old message still works, no view re-registered.
    await discord_sim.restart(new_adapter(dispatcher_e2e).client)
    again = await discord_sim.press("bob", prompt, "e2e:cat")
    assert again.ephemeral and again.response.content == "You chose e2e:cat"


async def test_posts_never_ping_everyone(bot: DiscordAdapter, discord_sim: DiscordSim) -> None:
    await discord_sim.slash("alice", "general", "stats")
    for message in discord_sim.bot_messages("general"):
        assert not message.mention_everyone


async def test_slash_commands_mirror_the_registry(
    bot: DiscordAdapter, discord_sim: DiscordSim
) -> None:
    names = set(discord_sim.available_commands("alice", "general"))
    assert {"help", "stats", "settings show", "settings timezone", "settings language"} <= names


async def test_text_prefix_commands_when_message_content_is_on(
    discord_sim: DiscordSim, dispatcher_e2e: Dispatcher, clock: SimulatedDiscordClock
) -> None:
    adapter = new_adapter(dispatcher_e2e, message_content=True, prefix="!")
    clock.env = await discord_sim.start(adapter.client)
    await discord_sim.say("alice", "general", "!stats")
    reply = discord_sim.last_bot_message("general")
    assert reply is not None and "Pixel Club — activity" in shown(reply)
    assert reply.reference is not None  # answers the member's message


async def test_a_reconnect_does_not_repeat_start_up_work(
    bot: DiscordAdapter, discord_sim: DiscordSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[bool] = []

    async def counting_sync(*, force: bool) -> bool:
        syncs.append(force)
        return True

    monkeypatch.setattr(bot, "sync_commands", counting_sync)
    await discord_sim.reconnect()  # READY again: on_ready fires a second time
    assert syncs == []
    result = await discord_sim.slash("alice", "general", "stats")
    assert "Pixel Club" in shown(result.response)


async def test_a_configured_role_makes_managers(
    discord_sim: DiscordSim, dispatcher_e2e: Dispatcher, clock: SimulatedDiscordClock
) -> None:
    adapter = new_adapter(dispatcher_e2e, manager_role="Moderators")
    env = await discord_sim.start(adapter.client)
    clock.env = env
    guild = discord_sim.guild
    assert guild is not None
    moderators = guild.create_role("Moderators")
    dora = guild.add_member(env.create_user("dora"), roles=[moderators])
    await env.settle()
    refused = await discord_sim.slash("carol", "general", "settings show")
    assert refused.ephemeral and "Only the community's managers" in refused.response.content
    allowed = await discord_sim.slash(dora, "general", "settings show")
    assert "Settings for Pixel Club" in shown(allowed.response)


async def test_chart_attachment_and_private_message_fallback(
    bot: DiscordAdapter, discord_sim: DiscordSim
) -> None:
    result = await discord_sim.slash("alice", "general", "chart")
    [attachment] = result.response.attachments
    assert attachment.filename == "chart.png"
    assert await attachment.read() == PNG
    await discord_sim.slash("alice", "general", "whisper")
    assert [m.content for m in discord_sim.dms("alice")] == ["psst"]
    discord_sim.close_dms("bob")
    await discord_sim.slash("bob", "general", "whisper")
    assert seen[-2:] == ["dm sent", "dm closed"]


async def test_commands_sync_on_start_only_when_the_set_changed(
    dispatcher_e2e: Dispatcher, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = new_adapter(dispatcher_e2e, sync_state_file=str(tmp_path / "synced.json"))
    calls: list[int] = []

    async def fake_sync(*args: Any, **kwargs: Any) -> list[Any]:
        calls.append(1)
        return []

    monkeypatch.setattr(adapter.tree, "sync", fake_sync)
    assert await adapter.sync_commands(force=False) is True
    assert await adapter.sync_commands(force=False) is False  # a restart: nothing changed
    extra = Router("extra")

    @extra.command("ping")
    async def ping(event: Any, ctx: HandlerContext) -> None:
        return None

    dispatcher_e2e.include(extra)
    adapter.attach(dispatcher_e2e)
    assert await adapter.sync_commands(force=False) is True  # a new command: sync
    assert await adapter.sync_commands(force=True) is True  # `commops discord sync`
    assert len(calls) == 3


def test_the_readme_invite_url_asks_for_exactly_the_permissions_the_bot_uses() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"permissions={REQUIRED_PERMISSIONS.value}" in readme


async def test_slash_commands_are_described_in_chinese_for_chinese_clients(
    bot: DiscordAdapter, discord_sim: DiscordSim
) -> None:
    synced = {c.name: c for c in await bot.tree.fetch_commands()}
    stats = synced["stats"]
    assert stats.description.startswith("Today's and yesterday's")
    assert stats.description_localizations[discord.Locale.chinese].startswith("今天和昨天")


async def test_a_manager_picks_the_announcements_channel_from_inside_it(
    bot: DiscordAdapter, discord_sim: DiscordSim
) -> None:
    chosen = await discord_sim.slash(
        "boss", "announcements", "settings announcements", where="here"
    )
    assert "posted here, in **announcements**" in chosen.response.content
    settings = await discord_sim.slash("boss", "general", "settings show")
    assert "Announcements: **announcements**" in shown(settings.response)


async def test_a_giveaway_from_slash_start_to_a_mentioned_winner_across_a_restart(
    bot: DiscordAdapter, discord_sim: DiscordSim, dispatcher_e2e: Dispatcher
) -> None:
    started = await discord_sim.slash(
        "boss", "general", "giveaway start", ends="2h", winners=1, prize="A sticker pack"
    )
    assert not started.ephemeral
    announcement = next(m for m in discord_sim.bot_messages("general") if m.components)
    assert announcement.embeds[0].title == "🎁 Giveaway #1: A sticker pack"
    assert announcement.embeds[0].colour == discord.Colour.gold()
    entered = await discord_sim.press("alice", announcement, "giveaway:enter:1")
    assert entered.ephemeral and "You're in giveaway #1" in entered.response.content
    again = await discord_sim.press("alice", announcement, "giveaway:enter:1")
    assert again.ephemeral and "already in giveaway #1" in again.response.content
    refused = await discord_sim.slash("alice", "general", "giveaway end", id=1)
    assert refused.ephemeral and "Only the community's managers" in refused.response.content
    # A new process in the middle: the Enter button on the old announcement still works.
    await discord_sim.restart(new_adapter(dispatcher_e2e).client)
    bob = await discord_sim.press("bob", announcement, "giveaway:enter:1")
    assert bob.ephemeral and "You're in giveaway #1" in bob.response.content
    await discord_sim.slash("boss", "general", "giveaway end", id=1)
    result = next(m for m in discord_sim.bot_messages("general") if "Seed:" in shown(m))
    winner = discord_sim.discord_member(
        "alice" if "<@" + str(discord_sim.discord_member("alice").id) in result.content else "bob"
    )
    # Mentions in an embed never ping: the winner is named in the content, which pings them.
    assert result.content == f"<@{winner.id}>"
    assert winner.id in {u.id for u in result.mentions}
    [embed] = result.embeds
    assert f"<@{winner.id}>" in (embed.description or "")
    assert "[" not in (embed.description or "").split("Seed")[0]
    assert "You won" in discord_sim.dms(winner.name)[-1].content
    verified = await discord_sim.slash("carol", "general", "giveaway verify", id=1)
    assert "verified" in shown(verified.response)


async def test_the_bot_added_to_and_removed_from_a_server_reaches_the_dispatcher(
    bot: DiscordAdapter, discord_sim: DiscordSim, dispatcher_e2e: Dispatcher
) -> None:
    handled: list[Any] = []
    original = dispatcher_e2e.handle

    async def recording(event: Any, gateway: Any) -> Any:
        handled.append(event)
        return await original(event, gateway)

    dispatcher_e2e.handle = recording  # type: ignore[method-assign]
    second = await discord_sim.add_bot_to_guild("Second Server")
    await discord_sim.reconnect()  # the known guilds come again: not a new membership
    await discord_sim.remove_bot_from_guild(second)
    changes = [e for e in handled if isinstance(e, BotMembershipChanged)]
    assert [(e.present, e.chat.community_id) for e in changes] == [
        (True, str(second.id)),
        (False, str(second.id)),
    ]
    me = discord_sim.client.user
    assert me is not None
    assert all(e.actor.user_id == str(me.id) and e.actor.is_bot for e in changes)
    assert changes[0].chat.community_title == "Second Server"
    assert changes[0].key != changes[1].key


async def test_commops_run_with_a_token_in_the_environment_serves_a_server(
    discord_sim: DiscordSim, cli_sandbox: Path
) -> None:
    config = parse_config(
        {"database": {"url": f"sqlite:///{cli_sandbox / 'commops.db'}"}},
        source="commops.toml",
        env={"COMMOPS_DISCORD_TOKEN": "a-token"},
    )
    app = CommopsApp(config)
    await app.start()
    try:
        [adapter] = app.adapters
        assert isinstance(adapter, DiscordAdapter) and adapter.settings.token == "a-token"
        assert adapter.client.intents.members and not adapter.client.intents.message_content
        assert app.dispatcher is not None
        # What `adapter.run` does before `client.start(token)`, which SimCord stands in for.
        adapter.attach(app.dispatcher)
        await discord_sim.start(adapter.client)
        result = await discord_sim.slash("alice", "general", "stats")
        assert "Pixel Club — activity" in shown(result.response)
        # Commands were published once, and the state file remembers what was published.
        assert (cli_sandbox / "commops-discord-commands.json").exists()
        assert await adapter.sync_commands(force=False) is False
    finally:
        await discord_sim.stop()
        await app.stop()
