"""Runs commops on Discord: a discord.py client, slash commands from the routers' registry.

Every command becomes a slash command (`/settings timezone`, built in `slash.py`), with one
typed option per parameter; options that ask for an id or a chat autocomplete from the
community's own items (`autocomplete.py`). A text prefix (`!stats`) works too when the
message content intent is on. Buttons are answered from the interaction listener by their
`custom_id`, so they keep working after a restart without re-registering views. The bot
being added to or removed from a server becomes a `BotMembershipChanged` event.
`on_ready` fires again on every reconnect: set-up runs once per process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

from bot.discord_adapter.autocomplete import (
    CHAT_LABEL,
    Asker,
    Suggestion,
    completes,
    suggest_channels,
    suggest_items,
)
from bot.discord_adapter.gateway import DiscordGateway, InteractionGateway, member_role
from bot.discord_adapter.slash import (
    CatalogTranslator,
    build_tree,
    command_arguments,
    commands_fingerprint,
)
from bot.discord_adapter.translate import (
    chat_ref,
    translate_bot_membership,
    translate_component,
    translate_member_join,
    translate_member_remove,
    translate_message,
    translate_poll_vote,
    translate_reaction,
    translate_slash,
    user_ref,
)
from handlers.core.events import Event, Platform
from handlers.core.render import Renderer
from handlers.core.router import CommandSpec, Dispatcher

log = logging.getLogger(__name__)

__all__ = [
    "REQUIRED_PERMISSIONS",
    "DiscordAdapter",
    "DiscordSettings",
    "command_arguments",
    "intents",
]

# Discord waits 3 s for suggestions; what is not ready by then is not worth sending.
AUTOCOMPLETE_SECONDS = 2.0


@dataclass(frozen=True)
class DiscordSettings:
    """What the adapter needs from the config (the token already read from the environment)."""

    token: str
    prefix: str | None = "!"
    message_content: bool = False
    manager_role: str | None = None
    shard_count: int | None = None
    sync_state_file: str | None = "commops-discord-commands.json"


# What the invite URL asks for (README): what the features use, no more.
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
    send_polls=True,
)


def intents(settings: DiscordSettings) -> discord.Intents:
    """Only what the features use; message content is privileged and off unless asked for."""
    chosen = discord.Intents.none()
    chosen.guilds = True
    chosen.guild_messages = True
    chosen.members = True  # joins and leaves
    chosen.guild_reactions = True
    chosen.guild_polls = True
    chosen.dm_messages = True
    chosen.message_content = settings.message_content
    return chosen


class DiscordAdapter:
    """Owns the discord.py client and feeds the dispatcher."""

    name = "discord"

    def __init__(self, settings: DiscordSettings, *, client: discord.Client | None = None) -> None:
        self.settings = settings
        if client is None:
            if settings.shard_count:
                client = discord.AutoShardedClient(
                    intents=intents(settings), shard_count=settings.shard_count
                )
            else:
                client = discord.Client(intents=intents(settings))
        self.client = client
        self.tree: app_commands.CommandTree[Any] = app_commands.CommandTree(client)
        # Where discord.py's own `commands.Bot` keeps it; tools (and SimCord) look there.
        client.tree = self.tree  # type: ignore[attr-defined]
        self.gateway = DiscordGateway(client, manager_role=settings.manager_role)
        self._dispatcher: Dispatcher | None = None
        self._translator: CatalogTranslator | None = None
        self._force_sync = False
        self._ready_once = False
        self.ready = asyncio.Event()
        self._listen()

    # --- events ------------------------------------------------------------------------------

    def _listen(self) -> None:
        client = self.client

        async def setup_hook() -> None:
            # Runs once per process after login, before the gateway connects.
            if self._translator is not None:
                await self.tree.set_translator(self._translator)
            await self.sync_commands(force=self._force_sync)

        client.setup_hook = setup_hook  # type: ignore[method-assign]

        @client.event
        async def on_ready() -> None:
            if self._ready_once:
                log.info("discord: reconnected")
                return
            self._ready_once = True
            if self._dispatcher is not None:
                self._dispatcher.services.gateways.register(self.gateway)
            log.info("discord: serving as %s in %d servers", client.user, len(client.guilds))
            self.ready.set()

        @client.event
        async def on_message(message: discord.Message) -> None:
            me = client.user.id if client.user else 0
            prefix = self.settings.prefix if self.settings.message_content else None
            await self._handle(translate_message(message, me_id=me, prefix=prefix), None)

        @client.event
        async def on_member_join(member: discord.Member) -> None:
            await self._handle(translate_member_join(member), None)

        @client.event
        async def on_raw_member_remove(payload: discord.RawMemberRemoveEvent) -> None:
            guild = client.get_guild(payload.guild_id)
            if guild is not None:
                await self._handle(translate_member_remove(payload.user, guild), None)

        @client.event
        async def on_guild_join(guild: discord.Guild) -> None:
            if client.user is not None:
                await self._handle(translate_bot_membership(guild, client.user, present=True), None)

        @client.event
        async def on_guild_remove(guild: discord.Guild) -> None:
            if client.user is not None:
                events = translate_bot_membership(guild, client.user, present=False)
                await self._handle(events, None)

        @client.event
        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            channel = client.get_channel(payload.channel_id)
            if channel is None or payload.guild_id is None:
                return
            member = payload.member
            actor = user_ref(member) if member is not None else None
            await self._handle(translate_reaction(payload, chat_ref(channel), actor), None)

        async def poll_vote(payload: Any, *, added: bool) -> None:
            channel = client.get_channel(payload.channel_id)
            if channel is None:
                return
            user = client.get_user(payload.user_id)
            if user is None and payload.guild_id is not None:
                guild = client.get_guild(payload.guild_id)
                user = guild.get_member(payload.user_id) if guild else None
            actor = user_ref(user) if user is not None else None
            events = translate_poll_vote(payload, chat_ref(channel), actor, added=added)
            await self._handle(events, None)

        @client.event
        async def on_raw_poll_vote_add(payload: Any) -> None:
            await poll_vote(payload, added=True)

        @client.event
        async def on_raw_poll_vote_remove(payload: Any) -> None:
            await poll_vote(payload, added=False)

        @client.event
        async def on_interaction(interaction: discord.Interaction) -> None:
            if interaction.type is not discord.InteractionType.component:
                return  # slash commands are dispatched by the command tree
            await self._handle(
                translate_component(interaction), InteractionGateway(self.gateway, interaction)
            )
            if not interaction.response.is_done():
                await interaction.response.defer()

    async def _handle(self, events: list[Event], gateway: DiscordGateway | None) -> None:
        if self._dispatcher is None:
            return
        for event in events:
            await self._dispatcher.handle(event, gateway or self.gateway)

    async def _run_slash(
        self, interaction: discord.Interaction, spec: CommandSpec, values: dict[str, Any]
    ) -> None:
        event = translate_slash(interaction, spec.name, command_arguments(spec, values))
        await self._handle([event], InteractionGateway(self.gateway, interaction))
        if not interaction.response.is_done():
            await interaction.response.send_message("✓", ephemeral=True)

    async def _complete(
        self, interaction: discord.Interaction, spec: CommandSpec, label: str, typed: Any
    ) -> list[app_commands.Choice[Any]]:
        """Suggestions for an autocompleted option; never raises, never keeps Discord waiting."""
        try:
            found = await asyncio.wait_for(
                self._suggest(interaction, spec, label, typed), AUTOCOMPLETE_SECONDS
            )
        except TimeoutError:
            log.warning("autocomplete of /%s (%s) took too long", spec.name, label)
            return []
        except Exception:
            log.exception("autocomplete of /%s (%s) failed", spec.name, label)
            return []
        return [app_commands.Choice(name=s.label, value=s.value) for s in found]

    async def _suggest(
        self, interaction: discord.Interaction, spec: CommandSpec, label: str, typed: Any
    ) -> list[Suggestion]:
        guild, user = interaction.guild, interaction.user
        if guild is None or not isinstance(user, discord.Member):
            return []  # a DM: no community to suggest from
        asker = Asker(str(user.id), member_role(user, self.settings.manager_role))
        if asker.role < spec.min_role:
            return []
        if label.lower() == CHAT_LABEL:
            return suggest_channels(guild, typed)
        if self._dispatcher is None:
            return []
        return await suggest_items(
            self._dispatcher.services.db,
            platform=Platform.DISCORD.value,
            community=str(guild.id),
            spec=spec,
            label=label,
            typed=typed,
            asker=asker,
        )

    # --- commands ----------------------------------------------------------------------------

    def build_commands(self, specs: Sequence[CommandSpec], renderer: Renderer) -> None:
        """(Re)build the slash commands from the registry."""
        self.tree.clear_commands(guild=None)
        build_tree(self.tree, specs, renderer, self._run_slash, self._complete, completes)
        self._translator = CatalogTranslator(renderer)

    def attach(self, dispatcher: Dispatcher) -> None:
        """Connect to the dispatcher and build the slash commands from its registry."""
        self._dispatcher = dispatcher
        self.build_commands(dispatcher.visible_commands(), dispatcher.services.renderer)

    async def sync_only(self, specs: Sequence[CommandSpec], renderer: Renderer) -> int:
        """`commops discord sync`: log in over HTTP, publish the commands, log out."""
        self.build_commands(specs, renderer)
        self._force_sync = True
        async with self.client:
            await self.client.login(self.settings.token)  # runs setup_hook, which syncs
        return len(self.tree.get_commands())

    async def sync_commands(self, *, force: bool) -> bool:
        """Publish the slash commands when they changed since the last sync (or when forced)."""
        fingerprint = await commands_fingerprint(self.tree, self._translator)
        state = Path(self.settings.sync_state_file) if self.settings.sync_state_file else None
        unchanged = (
            state is not None
            and state.exists()
            and state.read_text(encoding="utf-8").strip() == fingerprint
        )
        if unchanged and not force:
            return False
        await self.tree.sync()
        if state is not None:
            state.write_text(fingerprint, encoding="utf-8")
        log.info("discord: slash commands synced (%d)", len(self.tree.get_commands()))
        return True

    async def run(self, dispatcher: Dispatcher) -> None:
        """Connect and serve until `stop()`."""
        self.attach(dispatcher)
        async with self.client:
            await self.client.start(self.settings.token)

    async def stop(self) -> None:
        await self.client.close()
