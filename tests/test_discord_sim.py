"""Proves the SimCord harness with a tiny discord.py bot defined here (not commops code)."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import timedelta

import discord
import pytest
import simcord
from discord import app_commands

from tests.discord_sim.harness import MANAGER, DiscordSim, button_ids

pytest_plugins = ["tests.discord_sim.harness"]


def _png() -> bytes:
    """A valid 1x1 PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = _png()


class HelloView(discord.ui.View):
    """Persistent view: timeout=None and a fixed custom_id, re-added in setup_hook."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Wave", custom_id="hello:wave", style=discord.ButtonStyle.primary)
    async def wave(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await interaction.response.send_message(f"{interaction.user.name} waved", ephemeral=True)


class TinyBot(discord.Client):
    def __init__(self, *, sync: bool = True, polls: bool = True) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.members = True
        intents.guild_reactions = True
        intents.message_content = True
        intents.guild_polls = polls  # MESSAGE_POLL_VOTE_* are gated on GUILD_MESSAGE_POLLS
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none())
        self.tree = app_commands.CommandTree(self)
        self.sync_on_start = sync
        self.joined: list[str] = []
        self.left: list[str] = []
        self.reactions: list[tuple[int, str]] = []
        self.votes: list[tuple[int, int]] = []
        self.ready_count = 0

        @self.tree.command(name="ping", description="Latency check")
        async def ping(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("pong", ephemeral=True)

        @self.tree.command(name="whoami", description="Am I a manager?")
        async def whoami(interaction: discord.Interaction) -> None:
            assert isinstance(interaction.user, discord.Member)
            role = "manager" if interaction.user.guild_permissions.manage_guild else "member"
            await interaction.response.send_message(role, ephemeral=True)

    async def setup_hook(self) -> None:
        self.add_view(HelloView())
        if self.sync_on_start:
            await self.tree.sync()

    async def on_ready(self) -> None:
        self.ready_count += 1

    async def on_member_join(self, member: discord.Member) -> None:
        self.joined.append(member.name)

    async def on_member_remove(self, member: discord.Member) -> None:
        self.left.append(member.name)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.reactions.append((payload.user_id, str(payload.emoji)))

    async def on_raw_poll_vote_add(self, payload: discord.RawPollVoteActionEvent) -> None:
        self.votes.append((payload.user_id, payload.answer_id))

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        if message.content == "!hello":
            embed = discord.Embed(title="Hello", description="Welcome to Pixel Club")
            await message.channel.send(embed=embed, view=HelloView())
        elif message.content == "!poll":
            poll = discord.Poll("Best pixel?", duration=timedelta(hours=24))
            poll.add_answer(text="Red").add_answer(text="Blue")
            await message.channel.send(poll=poll)
        elif message.content == "!chart":
            await message.channel.send("chart", file=discord.File(io.BytesIO(PNG), "chart.png"))
        elif message.content == "!shout":
            await message.channel.send("@everyone party")  # client default: none()
        elif message.content == "!shout-loud":
            await message.channel.send(
                "@everyone party", allowed_mentions=discord.AllowedMentions(everyone=True)
            )


async def test_slash_command_replies_ephemerally(discord_sim: DiscordSim) -> None:
    bot = TinyBot()
    await discord_sim.start(bot)
    assert bot.ready_count == 1
    assert discord_sim.member("alice").available_commands(discord_sim.channel("general")) == (
        "ping",
        "whoami",
    )

    result = await discord_sim.slash("alice", "general", "ping")

    assert result.acknowledged and result.ephemeral
    assert result.response is not None and result.response.content == "pong"
    simcord.assert_responded(result, content="pong", ephemeral=True)
    # Ephemeral: only alice's client shows it.
    assert [m.content for m in discord_sim.bot_messages("general", viewer="bob")] == []
    assert [m.content for m in discord_sim.bot_messages("general", viewer="alice")] == ["pong"]


async def test_strict_sync_refuses_unsynced_commands(discord_sim: DiscordSim) -> None:
    await discord_sim.start(TinyBot(sync=False))
    with pytest.raises(simcord.SetupError, match="never synced"):
        await discord_sim.slash("alice", "general", "ping")


async def test_manage_server_permission(discord_sim: DiscordSim) -> None:
    await discord_sim.start(TinyBot())

    assert discord_sim.discord_member(MANAGER).guild_permissions.manage_guild
    assert not discord_sim.discord_member("alice").guild_permissions.manage_guild
    assert (await discord_sim.slash(MANAGER, "general", "whoami")).response.content == "manager"
    assert (await discord_sim.slash("carol", "general", "whoami")).response.content == "member"


async def test_message_with_embed_and_persistent_button(discord_sim: DiscordSim) -> None:
    await discord_sim.start(TinyBot())

    await discord_sim.say("alice", "general", "!hello")
    hello = discord_sim.last_bot_message("general")
    assert hello.embeds[0].title == "Hello"
    assert button_ids(hello) == ["hello:wave"]

    pressed = await discord_sim.press("bob", hello, "hello:wave")
    assert pressed.ephemeral and pressed.response.content == "bob waved"

    # A restart with a fresh client: the old message's button still works.
    await discord_sim.restart(TinyBot())
    again = await discord_sim.press("carol", hello, "hello:wave")
    assert again.response.content == "carol waved"


async def test_member_join_and_raw_reaction(discord_sim: DiscordSim) -> None:
    bot = TinyBot()
    await discord_sim.start(bot)

    dave = await discord_sim.join("dave")
    assert bot.joined == ["dave"]
    assert dave.member is not None
    await discord_sim.leave("dave")
    assert bot.left == ["dave"]

    message = await discord_sim.say("alice", "general", "nice pixels")
    await discord_sim.react("bob", message, "🎉")
    assert bot.reactions == [(discord_sim.member("bob").id, "🎉")]


async def test_native_poll_and_votes(discord_sim: DiscordSim) -> None:
    bot = TinyBot()
    await discord_sim.start(bot)

    await discord_sim.say("alice", "general", "!poll")
    message = discord_sim.last_bot_message("general")
    assert message.poll is not None
    assert [a.text for a in message.poll.answers] == ["Red", "Blue"]

    await discord_sim.vote("alice", message, 2)
    await discord_sim.vote("bob", message, 1)
    alice, bob = discord_sim.member("alice").id, discord_sim.member("bob").id
    assert bot.votes == [(alice, 2), (bob, 1)]
    counts = {a.text: a.vote_count for a in discord_sim.last_bot_message("general").poll.answers}
    assert counts == {"Red": 1, "Blue": 1}


async def test_poll_votes_need_the_polls_intent(discord_sim: DiscordSim) -> None:
    bot = TinyBot(polls=False)
    await discord_sim.start(bot)
    await discord_sim.say("alice", "general", "!poll")
    await discord_sim.vote("alice", discord_sim.last_bot_message("general"), 1)
    assert bot.votes == []


async def test_png_attachment(discord_sim: DiscordSim) -> None:
    await discord_sim.start(TinyBot())

    await discord_sim.say("alice", "general", "!chart")
    message = discord_sim.last_bot_message("general")
    [attachment] = message.attachments
    assert attachment.filename == "chart.png"
    assert attachment.content_type == "image/png"
    assert await attachment.read() == PNG


async def test_allowed_mentions_none_does_not_ping_everyone(discord_sim: DiscordSim) -> None:
    await discord_sim.start(TinyBot())

    await discord_sim.say("alice", "general", "!shout")
    quiet = discord_sim.last_bot_message("general")
    assert quiet.content == "@everyone party"
    assert not quiet.mention_everyone

    assert discord_sim.env.http_requests[-1].json["allowed_mentions"] == {"parse": []}

    # Control: explicitly allowing it does ping (the bot role has Mention Everyone).
    await discord_sim.say("alice", "general", "!shout-loud")
    assert discord_sim.last_bot_message("general").mention_everyone


class ShardedBot(discord.AutoShardedClient):
    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.members = True
        super().__init__(intents=intents, shard_count=2)
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="shard", description="Which shard am I on?")
        async def shard(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"shard {interaction.guild.shard_id}")

    async def setup_hook(self) -> None:
        await self.tree.sync()


async def test_auto_sharded_client(discord_sim: DiscordSim) -> None:
    bot = ShardedBot()
    await discord_sim.start(bot)
    assert sorted(bot.shards) == [0, 1]
    guild = bot.get_guild(discord_sim.guild.id)
    assert guild is not None and guild.chunked
    result = await discord_sim.slash("alice", "general", "shard")
    assert result.response.content == f"shard {guild.shard_id}"
    assert not result.ephemeral


ZH_CN = {"giveaway": "抽奖", "start": "开始", "Start a giveaway": "开始抽奖"}


class _Translator(app_commands.Translator):
    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: object
    ) -> str | None:
        return ZH_CN.get(string.message) if locale is discord.Locale.chinese else None


class FullBot(TinyBot):
    """TinyBot plus the shapes the adapter needs: groups, localization, autocomplete,
    Manage-Server-only commands and DMs with a fallback."""

    def __init__(self) -> None:
        super().__init__()
        loc = app_commands.locale_str
        giveaway = app_commands.Group(name=loc("giveaway"), description="Giveaways")

        @giveaway.command(name=loc("start"), description=loc("Start a giveaway"))
        async def start(interaction: discord.Interaction, prize: str) -> None:
            await interaction.response.send_message(f"Giveaway for {prize}!")

        @self.tree.command(name="pick", description="Pick a fruit")
        async def pick(interaction: discord.Interaction, fruit: str) -> None:
            await interaction.response.send_message(fruit)

        @pick.autocomplete("fruit")
        async def fruits(
            _interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            names = ("apple", "apricot", "banana")
            return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

        @self.tree.command(name="admin", description="Managers only")
        @app_commands.default_permissions(manage_guild=True)
        async def admin(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("admin ok", ephemeral=True)

        @self.tree.command(name="dmme", description="Send me a DM")
        async def dmme(interaction: discord.Interaction) -> None:
            try:
                await interaction.user.send("psst")
            except discord.Forbidden:
                await interaction.response.send_message("Your DMs are closed", ephemeral=True)
            else:
                await interaction.response.send_message("Check your DMs", ephemeral=True)

        self.tree.add_command(giveaway)

    async def setup_hook(self) -> None:
        await self.tree.set_translator(_Translator())
        await super().setup_hook()


async def test_groups_localization_autocomplete_and_manager_only(
    discord_sim: DiscordSim,
) -> None:
    await discord_sim.start(FullBot())

    result = await discord_sim.slash("alice", "general", "giveaway start", prize="cake")
    assert result.response.content == "Giveaway for cake!"
    synced = {c.name: c for c in await discord_sim.client.tree.fetch_commands()}
    assert synced["giveaway"].name_localizations == {discord.Locale.chinese: "抽奖"}

    choices = await discord_sim.autocomplete("alice", "general", "pick", "fruit", "ap")
    assert [c["value"] for c in choices] == ["apple", "apricot"]

    # default_permissions hides the command from non-managers, like the real client does.
    assert "admin" in discord_sim.available_commands(MANAGER, "general")
    assert "admin" not in discord_sim.available_commands("alice", "general")
    with pytest.raises(simcord.SetupError, match="default-member-permissions"):
        await discord_sim.slash("alice", "general", "admin")
    assert (await discord_sim.slash(MANAGER, "general", "admin")).response.content == "admin ok"


async def test_dms_and_closed_dms(discord_sim: DiscordSim) -> None:
    await discord_sim.start(FullBot())

    assert (await discord_sim.slash("alice", "general", "dmme")).response.content == (
        "Check your DMs"
    )
    assert [m.content for m in discord_sim.dms("alice")] == ["psst"]

    discord_sim.close_dms("bob")
    result = await discord_sim.slash("bob", "general", "dmme")
    assert result.ephemeral and result.response.content == "Your DMs are closed"
    assert discord_sim.dms("bob") == []


async def test_reconnect_fires_on_ready_again(discord_sim: DiscordSim) -> None:
    bot = TinyBot()
    await discord_sim.start(bot)
    await discord_sim.say("alice", "general", "!hello")
    hello = discord_sim.last_bot_message("general")

    await discord_sim.reconnect()

    assert bot.ready_count == 2  # on_ready is not a "start once" hook
    assert discord_sim.discord_member(MANAGER).guild_permissions.manage_guild
    assert (await discord_sim.press("alice", hello, "hello:wave")).response.content == (
        "alice waved"
    )
