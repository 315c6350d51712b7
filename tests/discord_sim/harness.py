"""A thin layer over SimCord for commops' Discord end-to-end tests.

SimCord (PyPI ``simcord`` 3.2.x) fakes Discord's REST API and gateway inside the test
process: it replaces ``HTTPClient.request`` and feeds payloads into
``ConnectionState.parsers``, so everything in between (discord.py's cache, ``CommandTree``,
views, ``Poll``, ``AllowedMentions``…) is real, unmodified discord.py. SimCord already has
the verbs we need; this module only fixes the *world* every adapter test starts from and
gives the verbs short, uniform names.

The world (built when the bot is started)::

    guild "Pixel Club"
      #general, #announcements
      alice, bob, carol         plain members
      boss                      has the "Managers" role with Manage Server

Use it from a test module::

    pytest_plugins = ["tests.discord_sim.harness"]   # provides the `discord_sim` fixture

    async def test_help(discord_sim):
        client = build_my_client()            # discord.Client / AutoShardedClient (with
                                              # shard_count set), NOT logged in or started
        await discord_sim.start(client)       # fake login, setup_hook, READY, GUILD_CREATE
        result = await discord_sim.slash("alice", "general", "help")
        assert result.ephemeral and "post" in result.response.content

Rules SimCord enforces (and that we keep on):

* Strict command sync: invoking a slash command the bot never synced raises
  ``simcord.SetupError`` ("did you forget `await bot.tree.sync()`?"). Sync from the
  bot's own code (``setup_hook`` or a sync command), never auto-register in tests.
* Errors the bot swallows (listener/command/view exceptions) fail the test at teardown;
  inspect them with ``discord_sim.env.errors`` or ``simcord.assert_error`` if expected.
* Every verb settles the event loop before returning, so replies are already there; no
  sleeps. ``await discord_sim.env.advance_time(seconds)`` moves the virtual clock (view
  timeouts, ``asyncio.sleep`` in the bot). Test code that itself needs the virtual "now"
  (``discord.utils.utcnow()``) wraps it in ``with discord_sim.env.time_context():``.
* Actors are permission-checked like the real client (a member cannot press a disabled
  button, speak where they cannot see, or see a command they lack permissions for).

Reading what the bot did:

* ``slash``/``press`` return ``simcord.InteractionResult``: ``.acknowledged``,
  ``.deferred``, ``.ephemeral``, ``.response`` (a ``ResponseMessage`` with ``.content``,
  ``.embeds``, ``.components`` (raw dicts), ``.attachments``, ``.ephemeral``,
  ``.message``), ``.followups``, ``.modal``.
* ``shown(message)`` is the text a member reads: content plus embed titles and text (the
  bot sends reports and announcements as embeds).
* ``bot_messages(channel)`` / ``last_bot_message(channel)`` return real ``discord.Message``
  objects (``.content``, ``.embeds``, ``.components``, ``.attachments``, ``.poll``,
  ``.flags.ephemeral``, ``.mention_everyone``…). They include ephemeral messages unless
  you pass ``viewer=member``, which shows exactly what that member's client shows.
* ``env.transcript()`` (attached to the report of a failing test that uses the
  ``discord_sim`` fixture) and ``env.http_requests`` (every REST call with its JSON body,
  e.g. to check ``allowed_mentions``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import discord
import pytest
import pytest_asyncio
import simcord
from simcord import ChannelHandle, Env, GuildHandle, InteractionResult, MemberActor, RoleHandle
from simcord.backend import serializers

GUILD_NAME = "Pixel Club"
GENERAL = "general"
ANNOUNCEMENTS = "announcements"
MEMBERS = ("alice", "bob", "carol")
MANAGER = "boss"
MANAGER_ROLE = "Managers"

MemberRef = MemberActor | str
ChannelRef = ChannelHandle | str
MessageRef = discord.Message | simcord.ResponseMessage


class DiscordSim:
    """One simulated Discord world plus the bot under test (one per test)."""

    def __init__(self) -> None:
        self.env: Env | None = None
        self.guild: GuildHandle | None = None
        self.manager_role: RoleHandle | None = None
        self.channels: dict[str, ChannelHandle] = {}
        self.members: dict[str, MemberActor] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, client: discord.Client, **options: Any) -> Env:
        """Build the Pixel Club world and bring ``client`` to READY against it.

        ``options`` go to ``simcord.Env`` (``strict_sync`` defaults to True; also
        ``check_errors``, ``approved_intents``, ``shard_count``, ``settle_timeout``).
        The world exists before login, so the bot's ``on_ready`` already sees the guild,
        channels and members (joins after start go through :meth:`join`).
        """
        if self.env is not None:
            raise RuntimeError("discord_sim already started; use restart() for a new client")
        env = Env(client, **options)
        guild = env.create_guild(GUILD_NAME)
        for name in (GENERAL, ANNOUNCEMENTS):
            self.channels[name] = guild.create_text_channel(name)
        self.manager_role = guild.create_role(
            MANAGER_ROLE, permissions=discord.Permissions(manage_guild=True)
        )
        for name in MEMBERS:
            self.members[name] = guild.add_member(env.create_user(name))
        self.members[MANAGER] = guild.add_member(
            env.create_user(MANAGER), roles=[self.manager_role]
        )
        self.guild = guild
        await env.start()  # on failure SimCord detaches the bot itself
        self.env = env
        await self._finish_startup_chunking()
        return env

    async def _finish_startup_chunking(self) -> None:
        # Workaround (SimCord 3.2.1 + discord.py 2.7.1, seen on Python 3.11.7): SimCord
        # sets guild_ready_timeout to 0 and emits GUILD_CREATE right after READY, before
        # discord.py's _delay_ready task runs; asyncio.wait_for(queue.get(), timeout=0)
        # then times out without reading the queued guild, so discord.py never chunks
        # members at startup and never dispatches on_guild_available. Production
        # discord.py chunks at startup when the members intent is on, so do that here.
        client = self._env.bot
        if client.intents.members and client._connection._chunk_guilds:
            for guild in client.guilds:
                if not guild.chunked:
                    await guild.chunk()
        await self._env.settle()

    async def restart(self, client: discord.Client | None = None) -> None:
        """Restart the bot (same or a fresh client); the virtual world persists.

        Proves persistent views re-attach: old messages' buttons must still work.
        """
        await self._env.restart_bot(client)
        await self._finish_startup_chunking()

    async def reconnect(self) -> None:
        """Simulate a gateway reconnect with a fresh session (plain ``discord.Client`` only).

        Discord sends READY and every GUILD_CREATE again, so ``on_ready`` fires again
        and discord.py rebuilds its cache; use it to prove start-once work (timers, syncs,
        loops) is not duplicated. A RESUME would not re-fire ``on_ready`` at all.
        SimCord has no public verb for this; it replays what its own IDENTIFY sends.
        """
        env = self._env
        if isinstance(env.bot, discord.AutoShardedClient):
            raise NotImplementedError(
                "reconnect() supports discord.Client; SimCord's shard reconnect "
                "(ShardInfo.disconnect/reconnect) does not re-dispatch on_ready/on_shard_ready"
            )
        backend = env.backend
        backend.emit(
            "READY",
            {
                "v": 10,
                "user": dict(serializers.user_payload(backend.bot_user)),
                "guilds": [],
                "session_id": "commops-test-reconnect",
                "resume_gateway_url": "wss://simcord.invalid",
                "application": {"id": str(backend.application_id), "flags": 0},
            },
        )
        for guild in list(backend.guilds.values()):
            backend.emit("GUILD_CREATE", serializers.guild_create_payload(backend, guild))
        await env.settle()
        await self._finish_startup_chunking()

    async def stop(self) -> None:
        """Shut the bot down; re-raise errors it swallowed unless check_errors=False."""
        env, self.env = self.env, None
        if env is None:
            return
        await env.shutdown()
        if env.check_errors:
            # Same teardown check as simcord.run(): errors nobody inspected fail the test.
            env._raise_errors_since(env._errors_acknowledged)

    @property
    def _env(self) -> Env:
        if self.env is None:
            raise RuntimeError("call `await discord_sim.start(client)` first")
        return self.env

    @property
    def client(self) -> discord.Client:
        """The bot currently attached (changes after ``restart(new_client)``)."""
        return self._env.bot

    # ------------------------------------------------------------------- lookups

    def member(self, ref: MemberRef) -> MemberActor:
        return self.members[ref] if isinstance(ref, str) else ref

    def channel(self, ref: ChannelRef) -> ChannelHandle:
        return self.channels[ref] if isinstance(ref, str) else ref

    def discord_member(self, ref: MemberRef) -> discord.Member:
        """The bot's cached ``discord.Member`` (e.g. ``.guild_permissions.manage_guild``)."""
        member = self.member(ref).member
        if member is None:
            raise LookupError(f"{ref!r} is not in the bot's member cache")
        return member

    # --------------------------------------------------------------------- verbs

    def available_commands(self, member: MemberRef, channel: ChannelRef) -> tuple[str, ...]:
        """Slash commands ``member`` sees in the picker (synced, permitted), e.g. "post add"."""
        return self.member(member).available_commands(self.channel(channel))

    def close_dms(self, member: MemberRef) -> None:
        """Make the bot's DMs to ``member`` fail with 403/50007, as when DMs are closed.

        SimCord only raises 50007 for DMs to bots, so this injects the error on the
        member's DM channel for the rest of the test.
        """
        dm_channel = self.member(member).user.dm_channel
        self._env.inject_error(
            "POST",
            f"/channels/{dm_channel.id}/messages",
            status=403,
            code=50007,
            message="Cannot send messages to this user",
            times=None,
        )

    async def say(
        self,
        member: MemberRef,
        channel: ChannelRef,
        text: str,
        *,
        reply_to: MessageRef | None = None,
        attachments: Sequence[tuple[str, bytes]] = (),
    ) -> discord.Message:
        """Post a message as ``member`` (MESSAGE_CREATE reaches the bot, then settles)."""
        return await self.member(member).send(
            self.channel(channel), text, reply_to=reply_to, attachments=attachments
        )

    async def edit(self, member: MemberRef, message: MessageRef, text: str) -> None:
        await self.member(member).edit(message, text)

    async def slash(
        self, member: MemberRef, channel: ChannelRef, command: str, **options: Any
    ) -> InteractionResult:
        """Invoke ``/command`` (subcommands space-separated: ``"giveaway start"``).

        Options are Python values; members/channels/roles may be SimCord handles.
        """
        return await self.member(member).slash(self.channel(channel), command, **options)

    async def autocomplete(
        self,
        member: MemberRef,
        channel: ChannelRef,
        command: str,
        option: str,
        value: str,
        **filled: Any,
    ) -> list[dict[str, Any]]:
        """Type ``value`` into an autocomplete option; returns the offered choices."""
        return await self.member(member).autocomplete(
            self.channel(channel), command, option, value, **filled
        )

    async def press(
        self, member: MemberRef, message: MessageRef, custom_id: str
    ) -> InteractionResult:
        """Press the button with ``custom_id`` on ``message`` as ``member``."""
        return await self.member(member).click(message, custom_id=custom_id)

    async def join(self, name: str) -> MemberActor:
        """A new user joins the guild (GUILD_MEMBER_ADD, needs the members intent)."""
        env = self._env
        assert self.guild is not None
        actor = self.guild.add_member(env.create_user(name))
        self.members[name] = actor
        await env.settle()
        return actor

    async def leave(self, member: MemberRef) -> None:
        """The member leaves the guild (GUILD_MEMBER_REMOVE)."""
        actor = self.member(member)
        assert self.guild is not None
        self.guild.remove_member(actor)
        self.members.pop(actor.name, None)
        await self._env.settle()

    async def add_bot_to_guild(self, name: str) -> GuildHandle:
        """The bot is invited to another guild: discord.py dispatches ``on_guild_join``.

        Workaround (SimCord 3.2.1): its GUILD_CREATE always says ``"unavailable": false``,
        which discord.py reads as a known guild coming back (``on_guild_available``).
        Discord leaves the field out when the bot joins a new guild, so it is left out here.
        """
        env = self._env
        backend = env.backend
        emit = backend.emit

        def as_a_join(event: str, payload: Any) -> None:
            if event == "GUILD_CREATE":
                payload = {k: v for k, v in payload.items() if k != "unavailable"}
            emit(event, payload)

        backend.emit = as_a_join
        try:
            guild = env.create_guild(name)
        finally:
            backend.emit = emit
        await env.settle()
        return guild

    async def remove_bot_from_guild(self, guild: GuildHandle) -> None:
        """The bot is kicked from ``guild`` (GUILD_DELETE: ``on_guild_remove``).

        SimCord has no public verb for a kick; its backend drops the guild and emits the
        GUILD_DELETE a real removal sends."""
        env = self._env
        env.backend.remove_guild(guild.id)
        await env.settle()

    async def react(self, member: MemberRef, message: MessageRef, emoji: str) -> None:
        await self.member(member).react(message, emoji)

    async def unreact(self, member: MemberRef, message: MessageRef, emoji: str) -> None:
        await self.member(member).unreact(message, emoji)

    async def vote(self, member: MemberRef, message: MessageRef, answer_id: int) -> None:
        """Vote for a native poll answer (1-based ``answer_id``, as Discord numbers them)."""
        await self.member(member).vote(message, answer=answer_id)

    async def unvote(self, member: MemberRef, message: MessageRef, answer_id: int) -> None:
        await self.member(member).remove_vote(message, answer=answer_id)

    # ------------------------------------------------------------------- readers

    def history(
        self, channel: ChannelRef, *, viewer: MemberRef | None = None
    ) -> list[discord.Message]:
        """Every message in ``channel``, oldest first, as real ``discord.Message`` objects.

        Without ``viewer`` every message, ephemeral ones included, is returned; with it,
        only what that member's client would show.
        """
        return self.channel(channel).history(
            viewer=self.member(viewer) if viewer is not None else None
        )

    def bot_messages(
        self, channel: ChannelRef, *, viewer: MemberRef | None = None
    ) -> list[discord.Message]:
        """Messages the bot authored in ``channel``, oldest first."""
        bot_id = self._env.backend.bot_user.id
        return [m for m in self.history(channel, viewer=viewer) if m.author.id == bot_id]

    def dms(self, member: MemberRef) -> list[discord.Message]:
        """The bot's DM channel with ``member``, oldest first."""
        return self.member(member).user.dm_channel.history()

    def last_bot_message(
        self, channel: ChannelRef, *, viewer: MemberRef | None = None
    ) -> discord.Message:
        messages = self.bot_messages(channel, viewer=viewer)
        if not messages:
            raise AssertionError(f"the bot sent nothing in #{self.channel(channel).name}")
        return messages[-1]


