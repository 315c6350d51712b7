"""Slash commands from the routers' registry: names, typed options, descriptions, sync hash.

Every command becomes a slash command (`/settings timezone`), with one typed option per
parameter; the option values are joined back into the argument line the shared parser
reads, so a command behaves the same on every platform.

Descriptions come from the catalogs (`templates/<locale>/**/commands.toml`): an entry's
`slash` line when it has one (written for Discord's 100 characters), else its `help`
line, cut at a word boundary with an ellipsis when it is still too long. Options are
described by their parameter's label; `Choice` parameters become Discord choices, whole
numbers carry their range, and options that ask for an id (or a chat) autocomplete.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Optional

import discord
from discord import app_commands

from handlers.core.args import Choice, Integer, Option, Param, Text
from handlers.core.render import Renderer
from handlers.core.router import CommandSpec

# Discord's limits for application commands (see the tests that check the whole registry).
MAX_NAME = 32
MAX_DESCRIPTION = 100
MAX_CHOICES = 25
# Integer options hold what a JavaScript number holds exactly.
MAX_INTEGER = 2**53 - 1

# Where a description may be cut: after white space or CJK punctuation.
_BREAK = re.compile(r"[\s、，。；：]")
_TRAILING = " \t,;:(（-—–、，。；：/|"

# Discord locales -> commops catalog locales.
DISCORD_LOCALES = {discord.Locale.chinese: "zh", discord.Locale.taiwan_chinese: "zh"}

SlashRunner = Callable[[discord.Interaction, CommandSpec, dict[str, Any]], Awaitable[None]]
# (interaction, spec, the option's label, what the member typed so far) -> choices
Completer = Callable[
    [discord.Interaction, CommandSpec, str, Any], Awaitable[list[app_commands.Choice[Any]]]
]
# Does an option with this label autocomplete? (The adapter knows which labels it serves.)
Completes = Callable[[str], bool]


def shorten(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """`text` on one line, cut at a word boundary with an ellipsis when over `limit`."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    room = flat[: limit - 1]
    breaks = [m.end() for m in _BREAK.finditer(room)]
    # A boundary in the last half keeps most of the text; CJK without any is cut where it must.
    cut = breaks[-1] if breaks and breaks[-1] >= limit // 2 else len(room)
    return room[:cut].rstrip(_TRAILING) + "…"


def catalog_line(renderer: Renderer, locale: str, name: str) -> str | None:
    """A command's (or group's) description in one locale: its `slash` line, else `help`."""
    entry = renderer.catalog(locale).get("commands", {}).get(name, {})
    text = entry.get("slash") or entry.get("help")
    return shorten(text) if text else None


def option_name(name: str) -> str:
    return name.replace("-", "_").lower()[:MAX_NAME]


def _annotation(converter: Any) -> Any:
    if isinstance(converter, Integer):
        low = max(converter.minimum, -MAX_INTEGER)
        high = min(converter.maximum, MAX_INTEGER)
        return app_commands.Range[int, low, high]
    return str


def _label(converter: Any) -> str:
    return str(getattr(converter, "label", "") or "value")


def command_arguments(spec: CommandSpec, values: dict[str, Any]) -> str:
    """Slash option values -> the argument line the shared parser reads."""
    parts: list[str] = []
    for param in spec.params:
        value = values.get(option_name(param.name))
        if value is None:
            continue
        text = str(value)
        # Rest-of-line text goes last and raw; single words are quoted if they contain spaces.
        if isinstance(param.type, Text):
            parts.append(text)
        else:
            parts.append(f'"{text}"' if (" " in text and '"' not in text) else text)
    for option in spec.options:
        value = values.get(option_name(option.name))
        if option.type is None:
            if value:
                parts.append(f"--{option.name}")
        elif value is not None:
            text = str(value)
            # `--closes=tomorrow 20:00` would cut the value at the space; standing apart, the
            # option's converter takes as many words as it reads.
            parts.append(f"--{option.name} {text}" if " " in text else f"--{option.name}={text}")
    return " ".join(parts)


