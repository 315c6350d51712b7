"""Runs commops on Discord: a discord.py client, slash commands from the routers' registry.

Every command becomes a slash command (`/settings timezone`), with one typed option per
parameter; the option values are joined back into the argument line the shared parser
reads, so a command behaves the same on every platform. A text prefix (`!stats`) works
too when the message content intent is on. Buttons are answered from the interaction
listener by their `custom_id`, so they keep working after a restart without re-registering
views. `on_ready` fires again on every reconnect: set-up runs once per process.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

from bot.discord_adapter.gateway import DiscordGateway, InteractionGateway
from bot.discord_adapter.translate import (
    chat_ref,
    translate_component,
    translate_member_join,
    translate_member_remove,
    translate_message,
    translate_poll_vote,
    translate_reaction,
    translate_slash,
    user_ref,
)
from handlers.core.args import Integer, Text
from handlers.core.events import Event
from handlers.core.render import Renderer
from handlers.core.router import CommandSpec, Dispatcher

log = logging.getLogger(__name__)


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


def _option_name(name: str) -> str:
    return name.replace("-", "_").lower()[:32]


def _annotation(converter: Any) -> type:
    return int if isinstance(converter, Integer) else str


def command_arguments(spec: CommandSpec, values: dict[str, Any]) -> str:
    """Slash option values -> the argument line the shared parser reads."""
    parts: list[str] = []
    for param in spec.params:
        value = values.get(_option_name(param.name))
        if value is None:
            continue
        text = str(value)
        # Rest-of-line text goes last and raw; single words are quoted if they contain spaces.
        if isinstance(param.type, Text):
            parts.append(text)
        else:
            parts.append(f'"{text}"' if (" " in text and '"' not in text) else text)
    for option in spec.options:
        value = values.get(_option_name(option.name))
        if option.type is None:
            if value:
                parts.append(f"--{option.name}")
        elif value is not None:
            text = str(value)
            # `--closes=tomorrow 20:00` would cut the value at the space; standing apart, the
            # option's converter takes as many words as it reads.
            parts.append(f"--{option.name} {text}" if " " in text else f"--{option.name}={text}")
    return " ".join(parts)


def _describe(spec: CommandSpec, renderer: Renderer) -> app_commands.locale_str:
    """The English help line, keyed by command so the translator can find other locales."""
    catalog = renderer.catalog("en").get("commands", {})
    text = (catalog.get(spec.name, {}).get("help") or spec.name)[:100]
    return app_commands.locale_str(text, command=spec.name)


# Discord locales -> commops catalog locales.
DISCORD_LOCALES = {discord.Locale.chinese: "zh", discord.Locale.taiwan_chinese: "zh"}


class CatalogTranslator(app_commands.Translator):
    """Slash-command descriptions in the member's Discord language, from `commands.toml`."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        ours = DISCORD_LOCALES.get(locale)
        command = string.extras.get("command")
        if ours is None or command is None:
            return None
        entry = self.renderer.catalog(ours).get("commands", {}).get(command, {})
        help_line = entry.get("help")
        return help_line[:100] if help_line else None


SlashRunner = Callable[[discord.Interaction, CommandSpec, dict[str, Any]], Awaitable[None]]


def slash_command(
    name: str, spec: CommandSpec, description: app_commands.locale_str, run: SlashRunner
) -> app_commands.Command[Any, ..., Any]:
    """One app command for a registry entry, its options built from the declared parameters."""
    parameters = [
        inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=discord.Interaction),
    ]  # fmt: skip
    # Discord lists required options before optional ones.
    declared = [(p.name, _annotation(p.type), p.required) for p in spec.params]
    declared += [(o.name, bool if o.type is None else _annotation(o.type), False)
                 for o in spec.options]  # fmt: skip
    for option, annotation, required in sorted(declared, key=lambda d: not d[2]):
        parameters.append(
            inspect.Parameter(
                _option_name(option),
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotation if required else annotation | None,
                default=inspect.Parameter.empty if required else None,
            )
        )

    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        await run(interaction, spec, values)

    callback.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return app_commands.Command(name=name, description=description, callback=callback)


def build_tree(
    tree: app_commands.CommandTree[Any], specs: Sequence[CommandSpec], renderer: Renderer,
    run: SlashRunner,
) -> None:  # fmt: skip
    """Register every visible command; `a b` becomes subcommand `b` of group `a`, and a bare
    `a` that also has subcommands becomes `/a show`."""
    groups: dict[str, app_commands.Group] = {}
    grouped = {s.name.split(" ", 1)[0] for s in specs if " " in s.name}
    for spec in specs:
        head, _, sub = spec.name.partition(" ")
        description = _describe(spec, renderer)
        if head in grouped:
            group = groups.get(head)
            if group is None:
                group = app_commands.Group(name=head, description=f"/{head} …")
                groups[head] = group
                tree.add_command(group)
            group.add_command(slash_command(sub or "show", spec, description, run))
        else:
            tree.add_command(slash_command(head, spec, description, run))


async def commands_fingerprint(
    tree: app_commands.CommandTree[Any], translator: app_commands.Translator | None
) -> str:
    """A hash of exactly what a sync would publish, translations included."""
    if translator is None:
        payload = [command.to_dict(tree) for command in tree.get_commands()]
    else:
        payload = [
            await command.get_translated_payload(tree, translator)
            for command in tree.get_commands()
        ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


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

    # --- commands ----------------------------------------------------------------------------

    def build_commands(self, specs: Sequence[CommandSpec], renderer: Renderer) -> None:
        """(Re)build the slash commands from the registry."""
        self.tree.clear_commands(guild=None)
        build_tree(self.tree, specs, renderer, self._run_slash)
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