def shown(message: MessageRef) -> str:
    """What a member reads in a message: its content, then each embed's title and text
    (reports and announcements are embeds; see bot/discord_adapter/embeds.py)."""
    parts = [message.content] if message.content else []
    for embed in message.embeds:
        parts += [p for p in (embed.title, embed.description) if p]
        parts += [f"{field.name}\n{field.value}" for field in embed.fields]
    return "\n".join(parts)


def button_ids(message: MessageRef) -> list[str]:
    """custom_ids of the interactive buttons on a message (nested layouts included)."""
    if isinstance(message, simcord.ResponseMessage):
        message = message.message
    ids: list[str] = []
    stack: list[Any] = list(message.components)
    while stack:
        component = stack.pop(0)
        if isinstance(component, discord.Button) and component.custom_id:
            ids.append(component.custom_id)
        stack.extend(getattr(component, "children", ()) or ())
    return ids


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach SimCord's transcript (gateway events + REST calls) to failing tests."""
    report = yield
    if report.when == "call" and report.failed:
        sim = getattr(item, "funcargs", {}).get("discord_sim")
        if isinstance(sim, DiscordSim) and sim.env is not None:
            report.sections.append(("simcord transcript", sim.env.transcript()))
    return report


@pytest_asyncio.fixture
async def discord_sim() -> AsyncIterator[DiscordSim]:
    """Function-scoped :class:`DiscordSim`; call ``await discord_sim.start(client)``.

    Teardown shuts the bot down and fails the test with an ``ExceptionGroup`` of
    anything the bot raised and no test inspected.
    """
    sim = DiscordSim()
    try:
        yield sim
    finally:
        await sim.stop()


__all__ = [
    "ANNOUNCEMENTS",
    "GENERAL",
    "GUILD_NAME",
    "MANAGER",
    "MANAGER_ROLE",
    "MEMBERS",
    "DiscordSim",
    "button_ids",
    "discord_sim",
    "shown",
]