def describe_command(spec_name: str, renderer: Renderer) -> app_commands.locale_str:
    """The English description, keyed by command so the translator can find other locales."""
    text = catalog_line(renderer, "en", spec_name) or spec_name
    return app_commands.locale_str(text, command=spec_name)


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
        return catalog_line(self.renderer, ours, command)


def _declared(spec: CommandSpec) -> list[tuple[Param | Option, bool]]:
    """Parameters then options, each with whether it is required; required ones first, as
    Discord lists them."""
    declared: list[tuple[Param | Option, bool]] = [(p, p.required) for p in spec.params]
    declared += [(o, False) for o in spec.options]
    return sorted(declared, key=lambda d: not d[1])


def _option_description(item: Param | Option) -> str:
    if isinstance(item, Option) and item.type is None:
        return shorten(item.name.replace("-", " "))  # a flag: its name says what it does
    return shorten(_label(item.type))


def slash_command(
    name: str,
    spec: CommandSpec,
    description: app_commands.locale_str,
    run: SlashRunner,
    complete: Completer | None = None,
    completes: Completes | None = None,
) -> app_commands.Command[Any, ..., Any]:
    """One app command for a registry entry, its options built from the declared parameters."""
    parameters = [
        inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=discord.Interaction),
    ]  # fmt: skip
    descriptions: dict[str, str] = {}
    choices: dict[str, list[app_commands.Choice[str]]] = {}
    autocompleted: dict[str, str] = {}
    for item, required in _declared(spec):
        key = option_name(item.name)
        converter = item.type
        annotation: Any = bool if converter is None else _annotation(converter)
        parameters.append(
            inspect.Parameter(
                key,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotation if required else Optional[annotation],  # noqa: UP045
                default=inspect.Parameter.empty if required else None,
            )
        )
        descriptions[key] = _option_description(item)
        if isinstance(converter, Choice) and 0 < len(converter.choices) <= MAX_CHOICES:
            choices[key] = [app_commands.Choice(name=c, value=c) for c in converter.choices]
        elif converter is not None and completes is not None and completes(_label(converter)):
            autocompleted[key] = _label(converter)

    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        await run(interaction, spec, values)

    callback.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    app_commands.describe(**descriptions)(callback)
    if choices:
        app_commands.choices(**choices)(callback)
    command = app_commands.Command(name=name, description=description, callback=callback)
    if complete is not None:
        for key, label in autocompleted.items():
            command.autocomplete(key)(_completer(complete, spec, label))
    return command


def _completer(
    complete: Completer, spec: CommandSpec, label: str
) -> Callable[[discord.Interaction, Any], Awaitable[list[app_commands.Choice[Any]]]]:
    async def suggest(interaction: discord.Interaction, current: Any) -> list[Any]:
        return await complete(interaction, spec, label, current)

    return suggest


def build_tree(
    tree: app_commands.CommandTree[Any],
    specs: Sequence[CommandSpec],
    renderer: Renderer,
    run: SlashRunner,
    complete: Completer | None = None,
    completes: Completes | None = None,
) -> None:
    """Register every visible command; `a b` becomes subcommand `b` of group `a`, and a bare
    `a` that also has subcommands becomes `/a show`."""
    groups: dict[str, app_commands.Group] = {}
    grouped = {s.name.split(" ", 1)[0] for s in specs if " " in s.name}
    for spec in specs:
        head, _, sub = spec.name.partition(" ")
        description = describe_command(spec.name, renderer)
        if head in grouped:
            group = groups.get(head)
            if group is None:
                described = _group_description(head, renderer)
                group = app_commands.Group(name=head, description=described)
                groups[head] = group
                tree.add_command(group)
            command = slash_command(sub or "show", spec, description, run, complete, completes)
            group.add_command(command)
        else:
            tree.add_command(slash_command(head, spec, description, run, complete, completes))


def _group_description(head: str, renderer: Renderer) -> app_commands.locale_str:
    """A group's own catalog line when it has one (`[commands.faq]`), else `/faq …`."""
    if catalog_line(renderer, "en", head) is None:
        return app_commands.locale_str(f"/{head} …")
    return describe_command(head, renderer)


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
